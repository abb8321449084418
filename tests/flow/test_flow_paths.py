import pytest
import torch

from rewardflow.flow import interpolate, target_velocity


def _pair(shape=(3, 4, 5, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def test_endpoints():
    x, eps = _pair()
    assert torch.equal(interpolate(x, eps, torch.zeros(3, dtype=torch.float64)), x)
    assert torch.equal(interpolate(x, eps, torch.ones(3, dtype=torch.float64)), eps)


def test_per_sample_time_broadcast():
    x, eps = _pair()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    xt = interpolate(x, eps, t)
    assert torch.equal(xt[0], x[0]) and torch.equal(xt[2], eps[2])
    torch.testing.assert_close(xt[1], 0.5 * (x[1] + eps[1]))
    # a scalar t applies to every sample
    torch.testing.assert_close(interpolate(x, eps, 0.25), 0.75 * x + 0.25 * eps)


def test_target_is_time_derivative_autograd():
    x, eps = _pair()
    t = torch.rand(3, dtype=torch.float64, requires_grad=True)
    xt = interpolate(x, eps, t)
    # forward-mode derivative d x_t / dt (unit tangent in each t) by the double-vjp trick
    u = torch.zeros_like(xt, requires_grad=True)
    (g,) = torch.autograd.grad(xt, t, grad_outputs=u, create_graph=True)
    (dxt,) = torch.autograd.grad(g, u, grad_outputs=torch.ones_like(g))
    torch.testing.assert_close(dxt, target_velocity(x, eps))


def test_target_is_time_derivative_finite_difference():
    x, eps = _pair(seed=1)
    t, h = torch.full((3,), 0.3, dtype=torch.float64), 1e-6
    fd = (interpolate(x, eps, t + h) - interpolate(x, eps, t - h)) / (2 * h)
    torch.testing.assert_close(fd, target_velocity(x, eps), atol=1e-7, rtol=1e-7)


def test_shape_errors():
    x, eps = _pair()
    with pytest.raises(ValueError, match="shape"):
        interpolate(x, eps, torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        target_velocity(x, eps[:2])
