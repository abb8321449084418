"""The straight (rectified-flow) path between data and noise.

Convention: ``x_t = (1 - t) * x + t * eps``; t = 0 is data, t = 1 is noise,
and the velocity the model learns is ``d x_t / dt = eps - x``.
"""

from __future__ import annotations

import torch

__all__ = ["expand_time", "interpolate", "target_velocity"]


def expand_time(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Reshape t (scalar or (B,)) to (B, 1, ..., 1) so it broadcasts over ``like`` (B, ...)."""
    t = torch.as_tensor(t, device=like.device)
    if t.ndim == 0:
        return t.to(like.dtype)
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or have shape (B,) = ({like.shape[0]},); got {tuple(t.shape)}")
    return t.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def interpolate(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Point on the path: x (B, ...) data, eps (B, ...) noise, t (B,) or scalar -> x_t (B, ...)."""
    if x.shape != eps.shape:
        raise ValueError(f"x and eps must have the same shape; got {tuple(x.shape)} and {tuple(eps.shape)}")
    tt = expand_time(t, x)
    return (1 - tt) * x + tt * eps


def target_velocity(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Regression target eps - x (B, ...); constant along the path, so it does not need t."""
    if x.shape != eps.shape:
        raise ValueError(f"x and eps must have the same shape; got {tuple(x.shape)} and {tuple(eps.shape)}")
    return eps - x
