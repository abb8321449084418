"""Forward behaviour of every backbone: shapes, conditioning actually used, masks, dtypes, compile."""

import pytest
import torch

from rewardflow.models import build_model, model_config_from_preset

KEYS = ("sharp", "clean", "align")
TINY = ["dit-tiny", "unet-tiny"]


def make(preset, keys=KEYS, seed=0, **kw):
    """A tiny model with all weights randomised: adaLN-Zero / zero output layers make a fresh model
    output exactly 0 regardless of its inputs, which would make every 'changes the output' test vacuous."""
    torch.manual_seed(seed)
    model = build_model(model_config_from_preset(preset, reward_keys=keys, **kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def inputs(b=3, length=5, n=None, seed=1, text_dim=384):
    n = len(KEYS) if n is None else n
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 32, 32, generator=g)
    t = torch.rand(b, generator=g)
    text = torch.randn(b, length, text_dim, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False
    rewards = torch.rand(b, n, generator=g) if n else None
    return x, t, text, mask, rewards


@pytest.mark.parametrize("preset", TINY)
def test_fresh_model_predicts_zero_and_has_shape(preset):
    model = build_model(model_config_from_preset(preset, reward_keys=KEYS))
    x, t, text, mask, r = inputs()
    v = model(x, t, text, mask, r)
    assert v.shape == x.shape and v.dtype == x.dtype
    assert torch.count_nonzero(v) == 0  # zero-init output layer, as DiT


@pytest.mark.parametrize("preset", TINY)
def test_rewards_change_output(preset):
    model = make(preset)
    x, t, text, mask, r = inputs()
    v = model(x, t, text, mask, r)
    for k in range(len(KEYS)):  # every reward token is read, not just some
        r2 = r.clone()
        r2[:, k] = 1.0 - r2[:, k]
        assert (model(x, t, text, mask, r2) - v).abs().max() > 1e-4, KEYS[k]


@pytest.mark.parametrize("preset", TINY)
def test_pooled_reward_vector_knows_which_reward_holds_which_value(preset):
    # Swapping the targets of two rewards must change the adaLN vector itself, not only the
    # cross-attention context: a mean-pooled vector is blind to the swap, and the demo showed a
    # model trained that way gives the same images whichever reward is dialled.
    model = make(preset)
    x, t, text, mask, _ = inputs()
    r = torch.tensor([[1.0, 0.0, 0.5]]).expand(3, 3)
    swapped = r[:, [1, 0, 2]]
    cond_a, _, _ = model.cond(t, text, mask, r)
    cond_b, _, _ = model.cond(t, text, mask, swapped)
    assert (cond_a - cond_b).abs().max() > 1e-3


@pytest.mark.parametrize("preset", TINY)
def test_reward_drop_changes_output(preset):
    model = make(preset)
    x, t, text, mask, r = inputs()
    v = model(x, t, text, mask, r)
    none_dropped = model(x, t, text, mask, r, reward_drop=torch.zeros_like(r, dtype=torch.bool))
    assert torch.equal(v, none_dropped)
    drop = torch.zeros_like(r, dtype=torch.bool)
    drop[:, 1] = True
    assert (model(x, t, text, mask, r, reward_drop=drop) - v).abs().max() > 1e-4
    # a dropped reward's value is ignored
    r2 = r.clone()
    r2[:, 1] = 1.0 - r2[:, 1]
    assert torch.allclose(model(x, t, text, mask, r2, reward_drop=drop), model(x, t, text, mask, r, reward_drop=drop))


@pytest.mark.parametrize("preset", TINY)
def test_text_and_time_change_output_but_masked_tokens_do_not(preset):
    model = make(preset)
    x, t, text, mask, r = inputs()
    v = model(x, t, text, mask, r)
    assert (model(x, t, text + 0.5, mask, r) - v).abs().max() > 1e-4
    assert (model(x, t.flip(0), text, mask, r) - v).abs().max() > 1e-4
    text2 = text.clone()
    text2[0, 3:] = 100.0  # padding positions of sample 0
    assert torch.allclose(model(x, t, text2, mask, r), v, atol=1e-5)


@pytest.mark.parametrize("preset", TINY)
def test_samples_are_independent_of_batch(preset):
    model = make(preset)
    x, t, text, mask, r = inputs(b=4)
    full = model(x, t, text, mask, r)
    one = model(x[2:3], t[2:3], text[2:3], mask[2:3], r[2:3])
    assert torch.allclose(full[2:3], one, atol=1e-5)


@pytest.mark.parametrize("preset", TINY)
def test_fully_masked_text_is_finite(preset):
    for keys in (KEYS, ()):
        model = make(preset, keys=keys)
        x, t, text, mask, r = inputs(n=len(keys))
        mask[:] = False
        assert torch.isfinite(model(x, t, text, mask, r)).all()


@pytest.mark.parametrize("preset", TINY)
def test_baseline_has_no_reward_parameters(preset):
    model = make(preset, keys=())
    assert model.config.num_rewards == 0
    assert not any("reward" in n for n, _ in model.named_parameters())
    x, t, text, mask, _ = inputs(n=0)
    assert model(x, t, text, mask).shape == x.shape


@pytest.mark.parametrize("preset", TINY)
def test_null_text_and_drop_text(preset):
    model = make(preset)
    text0, mask0 = model.null_text(3)
    l0 = model.config.null_text_tokens
    assert text0.shape == (3, l0, 384) and mask0.shape == (3, l0) and mask0.all()
    x, t, text, mask, r = inputs(length=5)
    drop = torch.tensor([True, False, True])
    text_d, mask_d = model.drop_text(text, mask, drop)
    assert text_d.shape[1] == max(5, l0)
    assert torch.equal(text_d[1, :5], text[1]) and torch.equal(mask_d[1, :5], mask[1])
    assert torch.equal(text_d[0, :l0], text0[0]) and mask_d[0].sum() == l0
    # dropped rows give the null-text output; the null text is trainable through drop_text
    v = model(x, t, text_d, mask_d, r)
    v_null = model(x[:1], t[:1], text0[:1], mask0[:1], r[:1])
    assert torch.allclose(v[:1], v_null, atol=1e-5)
    v.sum().backward()
    assert model.cond.null_text.grad is not None and model.cond.null_text.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", TINY)
def test_every_parameter_gets_a_gradient(preset):
    # DDP without find_unused_parameters needs every parameter in the graph, null tokens included,
    # even in a step where nothing is dropped (the trainer routes text through drop_text).
    model = make(preset).train()
    x, t, text, mask, r = inputs()
    text, mask = model.drop_text(text, mask, torch.zeros(3, dtype=torch.bool))
    model(x, t, text, mask, r).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize("preset,qk_norm", [("dit-tiny", False), ("dit-tiny", True), ("unet-tiny", True)])
def test_bf16_autocast_and_bf16_weights(preset, qk_norm):
    model = make(preset, qk_norm=qk_norm)
    x, t, text, mask, r = inputs()
    ref = model(x, t, text, mask, r)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = model(x, t, text, mask, r)
    assert v.dtype == torch.float32 and torch.isfinite(v).all()
    assert (v - ref).abs().max() < 0.1 * ref.abs().max() + 0.05
    vb = model.to(torch.bfloat16)(x, t, text, mask, r)
    assert vb.dtype == torch.float32 and torch.isfinite(vb).all()


def test_scalar_time_broadcasts():
    model = make("dit-tiny")
    x, t, text, mask, r = inputs()
    v = model(x, torch.tensor(0.3), text, mask, r)
    assert torch.allclose(v, model(x, torch.full((3,), 0.3), text, mask, r))


@pytest.mark.parametrize("preset", TINY)
def test_compiles_without_graph_breaks(preset):
    # backend="eager" traces with dynamo (what matters for graph breaks) without a C++ toolchain.
    torch._dynamo.reset()
    model = make(preset)
    x, t, text, mask, r = inputs()
    ref = model(x, t, text, mask, r)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    assert torch.allclose(compiled(x, t, text, mask, r), ref, atol=1e-6)


def test_unet_pixel_unshuffle_stem():
    model = make("unet-tiny", patch_size=2, attn_resolutions=(8,))
    x, t, text, mask, r = inputs()
    v = model(x, t, text, mask, r)
    assert v.shape == x.shape
    r2 = r.clone()
    r2[:, 0] = 1 - r2[:, 0]
    assert (model(x, t, text, mask, r2) - v).abs().max() > 1e-4
