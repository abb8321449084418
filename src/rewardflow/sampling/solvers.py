"""ODE solvers for sampling: integrate dx/dt = v(x, t) from t = 1 (noise) to t = 0 (data).

``velocity_fn(x, t)`` takes x (B, ...) and t (B,) and returns v (B, ...); guidance lives in
the velocity function (see ``guidance``), so solvers stay plain numerical integrators.
``callback(step, t_next, x)`` is called after each step (progress bars, trajectory capture).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..flow.time_sampling import shift_time

__all__ = ["SOLVERS", "VelocityFn", "euler", "heun", "num_evaluations", "solve", "time_grid"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def time_grid(num_steps: int, shift: float = 1.0, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(num_steps + 1,) times from 1.0 down to 0.0, uniform then ``shift_time``-ed.

    shift > 1 spends more steps near t = 1 (high noise), as SD3 does for large images.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1; got {num_steps!r}")
    return shift_time(torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=dtype), shift)


def _check_grid(grid: torch.Tensor) -> None:
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"grid must be a 1-D tensor of at least 2 times; got shape {tuple(grid.shape)}")


def _steps(x: torch.Tensor, grid: torch.Tensor):
    """Yield (i, t_cur, t_next, t_cur as (B,), h) on x's device; h = t_next - t_cur (< 0)."""
    _check_grid(grid)
    grid = grid.to(x.device)
    for i in range(grid.numel() - 1):
        t_cur, t_next = grid[i], grid[i + 1]
        yield i, t_cur, t_next, t_cur.expand(x.shape[0]), (t_next - t_cur).to(x.dtype)


def euler(
    velocity_fn: VelocityFn, x: torch.Tensor, grid: torch.Tensor, callback: Callback | None = None
) -> torch.Tensor:
    """First-order Euler over ``grid``; x (B, ...) at grid[0] -> x at grid[-1]. NFE = len(grid) - 1."""
    for i, _, t_next, t_b, h in _steps(x, grid):
        x = x + h * velocity_fn(x, t_b)
        if callback is not None:
            callback(i, t_next, x)
    return x


def heun(
    velocity_fn: VelocityFn,
    x: torch.Tensor,
    grid: torch.Tensor,
    callback: Callback | None = None,
    final_euler: bool = True,
) -> torch.Tensor:
    """Second-order Heun (explicit trapezoid) over ``grid``.

    As in EDM, a step that ends at t = 0 is a plain Euler step when ``final_euler`` (saves one
    network call and avoids evaluating the model at t = 0 where it is rarely trained; the local
    error of that one step is O(h^2), so global order stays 2). NFE = 2 (len(grid) - 1) - 1.
    """
    for i, _, t_next, t_b, h in _steps(x, grid):
        d_cur = velocity_fn(x, t_b)
        x_pred = x + h * d_cur
        if final_euler and t_next == 0:
            x = x_pred
        else:
            d_next = velocity_fn(x_pred, t_next.expand(x.shape[0]))
            x = x + h * 0.5 * (d_cur + d_next)
        if callback is not None:
            callback(i, t_next, x)
    return x


SOLVERS: dict[str, Callable[..., torch.Tensor]] = {"euler": euler, "heun": heun}


def solve(
    name: str, velocity_fn: VelocityFn, x: torch.Tensor, grid: torch.Tensor, callback: Callback | None = None
) -> torch.Tensor:
    """Run the solver called ``name`` (a key of ``SOLVERS``) over ``grid``."""
    try:
        fn = SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; expected one of {sorted(SOLVERS)}") from None
    return fn(velocity_fn, x, grid, callback=callback)


def num_evaluations(name: str, grid: torch.Tensor) -> int:
    """Velocity-function calls ``solve(name, ..., grid)`` makes (for FLOP / speed reporting)."""
    steps = grid.numel() - 1
    if name == "euler":
        return steps
    if name == "heun":
        return 2 * steps - int(bool(grid[-1] == 0))
    raise ValueError(f"unknown solver {name!r}; expected one of {sorted(SOLVERS)}")
