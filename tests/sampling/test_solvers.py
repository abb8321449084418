import math

import pytest
import torch

from rewardflow.sampling import euler, heun, num_evaluations, solve, time_grid

F64 = torch.float64


def test_time_grid_endpoints_and_shift():
    g = time_grid(4)
    assert g.shape == (5,) and g.dtype == torch.float32
    assert g[0] == 1 and g[-1] == 0 and torch.all(g[1:] < g[:-1])
    s = time_grid(4, shift=3.0)
    assert s[0] == 1 and s[-1] == 0 and torch.all(s[1:-1] > g[1:-1])  # more steps near noise
    with pytest.raises(ValueError, match="num_steps"):
        time_grid(0)


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_constant_field_exact(name):
    x1 = torch.randn(3, 2, 4, 4, dtype=F64)
    c = torch.randn(1, 2, 1, 1, dtype=F64)
    out = solve(name, lambda x, t: c.expand_as(x), x1, time_grid(3, shift=2.0, dtype=F64))
    torch.testing.assert_close(out, x1 - c)  # x(0) = x(1) - c


def _err(name, v, exact, x1, n):
    return (solve(name, v, x1, time_grid(n, dtype=F64)) - exact).abs().max().item()


def _orders(name, v, exact, x1, ns=(16, 32, 64, 128)):
    errs = [_err(name, v, exact, x1, n) for n in ns]
    # error ratio when the steps double: -> 2 for a 1st-order method, -> 4 for 2nd order
    return [errs[i] / errs[i + 1] for i in range(len(errs) - 1)]


def test_linear_field_convergence_orders():
    a = 1.5
    x1 = torch.tensor([[1.0, -2.0]], dtype=F64)
    v = lambda x, t: a * x  # noqa: E731  dx/dt = a x  ->  x(0) = x(1) exp(-a)
    exact = x1 * math.exp(-a)
    for r in _orders("euler", v, exact, x1):
        assert 1.8 < r < 2.2
    for r in _orders("heun", v, exact, x1):
        assert 3.6 < r < 4.4


def test_time_dependent_field_convergence_orders():
    x1 = torch.tensor([[0.5]], dtype=F64)
    v = lambda x, t: (3 * t**2).view(-1, 1).expand_as(x)  # noqa: E731  x(0) = x(1) - 1
    exact = x1 - 1
    for r in _orders("euler", v, exact, x1):
        assert 1.8 < r < 2.2
    for r in _orders("heun", v, exact, x1):
        assert 3.6 < r < 4.4


def test_mixed_field_heun_without_final_euler_is_second_order():
    # dx/dt = x + t: x(t) = C e^t - t - 1, with C = (x1 + 2)/e
    x1 = torch.tensor([[0.3]], dtype=F64)
    v = lambda x, t: x + t.view(-1, 1)  # noqa: E731
    exact = (x1 + 2) / math.e - 1
    errs = [(heun(v, x1, time_grid(n, dtype=F64), final_euler=False) - exact).abs().max().item() for n in (8, 16, 32)]
    assert all(3.6 < errs[i] / errs[i + 1] < 4.4 for i in range(2))


def test_velocity_fn_gets_batched_time_and_nfe_and_callback():
    calls, steps = [], []

    def v(x, t):
        calls.append(t.clone())
        assert t.shape == (x.shape[0],)
        return torch.zeros_like(x)

    grid = time_grid(5)
    x = torch.randn(4, 3)
    heun(v, x, grid, callback=lambda i, t, xx: steps.append((i, float(t))))
    assert len(calls) == num_evaluations("heun", grid) == 9
    assert steps[-1] == (4, 0.0) and len(steps) == 5
    assert all(float(c.min()) > 0 for c in calls)  # never evaluated at t = 0 with final_euler
    calls.clear()
    euler(v, x, grid)
    assert len(calls) == num_evaluations("euler", grid) == 5


def test_unknown_solver_and_bad_grid():
    with pytest.raises(ValueError, match="unknown solver 'rk9'.*euler.*heun"):
        solve("rk9", lambda x, t: x, torch.zeros(1, 1), time_grid(2))
    with pytest.raises(ValueError, match="grid"):
        euler(lambda x, t: x, torch.zeros(1, 1), torch.tensor([1.0]))
