"""The flow-matching regression loss, independent of the backbone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .paths import interpolate, target_velocity

__all__ = ["flow_matching_loss"]


def flow_matching_loss(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    **cond: Any,
) -> torch.Tensor:
    """Per-sample loss (B,) = mean over non-batch dims of (model(x_t, t, **cond) - (eps - x))^2.

    x, eps: (B, ...); t: (B,). ``cond`` goes to the model unchanged (text, text_mask, rewards,
    reward_drop for the denoiser contract). Per-sample values let the caller weight or log by
    t or by reward before reducing. The square is taken in float32 so bf16 autocast stays exact
    enough for the mean.
    """
    x_t = interpolate(x, eps, t)
    pred = model(x_t, t, **cond)
    target = target_velocity(x, eps)
    if pred.shape != target.shape:
        raise ValueError(f"model output shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    err = (pred.float() - target.float()).pow(2)
    return err.reshape(err.shape[0], -1).mean(dim=1)
