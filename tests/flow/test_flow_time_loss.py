import pytest
import torch

from rewardflow.flow import TimeSamplerConfig, flow_matching_loss, interpolate, sample_time, shift_time


def test_shift_fixes_endpoints_and_moves_toward_noise():
    t = torch.linspace(0, 1, 11)
    s = shift_time(t, 3.0)
    assert s[0] == 0 and s[-1] == 1
    assert torch.all(s[1:-1] > t[1:-1])  # shift > 1 -> more mass at high noise (t near 1)
    assert torch.all(shift_time(t, 0.5)[1:-1] < t[1:-1])
    torch.testing.assert_close(shift_time(torch.tensor([0.5]), 3.0), torch.tensor([0.75]))
    assert shift_time(t, 1.0) is t


@pytest.mark.parametrize("kind", ["uniform", "logit_normal"])
def test_sample_time_range_and_determinism(kind):
    t1 = sample_time(4000, kind, generator=torch.Generator().manual_seed(0))
    t2 = sample_time(4000, kind, generator=torch.Generator().manual_seed(0))
    assert t1.shape == (4000,) and t1.dtype == torch.float32
    assert torch.equal(t1, t2)
    assert t1.min() >= 0 and t1.max() <= 1
    assert abs(t1.mean().item() - 0.5) < 0.03  # both symmetric about 1/2 with mean 0


def test_logit_normal_parameters_and_shift():
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    t = sample_time(20000, "logit_normal", mean=1.0, std=0.5, generator=g())
    logit = torch.logit(t.double())
    assert abs(logit.mean().item() - 1.0) < 0.02 and abs(logit.std().item() - 0.5) < 0.02
    base = sample_time(5000, "uniform", generator=g())
    shifted = sample_time(5000, "uniform", shift=3.0, generator=g())
    torch.testing.assert_close(shifted, shift_time(base, 3.0))
    assert shifted.mean() > base.mean()


def test_sample_time_validation():
    with pytest.raises(ValueError, match="unknown time distribution"):
        sample_time(4, "cosine")
    with pytest.raises(ValueError, match="shift"):
        sample_time(4, shift=0.0)
    with pytest.raises(ValueError, match="std"):
        sample_time(4, std=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        sample_time(-1)
    with pytest.raises(ValueError, match="unknown time distribution"):
        TimeSamplerConfig(kind="nope")
    assert TimeSamplerConfig(kind="uniform").sample(7).shape == (7,)


def test_loss_per_sample_and_zero_for_perfect_model():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    t = torch.rand(3, generator=g)
    seen = {}

    def oracle(x_t, tt, **cond):
        seen.update(cond, x_t=x_t, t=tt)
        return eps - x

    loss = flow_matching_loss(oracle, x, t, eps, text="T", rewards="R")
    assert loss.shape == (3,) and torch.all(loss == 0)
    assert seen["text"] == "T" and seen["rewards"] == "R" and seen["t"] is t
    torch.testing.assert_close(seen["x_t"], interpolate(x, eps, t))

    zero = lambda x_t, tt: torch.zeros_like(x_t)  # noqa: E731
    torch.testing.assert_close(flow_matching_loss(zero, x, t, eps), (eps - x).pow(2).flatten(1).mean(1))


def test_loss_gradients_flow_and_shape_check():
    lin = torch.nn.Conv2d(4, 4, 1)
    x, eps, t = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), torch.rand(2)
    flow_matching_loss(lambda x_t, tt: lin(x_t), x, t, eps).mean().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="model output shape"):
        flow_matching_loss(lambda x_t, tt: x_t[:, :3], x, t, eps)
