"""Periodic jobs during training: sample grids and reward evaluation on a fixed prompt set.

A callback is any object with `every` (steps; 0 = never), `kind` (the JSONL record kind),
`main_process_only` and `__call__(trainer, step) -> dict | None`. The returned metrics are
logged with the step. Both built-ins sample the EMA model with fixed prompts and fixed seeds,
so successive grids / scores differ only by training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Callback", "FunctionCallback", "RewardEvalCallback", "SampleGridCallback", "default_prompts", "save_grid"]

_FALLBACK_PROMPTS = (
    "a photo of a red circle",
    "a photo of a blue square",
    "a photo of two green triangles",
    "a photo of a yellow circle left of a purple square",
)


class Callback:
    every: int = 0
    kind: str = "eval"
    main_process_only: bool = True

    def __call__(self, trainer, step: int) -> dict[str, Any] | None:  # pragma: no cover - interface
        raise NotImplementedError


class FunctionCallback(Callback):
    """Wrap `fn(trainer, step) -> dict | None` (e.g. a custom evaluation for non-ShapesWorld data)."""

    def __init__(
        self, fn: Callable[[Any, int], dict | None], every: int, kind: str = "eval", main_process_only: bool = True
    ):
        self.fn, self.every, self.kind, self.main_process_only = fn, every, kind, main_process_only

    def __call__(self, trainer, step: int):
        return self.fn(trainer, step)


def default_prompts(n: int, seed: int = 0) -> list[str]:
    """A fixed ShapesWorld prompt set cycling through the six GenEval-style categories."""
    from rewardflow.utils.plugins import SHAPES_TRAINING_PROMPTS, load_object

    try:
        make = load_object(SHAPES_TRAINING_PROMPTS)
    except ImportError:  # ShapesWorld not installed in this build: a small fixed list
        return [_FALLBACK_PROMPTS[i % len(_FALLBACK_PROMPTS)] for i in range(n)]
    return make(n, seed)


def save_grid(images: np.ndarray, path: str | Path, ncol: int | None = None) -> Path:
    """uint8 (B, H, W, C) -> one PNG grid with a 2-pixel gap."""
    from PIL import Image

    b, h, w, c = images.shape
    ncol = ncol or int(math.ceil(math.sqrt(b)))
    nrow = int(math.ceil(b / ncol))
    grid = np.full((nrow * (h + 2) + 2, ncol * (w + 2) + 2, c), 255, dtype=np.uint8)
    for i in range(b):
        r, q = divmod(i, ncol)
        grid[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + q * (w + 2) : 2 + q * (w + 2) + w] = images[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)
    return path


def _sample(
    trainer, text_encoder, prompts: Sequence[str], seed: int, steps: int, scale: float, solver: str, batch_size: int
) -> np.ndarray:
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    pipe = RewardFlowPipeline(trainer.ema.module, text_encoder)
    with trainer.accelerator.autocast():
        out = pipe(
            list(prompts),
            seed=seed,
            guidance_scale=scale,
            num_inference_steps=steps,
            solver=solver,
            output_type="np",
            batch_size=batch_size,
            progress=False,
        )
    return out.images


class SampleGridCallback(Callback):
    kind = "sample"

    def __init__(
        self,
        text_encoder,
        prompts: Sequence[str],
        every: int,
        num_steps: int = 20,
        guidance_scale: float = 3.0,
        solver: str = "euler",
        seed: int = 0,
    ):
        self.text_encoder, self.prompts, self.every = text_encoder, list(prompts), every
        self.num_steps, self.guidance_scale, self.solver, self.seed = num_steps, guidance_scale, solver, seed

    def __call__(self, trainer, step: int):
        images = _sample(
            trainer,
            self.text_encoder,
            self.prompts,
            self.seed,
            self.num_steps,
            self.guidance_scale,
            self.solver,
            len(self.prompts),
        )
        path = save_grid(images, Path(trainer.config.out_dir) / "samples" / f"step_{step:07d}.png")
        return {"grid": str(path)}


class RewardEvalCallback(Callback):
    """Mean of each reward over images sampled from a fixed prompt set: the training curve."""

    kind = "eval"

    def __init__(
        self,
        text_encoder,
        prompts: Sequence[str],
        rewards: Sequence[str],
        every: int,
        num_steps: int = 20,
        guidance_scale: float = 3.0,
        seed: int = 1234,
        batch_size: int = 64,
        solver: str = "euler",
    ):
        from rewardflow.rewards import get_reward

        self.text_encoder, self.prompts, self.every = text_encoder, list(prompts), every
        self.rewards = {name: get_reward(name) for name in rewards}
        self.num_steps, self.guidance_scale, self.seed = num_steps, guidance_scale, seed
        self.batch_size, self.solver = batch_size, solver

    def __call__(self, trainer, step: int):
        images = _sample(
            trainer,
            self.text_encoder,
            self.prompts,
            self.seed,
            self.num_steps,
            self.guidance_scale,
            self.solver,
            self.batch_size,
        )
        metrics: dict[str, Any] = {"num_images": len(images)}
        for name, reward in self.rewards.items():
            scores = reward.score(images, self.prompts)
            metrics[f"reward/{name}"] = float(np.asarray(scores, dtype=np.float64).mean())
        return metrics
