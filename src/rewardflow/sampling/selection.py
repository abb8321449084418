"""Test-time scaling: best-of-N selection by a reward (or a weighted sum of rewards).

For each prompt we draw N candidates, score every candidate and keep the best. Seeds are nested
by construction: candidate j of prompt i (of P prompts) uses ``seed + j * P + i``, which does not
depend on N. So the candidates for N are exactly the first N candidates for 2N, the best of 2N
can never score below the best of N, and best-of-1 returns the same images as
``pipe(prompts, seed=seed)``. (Candidates are regenerated per call, so across calls with different
batch compositions float32 kernels can move pixels by ~1e-6; with ``batch_size=len(prompts)``
every candidate group is its own batch and the nesting is bit-exact.)

Selector forms:
- ``"name"``: one registered reward (``rewardflow.rewards`` registry);
- ``{"name": weight, ...}``: weighted sum of registered rewards;
- a callable ``(images, prompts) -> (B,)`` tensor / array.

Normalisation of a weighted sum (``normalize=``), because raw reward scales differ widely:
- ``"none"`` (default): raw weighted sum; right for one reward or rewards on a common scale;
- ``"bins"``: each reward first goes through the model's training bins (its quantile position
  in the training data, in [0, 1]); fixed and independent of the candidate pool. Needs every
  reward name to be a bins key;
- ``"zscore"``: per prompt, standardise each reward over that prompt's N candidates. This depends
  on the pool, so the nesting guarantee above holds for single rewards but not strictly here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["BestOfNResult", "best_of_n", "candidate_seeds", "resolve_reward", "score_images"]

NORMALIZE = ("none", "bins", "zscore")


def candidate_seeds(num_prompts: int, n: int, seed: int = 0) -> list[list[int]]:
    """``seeds[i][j] = seed + j * num_prompts + i``: nested in n, all distinct."""
    return [[seed + j * num_prompts + i for j in range(n)] for i in range(num_prompts)]


def resolve_reward(name: str):
    """A reward object from the registry, with the registry's own error for unknown names."""
    from rewardflow.rewards.registry import get_reward  # late: providers import lazily

    return get_reward(name)


def _as_1d(values, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(
        np.asarray(values.detach().cpu() if torch.is_tensor(values) else values), dtype=torch.float64
    ).reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{what} returned {t.numel()} scores for {n} images")
    return t


def score_images(
    images: torch.Tensor, prompts: Sequence[str], names: Sequence[str], rewards: Mapping[str, object] | None = None
) -> dict[str, torch.Tensor]:
    """Raw scores ``{name: (B,) float64}`` of images (B, C, H, W) in [-1, 1]."""
    out = {}
    for name in names:
        reward = (rewards or {}).get(name) or resolve_reward(name)
        with torch.no_grad():
            out[name] = _as_1d(reward.score(images, list(prompts)), len(prompts), f"reward {name!r}")
    return out


@dataclass
class BestOfNResult:
    """Selected images (one per prompt) and the evidence behind each choice."""

    images: object  # per ``output_type``, one per prompt
    prompts: list[str]
    seeds: list[int]  # seed of each selected image
    selected_index: list[int]  # which candidate (0..N-1) won, per prompt
    scores: torch.Tensor  # (P, N) selector value of every candidate
    reward_scores: dict[str, torch.Tensor]  # raw (P, N) score per named reward
    candidate_seeds: list[list[int]]
    candidates: object | None = None  # (P, N, C, H, W) in [-1, 1] if keep_candidates
    reward_targets: dict = field(default_factory=dict)

    @property
    def selected_scores(self) -> torch.Tensor:
        return self.scores.gather(1, torch.tensor(self.selected_index).view(-1, 1)).view(-1)


def _combine(
    raw: dict[str, torch.Tensor], weights: dict[str, float], normalize: str, bins, shape: tuple[int, int]
) -> torch.Tensor:
    total = torch.zeros(shape, dtype=torch.float64)
    for name, w in weights.items():
        s = raw[name].view(shape)
        if normalize == "bins":
            if bins is None or name not in bins.keys:
                raise ValueError(
                    f"normalize='bins' needs reward {name!r} in the model's bins "
                    f"({None if bins is None else bins.keys})"
                )
            s = torch.from_numpy(bins.bin_index(name, s.reshape(-1).numpy()) / (bins.num_bins - 1)).view(shape)
        elif normalize == "zscore":
            s = (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True, unbiased=False).clamp_min(1e-12)
        total += float(w) * s
    return total


def _selector_weights(selector, rewards: Mapping | None) -> dict[str, float]:
    """{reward: weight} of a reward-name or mapping selector ({} for a callable), every reward
    resolved before the expensive sampling."""
    if isinstance(selector, str):
        weights = {selector: 1.0}
    elif isinstance(selector, Mapping):
        if not selector:
            raise ValueError("selector weights are empty")
        weights = {str(k): float(v) for k, v in selector.items()}
    elif callable(selector):
        weights = {}
    else:
        raise TypeError("selector must be a reward name, a {name: weight} mapping or a callable")
    for name in weights:
        if not (rewards and name in rewards):
            resolve_reward(name)
    return weights


def best_of_n(
    pipe,
    prompt: str | Sequence[str],
    n: int,
    selector: str | Mapping[str, float] | Callable,
    seed: int = 0,
    normalize: str = "none",
    batch_size: int | None = None,
    output_type: str = "pil",
    keep_candidates: bool = False,
    rewards: Mapping | None = None,
    progress: bool = True,
    **pipe_kwargs,
) -> BestOfNResult:
    """Generate ``n`` candidates per prompt with ``pipe`` and keep the best under ``selector``.

    ``pipe_kwargs`` go to the pipeline (reward targets, guidance, steps, solver ...).
    ``rewards`` maps names to ready reward objects, bypassing the registry (e.g. a loaded backend).
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise ValueError("best_of_n needs at least one prompt")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    weights = _selector_weights(selector, rewards)
    P = len(prompts)
    seeds = candidate_seeds(P, n, seed)
    # Candidate-major flat order (j, i) so flat index k = j * P + i has seed `seed + k`.
    flat_prompts = [prompts[i] for j in range(n) for i in range(P)]
    flat_seeds = [seeds[i][j] for j in range(n) for i in range(P)]
    if batch_size is None:  # whole candidate groups per batch
        batch_size = P * max(1, 64 // P)
    out = pipe(flat_prompts, seed=flat_seeds, output_type="pt", batch_size=batch_size, progress=progress, **pipe_kwargs)
    imgs = out.images  # (n * P, C, H, W) in [-1, 1]

    if weights:
        raw = score_images(imgs, flat_prompts, list(weights), rewards)
        raw_pn = {k: v.view(n, P).t().contiguous() for k, v in raw.items()}
        total = _combine(raw_pn, weights, normalize, getattr(pipe, "bins", None), (P, n))
    else:
        total = _as_1d(selector(imgs, flat_prompts), n * P, "selector").view(n, P).t().contiguous()
        raw_pn = {}
    # argmax returns the first maximum, so ties keep the earlier (lower-seed) candidate.
    best = total.argmax(dim=1)
    cand = imgs.view(n, P, *imgs.shape[1:]).transpose(0, 1)  # (P, n, C, H, W)
    chosen = cand[torch.arange(P), best]
    from rewardflow.sampling.output import to_output_type

    return BestOfNResult(
        images=to_output_type(chosen, output_type),
        prompts=prompts,
        seeds=[seeds[i][int(best[i])] for i in range(P)],
        selected_index=[int(b) for b in best],
        scores=total,
        reward_scores=raw_pn,
        candidate_seeds=seeds,
        candidates=cand if keep_candidates else None,
        reward_targets=dict(getattr(out, "reward_targets", None) or {}),
    )
