"""Target search: sweep reward targets s+ over a grid and keep the vector that maximises a metric.

The MIRO paper tuned the aesthetic target by hand (0.625 maximised GenEval); here it is one call:

    res = target_search(pipe, prompts, metric=reward_metric("alignment"),
                        sweep={"aesthetic_score": linspace_grid(9)})   # 0, .125, ..., 1
    res.best          # full s+ vector, e.g. {"aesthetic_score": 0.625, ...: 1.0}

Every grid point uses the SAME seeds (common random numbers), so metric differences come from
the targets, not from different noise. Keys not swept keep ``base`` (default 1.0, the paper's s+);
``s-`` stays the pipeline default (all 0) unless ``negative_reward_targets`` is given.
Ties go to the first grid point in sweep order.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = ["TargetSearchResult", "linspace_grid", "parse_sweep", "reward_metric", "target_search"]

Metric = Callable[[torch.Tensor, list[str]], float]


def linspace_grid(n: int = 9, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """n evenly spaced values from lo to hi inclusive (n = 9 gives steps of 0.125)."""
    if n < 1:
        raise ValueError(f"grid needs n >= 1, got {n}")
    return [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def parse_sweep(spec: str) -> tuple[str, list[float]]:
    """``"key=0:1:9"`` (lo:hi:n) or ``"key=0,0.5,1"`` -> (key, values)."""
    key, sep, vals = spec.partition("=")
    if not sep or not key.strip() or not vals.strip():
        raise ValueError(f"sweep {spec!r} must look like key=0:1:9 (lo:hi:count) or key=0,0.5,1")
    try:
        if ":" in vals:
            lo, hi, n = vals.split(":")
            values = linspace_grid(int(n), float(lo), float(hi))
        else:
            values = [float(v) for v in vals.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"sweep {spec!r}: values must be numbers (key=lo:hi:count or key=a,b,c)") from None
    return key.strip(), values


def reward_metric(name: str, reward=None) -> Metric:
    """Mean of a registered reward over the images (higher is better)."""
    if reward is None:
        from rewardflow.rewards.registry import get_reward

        reward = get_reward(name)

    def metric(images, prompts):
        return float(torch.as_tensor(reward.score(images, prompts)).double().mean())

    metric.__name__ = f"reward:{name}"
    return metric


@dataclass
class TargetSearchResult:
    swept: list[str]  # keys that varied
    rows: list[dict]  # {"reward_targets": full s+, "metric": float}, in sweep order
    best: dict[str, float]  # full s+ of the best row
    best_value: float
    metric_name: str = "metric"

    def to_markdown(self) -> str:
        head = "| " + " | ".join(self.swept + [self.metric_name]) + " |"
        sep = "|" + "---|" * (len(self.swept) + 1)
        lines = [head, sep]
        for r in self.rows:
            mark = " **(best)**" if r["reward_targets"] == self.best else ""
            vals = [f"{r['reward_targets'][k]:.4g}" for k in self.swept]
            lines.append("| " + " | ".join(vals + [f"{r['metric']:.4f}{mark}"]) + " |")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            dict(swept=self.swept, metric=self.metric_name, best=self.best, best_value=self.best_value, rows=self.rows),
            indent=2,
        )


def target_search(
    pipe,
    prompts: Sequence[str],
    metric: Metric,
    sweep: Mapping[str, Sequence[float]],
    base: Mapping[str, float] | None = None,
    negative_reward_targets: Mapping[str, float] | None = None,
    seed: int = 0,
    num_images_per_prompt: int = 1,
    maximize: bool = True,
    progress: bool = True,
    **pipe_kwargs,
) -> TargetSearchResult:
    """Evaluate ``metric(images (B,C,H,W) in [-1,1], prompts) -> float`` at every point of the
    cartesian product of ``sweep``; returns the table and the best full s+ vector."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("target search needs at least one prompt")
    if not sweep:
        raise ValueError("sweep is empty: give at least one {reward_key: [values]}")
    keys = list(pipe.reward_keys)
    swept = list(sweep)
    unknown = [k for k in swept + list(base or {}) if k not in keys]
    if unknown:
        raise ValueError(f"unknown reward key(s) {unknown}; this model's reward keys are {keys}")
    grids = [list(sweep[k]) for k in swept]
    if any(not g for g in grids):
        raise ValueError("every swept key needs at least one value")
    points = list(itertools.product(*grids))
    full_base = {k: 1.0 for k in keys} | {k: float(v) for k, v in (base or {}).items()}
    # Validate every point before spending any sampling time on the first ones.
    vectors = [full_base | dict(zip(swept, map(float, p))) for p in points]
    for v in vectors:
        pipe.resolve_targets(v, negative_reward_targets)

    it = vectors
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(vectors, desc="target search", unit="point")
    rows = []
    for v in it:
        out = pipe(
            prompts,
            reward_targets=v,
            negative_reward_targets=negative_reward_targets,
            seed=seed,
            num_images_per_prompt=num_images_per_prompt,
            output_type="pt",
            progress=False,
            **pipe_kwargs,
        )
        value = float(metric(out.images, out.prompts))
        if not math.isfinite(value):
            raise ValueError(f"metric returned {value} at targets {v}")
        rows.append({"reward_targets": dict(out.reward_targets), "metric": value})
    sign = 1.0 if maximize else -1.0
    best = max(range(len(rows)), key=lambda i: (sign * rows[i]["metric"], -i))  # first best wins
    return TargetSearchResult(
        swept, rows, rows[best]["reward_targets"], rows[best]["metric"], getattr(metric, "__name__", "metric")
    )
