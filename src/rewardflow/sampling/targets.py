"""Reward targets (s+, s-) for multi-reward guidance.

Values are in the model's [0, 1] space (bin / (B - 1)); 1 asks for the best bin. Presets:
high quality (s+ = 1, s- = 0), custom trade-offs, isolating one reward, pairwise A/B.

A target may also be ``None``, "unspecified": that reward's token is replaced by the model's
learned null token, as training did for a fraction ``reward_dropout`` of the rewards. The model
then samples that reward from its data distribution instead of at a chosen level. Only a model
trained with ``reward_dropout > 0`` has learned what the null tokens mean (the pipeline checks).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["RewardTargets", "custom", "format_target", "high_quality", "isolate", "pairwise"]


def format_target(value: float | None) -> str:
    """A target for reports: 0.625 -> '0.625', None (unspecified) -> 'none'."""
    return "none" if value is None else f"{value:g}"


def _check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    keys = tuple(keys)
    if len(set(keys)) != len(keys):
        raise ValueError(f"reward keys must be unique; got {list(keys)}")
    return keys


def _check_known(keys: Sequence[str], given) -> None:
    unknown = [k for k in given if k not in keys]
    if unknown:
        raise ValueError(f"unknown reward key(s) {unknown}; this model's reward keys are {list(keys)}")


def _check_value(key: str, value) -> float | None:
    if value is None:
        return None  # unspecified: the reward's null token
    # Strings and bools are refused rather than converted: "0.5" or True is a caller's bug.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(
            f"target for reward {key!r} must be a number in [0, 1] (or None: unspecified); "
            f"got {value!r} of type {type(value).__name__}"
        )
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"target for reward {key!r} must be in [0, 1]; got {value!r}")
    return v


@dataclass(frozen=True)
class RewardTargets:
    """s+ (positive) and s- (negative) per reward key, both in the model's key order; a value of
    None leaves that reward unspecified (its null token) in that branch."""

    positive: dict[str, float | None]
    negative: dict[str, float | None]

    def __post_init__(self) -> None:
        if list(self.positive) != list(self.negative):
            raise ValueError(
                f"positive and negative targets must have the same keys in the same order; "
                f"got {list(self.positive)} and {list(self.negative)}"
            )
        # copies, so later edits to the caller's dicts cannot bypass validation
        object.__setattr__(self, "positive", {k: _check_value(k, v) for k, v in self.positive.items()})
        object.__setattr__(self, "negative", {k: _check_value(k, v) for k, v in self.negative.items()})

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.positive)

    @property
    def unspecified(self) -> tuple[str, ...]:
        """Keys left unspecified (None) in either branch."""
        return tuple(k for k in self.keys if self.positive[k] is None or self.negative[k] is None)

    def tensors(self, batch: int, device=None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(s+, s-), each (batch, N) with columns in ``keys`` order; an unspecified value reads 0
        (the model ignores it: ``drop_masks`` swaps in the null token)."""

        def row(d):
            return torch.tensor([0.0 if d[k] is None else d[k] for k in self.keys], device=device, dtype=dtype)

        return row(self.positive).expand(batch, -1).clone(), row(self.negative).expand(batch, -1).clone()

    def drop_masks(self, batch: int, device=None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(drop+, drop-): bool (batch, N), True where a target is unspecified; None for a branch
        with every target given, so models without null tokens never see a mask."""

        def mask(d):
            m = [d[k] is None for k in self.keys]
            return torch.tensor(m, device=device).expand(batch, -1).clone() if any(m) else None

        return mask(self.positive), mask(self.negative)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-friendly record of the targets used (pipelines return it with the images)."""
        return {"positive": dict(self.positive), "negative": dict(self.negative)}  # None -> JSON null


def high_quality(keys: Sequence[str]) -> RewardTargets:
    """The paper's default: s+ = all 1, s- = all 0."""
    keys = _check_keys(keys)
    return RewardTargets({k: 1.0 for k in keys}, {k: 0.0 for k in keys})


def custom(
    keys: Sequence[str],
    targets: Mapping[str, float],
    default: float = 1.0,
    negative: Mapping[str, float] | float | None = None,
    negative_default: float = 0.0,
) -> RewardTargets:
    """Any s+ in [0, 1]^N: ``targets`` sets some keys, the rest get ``default``.

    ``negative``: None -> all ``negative_default``; a number -> every key; a mapping -> those
    keys, the rest ``negative_default``. E.g. ``custom(keys, {"aesthetic_score": 0.625})``.
    A target of None leaves that reward unspecified; it is then unspecified in s- too unless the
    negative names it (so no contrast acts on it by default).
    """
    keys = _check_keys(keys)
    _check_known(keys, targets)
    pos = {k: _check_value(k, targets.get(k, default)) for k in keys}
    if negative is None or isinstance(negative, Mapping):
        negative = negative or {}
        _check_known(keys, negative)
        neg = {k: _check_value(k, negative.get(k, None if pos[k] is None else negative_default)) for k in keys}
    else:
        neg = {k: _check_value(k, negative) for k in keys}
    return RewardTargets(pos, neg)


def _anchor(keys: tuple[str, ...], anchor: Mapping[str, float | None] | None, own: Sequence[str]) -> dict:
    """Levels of the rewards held equal in s+ and s- (default 1, the project page's "anchored high")."""
    anchor = dict(anchor or {})
    _check_known(keys, anchor)
    clash = [k for k in own if k in anchor]
    if clash:
        raise ValueError(f"anchor names {clash}, which this mode sets itself; anchor only the other rewards")
    return {j: _check_value(j, anchor.get(j, 1.0)) for j in keys}


def isolate(keys: Sequence[str], k: str, anchor: Mapping[str, float | None] | None = None) -> RewardTargets:
    """Guide along reward k only: s+_k = 1, s-_k = 0, every other reward at its ``anchor`` level
    (default 1) in both branches, so their contrasts cancel.

    An anchor below 1 keeps a reward that would hurt the others at 1 (e.g. a colourfulness that
    overrides caption colours) at a level of your choosing; None leaves it unspecified.
    """
    keys = _check_keys(keys)
    _check_known(keys, [k])
    held = _anchor(keys, anchor, [k])
    return RewardTargets({**held, k: 1.0}, {**held, k: 0.0})


def pairwise(
    keys: Sequence[str], a: str, b: str, t: float, anchor: Mapping[str, float | None] | None = None
) -> RewardTargets:
    """A/B trade-off at t: s+_a = s+_b = 1, s-_a = t, s-_b = 1 - t, the others at ``anchor``
    (default 1) in both branches.

    t = 0 pushes fully toward a (its negative is 0), t = 1 fully toward b.
    """
    keys = _check_keys(keys)
    _check_known(keys, [a, b])
    if a == b:
        raise ValueError(f"pairwise needs two different rewards; got {a!r} twice")
    if not (isinstance(t, (int, float)) and 0.0 <= t <= 1.0):
        raise ValueError(f"pairwise t must be a number in [0, 1]; got {t!r}")
    held = _anchor(keys, anchor, [a, b])
    return RewardTargets({**held, a: 1.0, b: 1.0}, {**held, a: float(t), b: 1.0 - t})


def with_overrides(base: RewardTargets | None, positive: dict, negative: dict) -> tuple[dict, dict]:
    """A mode's targets (``base``: high / isolate / pairwise, or None) with single entries set on
    top: (s+, s-) as partial dicts for the pipeline. An s+ entry of None (unspecified) leaves that
    reward without contrast, so it is None in s- too unless s- names it."""
    positive, negative = dict(positive), dict(negative)
    if base is None:
        return positive, negative
    negative = {k: None for k, v in positive.items() if v is None} | negative
    return base.positive | positive, base.negative | negative
