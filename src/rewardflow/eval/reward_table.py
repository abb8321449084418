"""A pipeline's mean rewards on a prompt set (the paper's PartiPrompts table): every prompt
sampled with its own seed, every image scored by each reward, means with standard errors
overall and per category (PartiPrompts' Category, GenEval's tag).

Rewards are objects with `score(images uint8 (B, H, W, 3), prompts) -> (B,)`, e.g.
`rewardflow.rewards.get_reward(name, device=...)`: the built-in ones or the loaded backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def reward_table(
    pipe,
    prompts: Sequence[str],
    rewards: Mapping[str, Any],
    categories: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    **sample_kw,
) -> dict[str, Any]:
    """{"rewards": {name: {mean, sem}}, "per_category": {category: {name: mean}}, "images",
    "settings"}; image i has seed `seed + i`. `sample_kw` go to the pipeline (guidance, steps...)."""
    from tqdm.auto import tqdm

    scores: dict[str, list[float]] = {name: [] for name in rewards}
    settings: dict = {}
    bar = tqdm(total=len(prompts), unit="img", desc="sample + score", disable=not progress)
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        out = pipe(chunk, seed=seed + start, output_type="np", batch_size=batch_size, progress=False, **sample_kw)
        settings = out.settings
        for name, reward in rewards.items():
            scores[name] += [float(v) for v in np.asarray(reward.score(out.images, chunk), dtype=np.float64)]
        bar.update(len(chunk))
    bar.close()
    result: dict[str, Any] = {"images": len(prompts), "rewards": {}, "per_category": {}, "settings": settings}
    for name, values in scores.items():
        v = np.asarray(values)
        sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
        result["rewards"][name] = {"mean": float(v.mean()), "sem": sem}
    if categories is not None:
        cats = np.asarray(list(categories))
        for c in dict.fromkeys(categories):
            mask = cats == c
            result["per_category"][c] = {n: float(np.asarray(s)[mask].mean()) for n, s in scores.items()}
    return result


def to_markdown(result: Mapping[str, Any], title: str = "") -> str:
    names = list(result["rewards"])
    lines = [title, ""] if title else []
    lines += [
        f"{result['images']} images, one per prompt. Mean reward +- standard error:",
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"{r['mean']:.4f} +- {r['sem']:.4f}" for r in result["rewards"].values()) + " |",
    ]
    if result.get("per_category"):
        lines += ["", "| category | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [
            f"| {c} | " + " | ".join(f"{row[n]:.4f}" for n in names) + " |" for c, row in result["per_category"].items()
        ]
    return "\n".join(lines) + "\n"
