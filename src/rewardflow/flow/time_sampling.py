"""Training-time distributions of t in [0, 1] (t = 1 is pure noise).

Logit-normal(m, s) is the SD3 / MIRO default: it concentrates training on mid-noise levels,
where the velocity is hardest to predict. The SD3 shift moves mass toward high noise, which
large images need because their signal survives more noise.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch

__all__ = ["TIME_KINDS", "TimeSamplerConfig", "sample_time", "shift_time"]

TIME_KINDS = ("logit_normal", "uniform")


def _check_shift(shift: float) -> None:
    if not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a finite number > 0; got {shift!r}")


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 time shift t' = s t / (1 + (s - 1) t), elementwise on any shape.

    Fixes t = 0 and t = 1; shift > 1 pushes every interior t up (toward noise), shift < 1 down.
    """
    _check_shift(shift)
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def sample_time(
    n: int,
    kind: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw n training times -> (n,) float32 in [0, 1], then apply ``shift_time``.

    Draws happen on the generator's device (so a CPU generator gives the same t on any device)
    and the result is moved to ``device``. ``mean``/``std`` apply to logit-normal only.
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or n < 0:
        raise ValueError(f"n must be a non-negative int; got {n!r}")
    n = operator.index(n)
    if kind not in TIME_KINDS:
        raise ValueError(f"unknown time distribution {kind!r}; expected one of {TIME_KINDS}")
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(f"logit-normal needs finite mean and std > 0; got mean={mean!r}, std={std!r}")
    _check_shift(shift)
    draw_device = generator.device if generator is not None else device
    if kind == "uniform":
        t = torch.rand(n, generator=generator, device=draw_device)
    else:
        t = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=draw_device))
    return shift_time(t, shift).to(device) if device is not None else shift_time(t, shift)


@dataclass
class TimeSamplerConfig:
    """Serialisable settings for ``sample_time`` (kept in the training config)."""

    kind: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        # Fail when the config is built (e.g. parsed from YAML), not at the first training step.
        sample_time(0, self.kind, self.mean, self.std, self.shift)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """(n,) times drawn with these settings."""
        return sample_time(n, self.kind, self.mean, self.std, self.shift, generator=generator, device=device)
