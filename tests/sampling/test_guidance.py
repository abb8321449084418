import pytest
import torch

from rewardflow.sampling import (
    Condition,
    euler,
    guided_velocity,
    guided_velocity_3,
    make_velocity_fn,
    make_velocity_fn_3,
    time_grid,
)

C, D, N = 5, 3, 2  # 5 channels (more than DiT's 4), text dim, rewards


class MockNet:
    """Per-sample, padding-invariant, and every channel reacts differently to text/rewards/t."""

    def __init__(self):
        self.calls = []
        self.chan = torch.tensor([1.0, -2.0, 3.0, 0.5, 7.0]).view(1, C, 1, 1)
        self.rw = torch.tensor([[1.3, -0.7], [0.2, 2.0], [-1.1, 0.4], [0.9, 0.9], [-3.0, 1.0]])  # (C, N)

    def __call__(self, x, t, text, text_mask, rewards=None, reward_drop=None):
        self.calls.append(dict(batch=x.shape[0], t=t, text=text, mask=text_mask, rewards=rewards))
        assert t.shape == (x.shape[0],) and text.shape[:2] == text_mask.shape
        pooled = (text * text_mask[..., None]).sum(dim=(1, 2))  # padding-invariant
        out = x * (1 + self.chan) + (pooled + t)[:, None, None, None] * self.chan
        if rewards is not None:
            out = out + (rewards @ self.rw.T)[:, :, None, None] * x
        return out

    def null_text(self, b):
        return torch.zeros(b, 1, D), torch.zeros(b, 1, dtype=torch.bool)


def _cond(b, length, seed, rewards=True):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, -1] = False
    r = torch.rand(b, N, generator=g) if rewards else None
    return Condition(torch.randn(b, length, D, generator=g), mask, r)


def _inputs(b=3):
    g = torch.Generator().manual_seed(42)
    return torch.randn(b, C, 4, 4, generator=g), torch.rand(b, generator=g)


def _single(net, x, t, c):
    return net(x, t, c.text, c.text_mask, rewards=c.rewards)


def test_scale_zero_equals_conditional_branch():
    net, (x, t) = MockNet(), _inputs()
    pos, neg = _cond(3, 4, 1), _cond(3, 6, 2)
    torch.testing.assert_close(guided_velocity(net, x, t, pos, neg, 0.0), _single(net, x, t, pos))


@pytest.mark.parametrize("rewards", [True, False])
def test_exact_formula_one_forward_every_channel(rewards):
    net, (x, t) = MockNet(), _inputs()
    pos, neg = _cond(3, 4, 1, rewards), _cond(3, 6, 2, rewards)  # different text lengths
    w = 7.0
    out = guided_velocity(net, x, t, pos, neg, w)
    assert len(net.calls) == 1 and net.calls[0]["batch"] == 6
    call = net.calls[0]
    assert call["text"].shape == (6, 6, D)
    assert not call["mask"][:3, 4:].any()  # padded positions are masked out
    assert torch.equal(call["mask"][3:], neg.text_mask)
    assert (call["rewards"] is None) == (not rewards)
    v_pos, v_neg = _single(net, x, t, pos), _single(net, x, t, neg)
    expected = v_pos + w * (v_pos - v_neg)
    for ch in range(C):  # every channel is guided (DiT #41 guided only 3 of 4)
        assert (v_pos - v_neg)[:, ch].abs().min() > 1e-4
        torch.testing.assert_close(out[:, ch], expected[:, ch])


def test_broadcast_batch1_negative_and_scalar_time():
    net, (x, _) = MockNet(), _inputs()
    pos = _cond(3, 4, 1)
    neg = Condition.null(net, 1, rewards=torch.zeros(1, N))
    out = guided_velocity(net, x, 0.5, pos, neg, 2.0)
    tb = torch.full((3,), 0.5)
    v_pos, v_neg = _single(net, x, tb, pos), _single(net, x, tb, neg.expand(3))
    torch.testing.assert_close(out, v_pos + 2.0 * (v_pos - v_neg))


def test_three_branch_formula_single_forward():
    net, (x, t) = MockNet(), _inputs()
    c, null = _cond(3, 4, 1, rewards=False), Condition.null(net, 3)
    s_pos, s_neg = torch.ones(1, N), torch.zeros(1, N)
    wt, wr = 3.0, 5.0
    out = guided_velocity_3(net, x, t, c, null, s_pos, s_neg, wt, wr)
    assert len(net.calls) == 1 and net.calls[0]["batch"] == 9
    v0 = _single(net, x, t, null.with_rewards(s_neg))
    v1 = _single(net, x, t, c.with_rewards(s_neg))
    v2 = _single(net, x, t, c.with_rewards(s_pos))
    expected = v0 + wt * (v1 - v0) + wr * (v2 - v1)
    for ch in range(C):
        assert (v2 - v1)[:, ch].abs().min() > 1e-4 and (v1 - v0)[:, ch].abs().min() > 1e-4
        torch.testing.assert_close(out[:, ch], expected[:, ch])
    # w_t = 1, w_r = 0 is the plain conditional branch with s-
    torch.testing.assert_close(guided_velocity_3(net, x, t, c, null, s_pos, s_neg, 1.0, 0.0), v1)


def test_velocity_fn_factories_drive_solvers():
    net, (x, _) = MockNet(), _inputs()
    pos, neg = _cond(3, 4, 1), _cond(3, 2, 2)
    grid = time_grid(3)
    out = euler(make_velocity_fn(net, pos, neg, 4.0), x, grid)
    assert out.shape == x.shape and len(net.calls) == 3 and all(c["batch"] == 6 for c in net.calls)
    torch.testing.assert_close(make_velocity_fn(net, pos)(x, grid[:3]), _single(net, x, grid[:3], pos))
    c, null = _cond(3, 4, 1, rewards=False), Condition.null(net, 1)
    fn3 = make_velocity_fn_3(net, c, null, torch.ones(3, N), torch.zeros(3, N), 2.0, 3.0)
    assert fn3(x, torch.rand(3)).shape == x.shape


def test_errors():
    net, (x, t) = MockNet(), _inputs()
    with pytest.raises(ValueError, match="every branch has rewards or none"):
        guided_velocity(net, x, t, _cond(3, 4, 1), _cond(3, 4, 2, rewards=False), 1.0)
    with pytest.raises(ValueError, match="rewards_pos/rewards_neg"):
        guided_velocity_3(net, x, t, _cond(3, 4, 1), Condition.null(net, 3), torch.ones(3, N), torch.zeros(3, N), 1, 1)
    with pytest.raises(ValueError, match="text_mask must be bool"):
        Condition(torch.zeros(1, 2, D), torch.ones(1, 2))
    with pytest.raises(ValueError, match="rewards must be"):
        Condition(torch.zeros(2, 2, D), torch.ones(2, 2, dtype=torch.bool), torch.zeros(3, N))
    with pytest.raises(ValueError, match="batch 2"):
        guided_velocity(net, x, t, _cond(2, 4, 1), _cond(3, 4, 2), 1.0)
    with pytest.raises(ValueError, match="negative condition"):
        make_velocity_fn(net, _cond(3, 4, 1), None, 2.0)


class DropRecordingNet(MockNet):
    """MockNet whose dropped rewards read as a fixed null value, recording the masks it got."""

    def __call__(self, x, t, text, text_mask, rewards=None, reward_drop=None):
        self.drops = getattr(self, "drops", []) + [reward_drop]
        if reward_drop is not None:
            rewards = torch.where(reward_drop, torch.full_like(rewards, -5.0), rewards)
        return super().__call__(x, t, text, text_mask, rewards=rewards)


def test_reward_drop_reaches_the_model_in_its_own_rows():
    net, (x, t) = DropRecordingNet(), _inputs(3)
    pos, neg = _cond(3, 4, 1), _cond(1, 2, 2)
    drop = torch.tensor([[True, False]] * 3)
    with_drop = Condition(pos.text, pos.text_mask, pos.rewards, drop)
    v = guided_velocity(net, x, t, with_drop, neg.with_rewards(neg.rewards), 2.0)
    sent = net.drops[-1]
    assert sent.shape == (6, N) and sent[:3].equal(drop) and not sent[3:].any()  # the negative drops nothing
    # Same as feeding the null value by hand.
    manual = Condition(pos.text, pos.text_mask, torch.where(drop, torch.full_like(pos.rewards, -5.0), pos.rewards))
    assert torch.allclose(v, guided_velocity(net, x, t, manual, neg, 2.0), atol=1e-6)
    # Three branches: s- rows (null and cond) get drop_neg, the s+ rows drop_pos.
    c3 = Condition(pos.text, pos.text_mask)
    null = Condition(*net.null_text(1))
    rp, rn = torch.ones(1, N), torch.zeros(1, N)
    guided_velocity_3(net, x, t, c3, null, rp, rn, 2.0, 3.0, drop_pos=torch.tensor([[False, True]]))
    sent = net.drops[-1]
    assert not sent[:6].any() and sent[6:].equal(torch.tensor([[False, True]] * 3))
    # No mask anywhere: the model is called without reward_drop (models without null tokens reject it).
    guided_velocity(net, x, t, pos, neg.with_rewards(neg.rewards), 1.0)
    assert net.drops[-1] is None
    with pytest.raises(ValueError, match="reward_drop"):
        Condition(pos.text, pos.text_mask, pos.rewards, torch.ones(3, N))  # not bool
