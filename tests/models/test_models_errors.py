"""Bad input gives a clear error that names the problem."""

import pytest
import torch

from rewardflow.models import DenoiserConfig, build_model, model_config_from_preset

KEYS = ("aesthetic_score", "clip_score")


def batch(b=2, n=2, text_dim=384):
    return (
        torch.randn(b, 3, 32, 32),
        torch.rand(b),
        torch.randn(b, 4, text_dim),
        torch.ones(b, 4, dtype=torch.bool),
        torch.rand(b, n) if n else None,
    )


@pytest.fixture(scope="module", params=["dit-tiny", "unet-tiny"])
def model(request):
    return build_model(model_config_from_preset(request.param, reward_keys=KEYS))


def test_wrong_reward_length_names_keys(model):
    x, t, text, mask, _ = batch()
    with pytest.raises(ValueError, match="aesthetic_score.*clip_score"):
        model(x, t, text, mask, torch.rand(2, 3))


@pytest.mark.parametrize("value", [1.5, -0.2, float("nan"), 63.0])
def test_out_of_range_rewards(model, value):
    x, t, text, mask, r = batch()
    r[1, 0] = value
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x, t, text, mask, r)


def test_tiny_rounding_outside_range_is_allowed(model):
    x, t, text, mask, r = batch()
    r[0, 0], r[1, 1] = 1.0 + 1e-6, -1e-6
    model(x, t, text, mask, r)


def test_missing_rewards_on_reward_model(model):
    x, t, text, mask, _ = batch()
    with pytest.raises(ValueError, match="rewards .* is required"):
        model(x, t, text, mask, None)


def test_rewards_on_baseline():
    base = build_model(model_config_from_preset("dit-tiny"))
    x, t, text, mask, r = batch()
    with pytest.raises(ValueError, match="baseline"):
        base(x, t, text, mask, r)


def test_wrong_text_dim(model):
    x, t, _, mask, r = batch()
    with pytest.raises(ValueError, match="text_dim=384"):
        model(x, t, torch.randn(2, 4, 512), mask, r)


def test_wrong_shapes(model):
    x, t, text, mask, r = batch()
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.randn(2, 4, 32, 32), t, text, mask, r)
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.randn(2, 3, 16, 16), t, text, mask, r)
    with pytest.raises(ValueError, match="t must have shape"):
        model(x, torch.rand(3), text, mask, r)
    with pytest.raises(ValueError, match="text_mask"):
        model(x, t, text, mask.float(), r)
    with pytest.raises(ValueError, match="reward_drop"):
        model(x, t, text, mask, r, reward_drop=torch.zeros(2, 1, dtype=torch.bool))


def test_reward_drop_without_null_tokens():
    m = build_model(model_config_from_preset("dit-tiny", reward_keys=KEYS, reward_null=False))
    x, t, text, mask, r = batch()
    m(x, t, text, mask, r)
    with pytest.raises(ValueError, match="reward_null"):
        m(x, t, text, mask, r, reward_drop=torch.zeros(2, 2, dtype=torch.bool))


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="dit-tiny.*unet-demo|unet-demo.*dit-tiny"):
        model_config_from_preset("dit-huge")


def test_unknown_backbone_lists_backbones():
    with pytest.raises(ValueError, match=r"\['dit', 'rin', 'unet'\]"):
        build_model(DenoiserConfig(backbone="mamba"))


def test_invalid_configs():
    with pytest.raises(ValueError, match="reward_keys"):
        DenoiserConfig(num_rewards=2, reward_keys=("a",))
    with pytest.raises(ValueError, match="duplicate"):
        DenoiserConfig(reward_keys=("a", "a"))
    with pytest.raises(ValueError, match="patch_size"):
        DenoiserConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="unknown DenoiserConfig field"):
        model_config_from_preset("dit-tiny", widht=3)
    with pytest.raises(ValueError, match="unknown DenoiserConfig field"):
        DenoiserConfig.from_dict({"backbone": "dit", "depht": 2})
