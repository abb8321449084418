import numpy as np
import pytest
import torch
from PIL import Image

from rewardflow.rewards import Reward, get_reward, list_rewards, register_reward, to_uint8_hwc
from rewardflow.rewards.registry import parse_reward_list


@register_reward("test_mean_red")
class MeanRed(Reward):
    """Mean red channel / 255 (a test reward)."""

    needs_caption = False
    batch_size = 3

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def _score(self, images, captions):
        self.calls += 1
        assert images.dtype == np.uint8 and images.shape[-1] == 3 and len(images) <= self.batch_size
        return torch.from_numpy(images[..., 0].reshape(len(images), -1).mean(1) / 255.0)


def _imgs(n=7, h=8, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_builtins_registered_and_unknown_name_lists_them():
    names = list_rewards()
    for k in ("shapes_alignment", "sharpness", "cleanliness", "colorfulness"):
        assert k in names
    with pytest.raises(ValueError, match=r"unknown reward 'nope'.*sharpness"):
        get_reward("nope")
    with pytest.raises(ValueError, match="listed twice"):
        parse_reward_list("sharpness,sharpness")
    assert parse_reward_list(" sharpness, cleanliness ") == ["sharpness", "cleanliness"]


def test_register_clash_and_bad_class():
    with pytest.raises(ValueError, match="already registered"):

        @register_reward("sharpness")
        class Other(Reward):
            def _score(self, images, captions):
                return torch.zeros(len(images))

    with pytest.raises(TypeError):
        register_reward("x_not_a_reward")(int)


def test_input_forms_agree_and_chunking():
    imgs = _imgs()
    r = get_reward("test_mean_red")
    ref = r.score(imgs)
    assert ref.dtype == torch.float32 and ref.shape == (7,)
    assert r.calls == 3  # 7 images in chunks of 3
    pil = [Image.fromarray(a) for a in imgs]
    flt = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(r.score(pil), ref)
    torch.testing.assert_close(r.score(flt), ref)
    np.testing.assert_array_equal(to_uint8_hwc(flt), imgs)
    torch.testing.assert_close(get_reward("test_mean_red", batch_size=100).score(imgs), ref)


def test_mixed_sizes_and_errors():
    r = get_reward("test_mean_red")
    a, b = _imgs(2, 8, 8), _imgs(3, 5, 9, seed=1)
    mixed = [a[0], b[0], a[1], b[1], b[2]]
    out = r.score(mixed)
    torch.testing.assert_close(out[[0, 2]], r.score(a))
    torch.testing.assert_close(out[[1, 3, 4]], r.score(b))
    assert r.score(np.zeros((0, 4, 4, 3), np.uint8)).shape == (0,)
    with pytest.raises(ValueError, match="uint8"):
        r.score(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        r.score(a, ["x"])
    with pytest.raises(ValueError, match="needs captions"):
        get_reward("shapes_alignment").score(a)
    with pytest.raises(ValueError, match="batch_size"):
        get_reward("sharpness", batch_size=0)


def test_reward_versions_key_the_caches(monkeypatch):
    from rewardflow.rewards.registry import reward_versions
    from rewardflow.shapes.rewards.colorfulness import Colorfulness

    v = reward_versions(["colorfulness", "sharpness"])
    assert v == {"colorfulness": "2", "sharpness": "1"}
    monkeypatch.setattr(Colorfulness, "version", "3")
    assert reward_versions(["colorfulness"]) == {"colorfulness": "3"}


def test_paper_stands_for_the_seven_released_rewards():
    from rewardflow.rewards.registry import PAPER_REWARDS, parse_reward_list

    assert parse_reward_list("paper") == list(PAPER_REWARDS) and len(PAPER_REWARDS) == 7
    assert parse_reward_list("sharpness, paper")[:2] == ["sharpness", "clip_score"]
    with pytest.raises(ValueError, match="listed twice.*clip_score"):
        parse_reward_list("paper,clip_score")
