"""Exponential moving average of the weights, kept in fp32 whatever the training precision."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Holds `module`, an fp32 deep copy of the model whose parameters track the live ones.

    The copy is a full model (same class, same config), so it samples, evaluates and
    `save_pretrained`s exactly like the live model; checkpoints ship it as the inference weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.num_updates = 0
        self._ema_params = [p for p in self.module.parameters()]
        self._ema_buffers = [b for b in self.module.buffers()]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = [p.detach() for p in model.parameters()]
        if len(params) != len(self._ema_params):
            raise ValueError("EMA.update got a model with a different parameter list")
        d = self.current_decay()
        src = [p.float() if p.dtype != torch.float32 else p for p in params]
        torch._foreach_lerp_(self._ema_params, src, 1.0 - d)
        # Buffers (e.g. running statistics) are copied, not averaged: they are not optimised.
        for b_ema, b in zip(self._ema_buffers, model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def state(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates}

    def load_state(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
