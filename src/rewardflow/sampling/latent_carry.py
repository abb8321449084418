"""Carry a self-conditioned backbone's latents from one network evaluation to the next.

A RIN sees the latents of its previous evaluation (zeros at the first). Guidance stacks its
branches in a fixed order (positive rows, then negative), so carrying the latents row for row
carries them per CFG branch, as the released MIRO sampler does. When the number of rows changes
(a guidance interval switching between 1 and 2 branches), the positive rows' latents are kept
or repeated.
"""

from __future__ import annotations

import torch


class LatentCarry:
    """Wraps a model with ``run(...) -> (v, latents)``; called with the denoiser contract."""

    def __init__(self, model):
        self.model = model
        self.latents: torch.Tensor | None = None
        # (inputs, context) pairs: a RIN's conditioning does not depend on the noise level, and
        # the velocity functions pass the same condition tensors at every step.
        self._contexts: list[tuple[tuple, object]] = []

    def __getattr__(self, name):  # null_text, config, ...: the wrapped model's
        return getattr(self.model, name)

    def _previous(self, rows: int) -> torch.Tensor | None:
        z = self.latents
        if z is None or z.shape[0] == rows:
            return z
        if z.shape[0] > rows and z.shape[0] % rows == 0:
            return z[:rows]
        if rows % z.shape[0] == 0:
            return z.repeat(rows // z.shape[0], 1, 1)
        return None  # an unrelated batch: start again from zeros

    def _context(self, inputs: tuple):
        for key, ctx in self._contexts:
            if all(a is b for a, b in zip(key, inputs)):
                return ctx
        ctx = self.model.cond.context(*inputs)
        self._contexts = [*self._contexts[-2:], (inputs, ctx)]  # guided + unguided (+ one spare)
        return ctx

    def __call__(self, x_t, t, text, text_mask, rewards=None, reward_drop=None):
        inputs = (text, text_mask, rewards, reward_drop)
        prev = self._previous(x_t.shape[0])
        v, self.latents = self.model.run(x_t, t, *inputs, prev_latents=prev, context=self._context(inputs))
        return v


def with_latent_carry(model):
    """``model`` itself, or a fresh LatentCarry when the backbone is self-conditioned."""
    return LatentCarry(model) if getattr(model, "carries_latents", False) else model
