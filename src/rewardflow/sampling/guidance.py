"""Multi-reward classifier-free guidance.

Two branches (the MIRO formula):
    v = v(c, s+) + w * (v(c, s+) - v(c_neg, s-))
Three branches (separate text and reward scales):
    v = v(null, s-) + w_t * (v(c, s-) - v(null, s-)) + w_r * (v(c, s+) - v(c, s-))

All branches run as ONE forward of batch 2B (3B): one kernel launch per layer instead of two
or three, and batch-dependent layers see the same batch for every branch. Guidance is applied
to the whole output tensor (every channel; DiT issue #41 guided 3 of 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .solvers import VelocityFn

__all__ = [
    "Condition",
    "concat_conditions",
    "guided_velocity",
    "guided_velocity_3",
    "make_velocity_fn",
    "make_velocity_fn_3",
    "with_guidance_interval",
]


@dataclass
class Condition:
    """What one guidance branch conditions on, in the denoiser contract's shapes.

    text: (B, L, D) float; text_mask: (B, L) bool, True = real token; rewards: (B, N) in [0, 1]
    or None for a baseline model without reward conditioning; reward_drop: (B, N) bool, True =
    that reward unspecified (the model's null token), or None for none. B may be 1 to share one
    condition (e.g. an empty negative prompt) across the batch.
    """

    text: torch.Tensor
    text_mask: torch.Tensor
    rewards: torch.Tensor | None = None
    reward_drop: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.text.ndim != 3:
            raise ValueError(f"text must be (B, L, D); got shape {tuple(self.text.shape)}")
        if self.text_mask.shape != self.text.shape[:2]:
            raise ValueError(
                f"text_mask must be (B, L) = {tuple(self.text.shape[:2])}; got {tuple(self.text_mask.shape)}"
            )
        if self.text_mask.dtype != torch.bool:
            raise ValueError(f"text_mask must be bool (True = real token); got {self.text_mask.dtype}")
        if self.rewards is not None and (self.rewards.ndim != 2 or self.rewards.shape[0] != self.text.shape[0]):
            raise ValueError(f"rewards must be (B, N) with B = {self.text.shape[0]}; got {tuple(self.rewards.shape)}")
        if self.reward_drop is not None and (
            self.rewards is None or self.reward_drop.shape != self.rewards.shape or self.reward_drop.dtype != torch.bool
        ):
            raise ValueError(
                "reward_drop must be a bool tensor shaped like rewards (B, N); got "
                f"{tuple(self.reward_drop.shape)} {self.reward_drop.dtype} for rewards "
                f"{None if self.rewards is None else tuple(self.rewards.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.text.shape[0]

    @classmethod
    def null(cls, model, batch: int, rewards: torch.Tensor | None = None) -> Condition:
        """The model's learned null text (``model.null_text(B)``) as a condition."""
        text, mask = model.null_text(batch)
        return cls(text, mask, rewards)

    def with_rewards(self, rewards: torch.Tensor | None, reward_drop: torch.Tensor | None = None) -> Condition:
        """Same text, other reward vector (B, N) (or (1, N), broadcast to the text's batch), and
        optionally which of them are unspecified."""
        if rewards is not None and rewards.ndim == 2 and rewards.shape[0] == 1:
            rewards = rewards.expand(self.batch_size, -1)
        if reward_drop is not None and reward_drop.ndim == 2 and reward_drop.shape[0] == 1:
            reward_drop = reward_drop.expand(self.batch_size, -1)
        return Condition(self.text, self.text_mask, rewards, reward_drop)

    def expand(self, batch: int) -> Condition:
        """Broadcast a batch-1 condition to ``batch`` (views, no copy)."""
        if self.batch_size == batch:
            return self
        if self.batch_size != 1:
            raise ValueError(f"condition has batch {self.batch_size}, expected {batch} (or 1 to broadcast)")
        r = None if self.rewards is None else self.rewards.expand(batch, -1)
        d = None if self.reward_drop is None else self.reward_drop.expand(batch, -1)
        return Condition(self.text.expand(batch, -1, -1), self.text_mask.expand(batch, -1), r, d)


def _pad_text(c: Condition, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = length - c.text.shape[1]
    if extra == 0:
        return c.text, c.text_mask
    b, _, d = c.text.shape
    text = torch.cat([c.text, c.text.new_zeros(b, extra, d)], dim=1)
    mask = torch.cat([c.text_mask, c.text_mask.new_zeros(b, extra)], dim=1)
    return text, mask


def concat_conditions(conds: Sequence[Condition]) -> Condition:
    """Stack conditions along the batch; shorter texts are padded with zeros and mask False."""
    with_r = [c.rewards is not None for c in conds]
    if any(with_r) and not all(with_r):
        raise ValueError("either every branch has rewards or none does (baseline model)")
    length = max(c.text.shape[1] for c in conds)
    padded = [_pad_text(c, length) for c in conds]
    rewards = torch.cat([c.rewards for c in conds]) if all(with_r) else None
    drop = None
    if any(c.reward_drop is not None for c in conds):  # branches without a mask drop nothing
        drop = torch.cat(
            [torch.zeros_like(c.rewards, dtype=torch.bool) if c.reward_drop is None else c.reward_drop for c in conds]
        )
    return Condition(torch.cat([p[0] for p in padded]), torch.cat([p[1] for p in padded]), rewards, drop)


def _batched_time(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, device=x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def _forward(model, x: torch.Tensor, t: torch.Tensor, c: Condition) -> torch.Tensor:
    if c.reward_drop is None:  # models without null tokens reject any reward_drop argument
        return model(x, t, c.text, c.text_mask, rewards=c.rewards)
    return model(x, t, c.text, c.text_mask, rewards=c.rewards, reward_drop=c.reward_drop)


def _branches(
    model, x: torch.Tensor, t, conds: Sequence[Condition], stacked: Condition | None = None
) -> tuple[torch.Tensor, ...]:
    """Run k branches as one forward of batch k*B; returns k outputs of shape (B, ...).
    ``stacked``: the conditions already concatenated (velocity functions build it once)."""
    b, k = x.shape[0], len(conds)
    t = _batched_time(t, x)
    cond = stacked if stacked is not None else concat_conditions([c.expand(b) for c in conds])
    out = _forward(model, torch.cat([x] * k), torch.cat([t] * k), cond)
    if out.shape[0] != k * b:
        raise ValueError(f"model returned batch {out.shape[0]} for an input batch of {k * b}")
    return out.chunk(k)


def guided_velocity(
    model, x: torch.Tensor, t: torch.Tensor | float, pos: Condition, neg: Condition, scale: float
) -> torch.Tensor:
    """MIRO CFG: v(pos) + scale * (v(pos) - v(neg)); x (B, ...), t (B,) -> (B, ...).

    pos carries (c, s+) and neg (c_neg, s-). scale = 0 skips the negative branch (one forward
    of batch B), which gives the same result at half the cost.
    """
    if scale == 0:
        return _forward(model, x, _batched_time(t, x), pos.expand(x.shape[0]))
    v_pos, v_neg = _branches(model, x, t, [pos, neg])
    return v_pos + scale * (v_pos - v_neg)


def guided_velocity_3(
    model,
    x: torch.Tensor,
    t: torch.Tensor | float,
    cond: Condition,
    null: Condition,
    rewards_pos: torch.Tensor,
    rewards_neg: torch.Tensor,
    text_scale: float,
    reward_scale: float,
    drop_pos: torch.Tensor | None = None,
    drop_neg: torch.Tensor | None = None,
) -> torch.Tensor:
    """Separate scales: v(null,s-) + w_t (v(c,s-) - v(null,s-)) + w_r (v(c,s+) - v(c,s-)).

    cond / null carry text only (their ``rewards`` must be None); rewards_pos / rewards_neg are
    s+ / s- of shape (B, N) or (1, N), drop_pos / drop_neg their unspecified entries (bool, same
    shape) or None. One forward of batch 3B.
    """
    if cond.rewards is not None or null.rewards is not None:
        raise ValueError("guided_velocity_3 takes rewards via rewards_pos/rewards_neg; leave Condition.rewards None")
    if rewards_pos is None or rewards_neg is None:
        raise ValueError("three-branch guidance needs rewards_pos and rewards_neg (use guided_velocity for a baseline)")
    conds = _three_branches(x.shape[0], cond, null, rewards_pos, rewards_neg, drop_pos, drop_neg)
    v_null, v_neg, v_pos = _branches(model, x, t, conds)
    return v_null + text_scale * (v_neg - v_null) + reward_scale * (v_pos - v_neg)


def _three_branches(b, cond, null, rewards_pos, rewards_neg, drop_pos, drop_neg) -> list[Condition]:
    """[(null, s-), (c, s-), (c, s+)] at batch b."""
    cond, null = cond.expand(b), null.expand(b)
    return [
        null.with_rewards(rewards_neg, drop_neg),
        cond.with_rewards(rewards_neg, drop_neg),
        cond.with_rewards(rewards_pos, drop_pos),
    ]


def make_velocity_fn(model, pos: Condition, neg: Condition | None = None, scale: float = 0.0) -> VelocityFn:
    """``velocity_fn(x, t)`` for the solvers, applying ``guided_velocity`` at every call."""
    if neg is None and scale != 0:
        raise ValueError("a guidance scale != 0 needs a negative condition")
    stacked: dict[int, Condition] = {}  # batch -> the branches concatenated once, not at every step

    def velocity_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if scale == 0:
            return _forward(model, x, _batched_time(t, x), pos.expand(b))
        if b not in stacked:
            stacked[b] = concat_conditions([pos.expand(b), neg.expand(b)])
        v_pos, v_neg = _branches(model, x, t, [pos, neg], stacked[b])
        return v_pos + scale * (v_pos - v_neg)

    return velocity_fn


def make_velocity_fn_3(
    model,
    cond: Condition,
    null: Condition,
    rewards_pos: torch.Tensor,
    rewards_neg: torch.Tensor,
    text_scale: float,
    reward_scale: float,
    drop_pos: torch.Tensor | None = None,
    drop_neg: torch.Tensor | None = None,
) -> VelocityFn:
    """``velocity_fn(x, t)`` for the solvers, applying ``guided_velocity_3`` at every call."""

    if cond.rewards is not None or null.rewards is not None or rewards_pos is None or rewards_neg is None:
        raise ValueError("three-branch guidance: text in cond / null, rewards in rewards_pos / rewards_neg")
    stacked: dict[int, tuple[list[Condition], Condition]] = {}  # built once per batch size

    def velocity_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if b not in stacked:
            conds = _three_branches(b, cond, null, rewards_pos, rewards_neg, drop_pos, drop_neg)
            stacked[b] = (conds, concat_conditions(conds))
        v_null, v_neg, v_pos = _branches(model, x, t, *stacked[b])
        return v_null + text_scale * (v_neg - v_null) + reward_scale * (v_pos - v_neg)

    return velocity_fn


def with_guidance_interval(guided: VelocityFn, unguided: VelocityFn, interval: tuple[float, float]) -> VelocityFn:
    """Guidance only while lo <= t <= hi (t = 1 is pure noise), the unguided conditional velocity
    elsewhere: guidance at the highest noise levels fixes the layout early and can over-steer it,
    at the lowest it only sharpens what is there (Kynkaanniemi et al. 2024)."""
    lo, hi = interval

    def velocity_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = float(t.reshape(-1)[0]) if torch.is_tensor(t) else float(t)  # one time per solver step
        return guided(x, t) if lo <= tt <= hi else unguided(x, t)

    return velocity_fn
