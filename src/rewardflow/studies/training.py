"""Training one study model: a stage that trains with periodic evaluation curves and exports the
pipeline folder. `train_model` is module-level so a stage can run it in a child process beside
another model's training."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from . import evaluate as ev
from .config import DemoConfig
from .stages import Stage

SNAPSHOTS = "eval_weights"  # EMA weights kept at every evaluation, when asked for


def train_model(
    cfg_dict: dict,
    out: Path,
    name: str,
    mode: str,
    keys: list[str],
    progress: bool,
    threads: int,
    variants: dict[str, dict] | None = None,
    snapshots: bool = False,
) -> dict:
    """Train model `name` (mode baseline | miro | single with `keys`) under OUT/runs/NAME and save
    its pipeline to OUT/models/NAME. Returns what the reports print about it."""
    import torch

    from rewardflow.sampling.pipeline import RewardFlowPipeline
    from rewardflow.training import Trainer, latest_checkpoint, read_jsonl
    from rewardflow.training.builders import build_text_encoder

    from .study import train_config

    torch.set_num_threads(threads)
    cfg = DemoConfig.from_dict(cfg_dict)
    run_dir = out / "runs" / name
    tc = train_config(cfg, out / "data", run_dir, mode, out / "text_cache", keys)
    tc.progress = progress  # --no-progress also hides the training bar
    enc = build_text_encoder(tc)
    cb = ev.PeriodicEval(
        enc,
        ev.curve_entries(cfg),
        cfg.rewards,
        period=cfg.eval_every or cfg.steps,
        last=cfg.steps,
        steps=cfg.eval_steps,
        guidance=cfg.guidance,
        seed=cfg.seed + 1000,
        batch=cfg.sample_batch,
        variants=variants,
        weights_dir=run_dir / SNAPSHOTS if snapshots else None,
    )
    t0 = time.perf_counter()
    summary = Trainer(tc, callbacks=[cb]).train()
    wall = time.perf_counter() - t0
    ck = latest_checkpoint(run_dir)
    pipe = RewardFlowPipeline.from_checkpoint(ck, text_encoder=enc)
    pipe.save_pretrained(out / "models" / name)
    recs = [r for r in read_jsonl(run_dir / "log.jsonl", "train") if "images_per_s" in r]
    return {
        "steps": summary["step"],
        "images_seen": summary["images_seen"],
        "wall_s": wall,
        "train_images_per_s": float(np.median([r["images_per_s"] for r in recs])) if recs else float("nan"),
        "checkpoint": str(ck),
        "params": sum(p.numel() for p in pipe.model.parameters()),
        "torch_threads": threads,
        "mode": mode,
        "reward_keys": list(keys),
    }


def train_stage(
    study,
    name: str,
    mode: str,
    keys: list[str],
    signature: str,
    progress: bool,
    threads: int,
    variants: dict[str, dict] | None = None,
    snapshots: bool = False,
) -> Stage:
    """The stage that trains `name`; done when its pipeline folder (and snapshots) exist."""
    cfg = study.cfg
    fn = partial(train_model, cfg.to_dict(), study.out, name, mode, keys, progress, threads, variants, snapshots)
    outputs = [study.model_dir(name) / "pipeline_config.json"] + (
        [study.run_dir(name) / SNAPSHOTS] if snapshots else []
    )
    title = f"train {name} ({cfg.model_preset}, {cfg.steps} steps x {cfg.batch_size} images)"
    return Stage(f"train_{name}", title, signature, fn, tuple(outputs), (study.run_dir(name),))
