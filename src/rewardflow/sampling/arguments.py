"""Validation of the pipeline's sampling arguments: clear errors that name the argument."""

from __future__ import annotations

import math


def check_number(name: str, value, lo: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (lo is not None and value < lo):
        raise ValueError(f"{name} must be a finite number{'' if lo is None else f' >= {lo}'}, got {value!r}")
    return float(value)


def check_interval(value):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be (lo, hi) times in [0, 1], got {value!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"guidance_interval must satisfy 0 <= lo < hi <= 1 (t = 1 is noise), got {value!r}")
    return lo, hi


def check_int(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    return value
