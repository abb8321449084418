"""Evaluations that both studies run on trained models, each written once: the default-guidance
choice on held-out prompts, the GenEval-style table at a model's own and at the shared guidance,
and the training curves sampled again at the model's own guidance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import evaluate as ev
from .training import SNAPSHOTS


def sweep_grid(cfg) -> list[dict]:
    return ev.guidance_grid(cfg.sweep_scales, cfg.sweep_text_scales, cfg.sweep_reward_scales, cfg.sweep_intervals)


def guidance_sweep(study, names: Sequence[str], entries: Sequence[dict]) -> dict[str, dict]:
    """Every named model over the sweep grid on `entries` (held-out prompts): {name: result}."""
    cfg = study.cfg
    pipes = {n: study.pipe(n) for n in names}
    grid = sweep_grid(cfg)
    return ev.guidance_sweep(pipes, entries, grid, cfg.rewards, cfg.sample_steps, cfg.seed + 3000, cfg.sample_batch)


def geneval_own_and_shared(
    study, name: str, entries: Sequence[dict], targets: dict | None = None, label: str | None = None, save: bool = False
) -> dict[str, dict]:
    """{"own": summary, "shared": summary}: the GenEval-style prompts sampled at the model's saved
    default guidance and at the shared w, same seeds; `save` keeps the images in OUT/eval."""
    cfg, label = study.cfg, label or name
    res = {}
    for which, g in (("own", None), ("shared", cfg.guidance)):
        prompts = [e["prompt"] for e in entries]
        desc = f"{label}: GenEval-style prompts, {which} guidance"
        imgs = ev.sample(study.pipe(name), prompts, cfg.seed, g, cfg.sample_steps, cfg.sample_batch, targets, desc)
        if save:
            save_images(study.eval_dir / f"geneval_{name}{'' if which == 'own' else '_shared'}.npz", images=imgs)
        res[which] = ev.summarize(imgs, entries, cfg.rewards)
    return res


def own_guidance_curves(study, name: str) -> list[dict]:
    """The training curve of `name` again at its own default guidance, from the EMA snapshots
    its training kept (a fresh pipeline: the study's loaded one keeps its final weights)."""
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    cfg = study.cfg
    pipe = RewardFlowPipeline.from_pretrained(study.model_dir(name), text_encoder=study.text_encoder())
    snaps = study.run_dir(name) / SNAPSHOTS
    entries = ev.curve_entries(cfg)
    return ev.curves_from_snapshots(
        pipe, snaps, entries, cfg.rewards, cfg.eval_steps, cfg.seed + 1000, cfg.sample_batch
    )


def save_images(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def logged_curves(run_dir: Path) -> list[dict]:
    """The eval rows a training logged, one per step (a resumed run may repeat a step)."""
    from rewardflow.training import read_jsonl

    by_step = {r["step"]: r for r in read_jsonl(run_dir / "log.jsonl", "eval")}
    return [by_step[s] for s in sorted(by_step)]
