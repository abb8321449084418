"""Training speedup as the MIRO paper defines it.

    speedup = (steps the baseline trained to reach its final score)
              / (steps MIRO needs to reach that same score)

MIRO's step count comes from its periodic evaluation curve: the first evaluated point at or past
the target, linearly interpolated with the point before it. "First crossing" is deliberate: eval
curves from a few dozen images are noisy and non-monotone, and the paper reads the first time the
curve reaches the level, not the last.

Edge cases are reported, never hidden:
- MIRO never reaches the target: `speedup` is None and `upper_bound` is 1 (it would need more
  steps than the baseline), with a reason;
- MIRO is already at the target at its first evaluated point: no point below it to interpolate
  with, so the crossing step is only known to be <= that step and the speedup is a lower bound
  (`lower_bound=True`); at step 0 it is unbounded (`speedup` None, with a reason).
- The baseline's own step-0 evaluation already reaches its final score (e.g. colourfulness: the
  untrained model's pure noise is maximally "colourful"): the start says nothing about learning,
  so the step-0 points of both curves are dropped (`ignore_degenerate_start`, on by default) and
  the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["SpeedupResult", "first_crossing", "training_speedup", "format_speedup"]


@dataclass
class SpeedupResult:
    metric: str
    higher_is_better: bool
    target: float  # the baseline's final score
    baseline_steps: float  # step of the baseline's final evaluation
    miro_steps: float | None  # interpolated first crossing (None: never reached)
    speedup: float | None
    lower_bound: bool = False  # speedup is only known to be >= `speedup`
    upper_bound: float | None = None  # set when MIRO never reached the target
    miro_final: float | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _check(steps: Sequence[float], values: Sequence[float], what: str) -> tuple[list[float], list[float]]:
    s, v = [float(x) for x in steps], [float(x) for x in values]
    if len(s) != len(v):
        raise ValueError(f"{what}: {len(s)} steps but {len(v)} values")
    if not s:
        raise ValueError(f"{what}: empty curve")
    if any(b <= a for a, b in zip(s, s[1:])):
        raise ValueError(f"{what}: steps must be strictly increasing, got {s}")
    if any(not math.isfinite(x) for x in v):
        raise ValueError(f"{what}: non-finite value in {v}")
    return s, v


def first_crossing(
    steps: Sequence[float], values: Sequence[float], target: float, higher_is_better: bool = True
) -> tuple[float | None, bool]:
    """(step at which the curve first reaches `target`, reached_at_first_point).

    Linear interpolation between the last point short of the target and the first point at or
    past it; None when no point reaches it.
    """
    s, v = _check(steps, values, "curve")
    sign = 1.0 if higher_is_better else -1.0
    g = [sign * (x - target) for x in v]  # >= 0 means "reached"
    if g[0] >= 0:
        return s[0], True
    for i in range(1, len(s)):
        if g[i] >= 0:
            frac = -g[i - 1] / (g[i] - g[i - 1])  # g[i-1] < 0 <= g[i], so 0 < frac <= 1
            return s[i - 1] + frac * (s[i] - s[i - 1]), False
    return None, False


def training_speedup(
    base_steps: Sequence[float],
    base_values: Sequence[float],
    miro_steps: Sequence[float],
    miro_values: Sequence[float],
    higher_is_better: bool = True,
    metric: str = "",
    final_window: int = 1,
    ignore_degenerate_start: bool = True,
) -> SpeedupResult:
    """Speedup of MIRO over the baseline on one metric, from the two evaluation curves.

    final_window: the target is the mean of the baseline's last `final_window` evaluations (1 is
    the paper's definition; a larger window trades a little bias for less noise in the target).
    """
    bs, bv = _check(base_steps, base_values, "baseline curve")
    ms, mv = _check(miro_steps, miro_values, "MIRO curve")
    if final_window < 1:
        raise ValueError("final_window must be >= 1")
    tail = bv[-final_window:]
    target = sum(tail) / len(tail)
    base_n = bs[-1]
    res = SpeedupResult(metric, higher_is_better, target, base_n, None, None, miro_final=mv[-1])
    note = ""
    sign = 1.0 if higher_is_better else -1.0
    if ignore_degenerate_start and bs[0] <= 0 and sign * (bv[0] - target) >= 0 and any(x > 0 for x in ms):
        keep = [i for i, x in enumerate(ms) if x > 0]
        ms, mv = [ms[i] for i in keep], [mv[i] for i in keep]
        note = f"step 0 ignored: the untrained baseline ({bv[0]:.4g}) already passes its final score; "
    cross, at_first = first_crossing(ms, mv, target, higher_is_better)
    if cross is None:
        res.upper_bound = 1.0 if ms[-1] >= base_n else base_n / ms[-1]
        res.reason = note + (
            f"MIRO never reached the baseline's final {target:.4g} in {ms[-1]:g} steps "
            f"(its last value {mv[-1]:.4g}): speedup < {res.upper_bound:g}x"
        )
        return res
    res.miro_steps = cross
    if at_first:
        res.lower_bound = True
        if cross <= 0:
            res.reason = (
                "MIRO's first evaluation (step 0) already matches the baseline's final score: "
                "speedup unbounded by these curves"
            )
            return res
        res.reason = f"reached at MIRO's first evaluated point (step {cross:g}): speedup is a lower bound"
    res.speedup = base_n / cross if cross > 0 else None
    if res.speedup is None:
        res.reason = "crossing at step 0: speedup unbounded by these curves"
    res.reason = note + res.reason
    return res


def format_speedup(r: SpeedupResult) -> str:
    """'3.4x', '>= 6x', '< 1x (never reached)' or 'unbounded' for tables."""
    if r.speedup is None:
        if r.upper_bound is not None:
            return f"< {r.upper_bound:.2g}x (never reached)"
        return "unbounded (at step 0)"
    return f"{'>= ' if r.lower_bound else ''}{r.speedup:.1f}x"
