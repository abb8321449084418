"""`rewardflow demo`: the whole MIRO loop on ShapesWorld, from nothing to runs/demo/report.html.

Stages (each skipped when a previous run finished it with the same settings):
data -> score -> bins -> train baseline -> train MIRO -> GenEval-style table -> sample grids
-> control -> guidance sweep -> report. The two models share data, architecture, optimiser,
steps, seed and evaluation prompts/seeds; only the reward conditioning differs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import evaluate as ev
from .config import TRAIN_KEYS, DemoConfig
from .stages import Stage, StageRunner

MODELS = ("baseline", "miro")


def train_config(cfg: DemoConfig, data_dir: Path, out_dir: Path, mode: str, text_cache: Path):
    from rewardflow.training import TrainConfig

    return TrainConfig.from_dict(
        dict(
            model=dict(preset=cfg.model_preset, overrides=dict(cfg.model_overrides)),
            data=dict(
                path=str(data_dir),
                mode=mode,
                reward_keys=list(cfg.rewards) if mode == "miro" else [],
                image_size=ShapesWorld.size(cfg),
                batch_size=cfg.batch_size,
                workers=0,
                in_memory=True,
                shuffle=True,
                text_cache=str(text_cache),
            ),
            optim=dict(
                optimizer="adamw",
                lr=cfg.lr,
                betas=[0.9, 0.99],
                weight_decay=0.0,
                warmup_steps=cfg.warmup_steps,
                schedule="cosine",
                min_lr_ratio=0.1,
                grad_clip=1.0,
            ),
            time=dict(kind=cfg.time_kind, mean=cfg.time_mean, std=cfg.time_std, shift=1.0),
            text_dropout=cfg.text_dropout,
            text_dropout_rewards=cfg.text_dropout_rewards,
            reward_dropout=cfg.reward_dropout,
            ema=dict(decay=cfg.ema_decay, warmup=True),
            # A few checkpoints make an interrupted demo resume mid-training instead of restarting.
            checkpoint=dict(every=max(1, cfg.steps // 3), keep_last=1),
            log_every=max(1, cfg.steps // 40),
            progress=True,
            tensorboard=False,
            sample=dict(every=0),
            eval=dict(every=0, at_start=True),
            seed=cfg.seed,
            max_steps=cfg.steps,
            out_dir=str(out_dir),
        )
    )


class ShapesWorld:
    @staticmethod
    def config(cfg: DemoConfig):
        from rewardflow.data.shapes import ShapesConfig

        return ShapesConfig.from_preset(cfg.shapes_preset, **cfg.shapes_overrides)

    @staticmethod
    def size(cfg: DemoConfig) -> int:
        return ShapesWorld.config(cfg).size


def choose_threads(cfg: DemoConfig, trials: int = 3) -> int:
    """1 thread, or all cores if the machine is idle and they make a training step clearly faster.

    On a shared, oversubscribed machine OpenMP threads wait for descheduled siblings: a step
    measured 7x slower with 2 threads than with 1 (docs/DEMO.md, "Threads on a shared machine").
    """
    import torch

    from rewardflow.models import build_model, model_config_from_preset

    n = os.cpu_count() or 1
    if n == 1:
        return 1
    mc = model_config_from_preset(cfg.model_preset, reward_keys=tuple(cfg.rewards), **cfg.model_overrides)
    model = build_model(mc).train()
    b = min(cfg.batch_size, 32)
    x, t = torch.randn(b, mc.in_channels, mc.image_size, mc.image_size), torch.rand(b)
    text, mask, r = (
        torch.randn(b, 32, mc.text_dim),
        torch.ones(b, 32, dtype=torch.bool),
        torch.rand(b, len(cfg.rewards)),
    )
    best: dict[int, float] = {}
    for k in (1, n):
        torch.set_num_threads(k)
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            model(x, t, text, mask, r).square().mean().backward()
            times.append(time.perf_counter() - t0)
        best[k] = min(times[1:] or times)
    # Many threads only when clearly faster on an idle machine: under contention the all-cores
    # step degrades 7-10x (measured) as soon as any other job starts, 1 thread only ~2x.
    idle = os.getloadavg()[0] < 1.0
    choice = n if idle and best[n] < 0.75 * best[1] else 1
    print(
        f"torch threads: {choice} (one step {best[1] * 1e3:.0f} ms with 1 thread, "
        f"{best[n] * 1e3:.0f} ms with {n}; load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return choice


def train_model(
    cfg_dict: dict, out: Path, data_dir: Path, text_cache: Path, mode: str, progress: bool, threads: int
) -> dict:
    """Train one demo model and save its pipeline to OUT/models/MODE (a stage of the demo; a
    module-level function so it can run in a child process beside the other model)."""
    import torch

    from rewardflow.sampling.pipeline import RewardFlowPipeline
    from rewardflow.training import Trainer, latest_checkpoint, read_jsonl
    from rewardflow.training.builders import build_text_encoder

    torch.set_num_threads(threads)
    cfg = DemoConfig.from_dict(cfg_dict)
    run_dir = out / "runs" / mode
    tc = train_config(cfg, data_dir, run_dir, mode, text_cache)
    tc.progress = progress  # --no-progress also hides the training bar
    enc = build_text_encoder(tc)
    curve_entries = ev.prompt_entries(max(1, cfg.eval_prompts // 6), offset=cfg.geneval_per_category)
    cb = ev.PeriodicEval(
        enc,
        curve_entries,
        cfg.rewards,
        period=cfg.eval_every or cfg.steps,
        last=cfg.steps,
        steps=cfg.eval_steps,
        guidance=cfg.guidance,
        seed=cfg.seed + 1000,
        batch=cfg.sample_batch,
    )
    t0 = time.perf_counter()
    summary = Trainer(tc, callbacks=[cb]).train()
    wall = time.perf_counter() - t0
    ck = latest_checkpoint(run_dir)
    RewardFlowPipeline.from_checkpoint(ck, text_encoder=enc).save_pretrained(out / "models" / mode)
    recs = [r for r in read_jsonl(run_dir / "log.jsonl", "train") if "images_per_s" in r]
    ips = float(np.median([r["images_per_s"] for r in recs])) if recs else float("nan")
    params = sum(
        p.numel()
        for p in RewardFlowPipeline.from_pretrained(out / "models" / mode, text_encoder=enc).model.parameters()
    )
    return {
        "steps": summary["step"],
        "images_seen": summary["images_seen"],
        "wall_s": wall,
        "train_images_per_s": ips,
        "checkpoint": str(ck),
        "params": params,
        "torch_threads": threads,
    }


def _eval_curves(run_dir: Path) -> list[dict]:
    from rewardflow.training import read_jsonl

    by_step = {r["step"]: r for r in read_jsonl(run_dir / "log.jsonl", "eval")}  # a resumed run may repeat a step
    return [by_step[s] for s in sorted(by_step)]


def _save_images(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def run_demo(cfg: DemoConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    import torch

    from rewardflow.training.builders import build_text_encoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = cfg.threads or choose_threads(cfg)
    torch.set_num_threads(threads)
    load_start = os.getloadavg()
    runner = StageRunner(out, total=10)
    data_dir, eval_dir, text_cache = out / "data", out / "eval", out / "text_cache"
    digest = DemoConfig.digest
    shapes_cfg = ShapesWorld.config(cfg)
    json_path = out / "demo_config.json"
    json_path.write_text(json.dumps(cfg.to_dict(), indent=2))

    # ---------------------------------------------------------------- data, scores, bins
    sig_data = digest([shapes_cfg.to_dict(), cfg.num_images, cfg.shard_size, cfg.seed])

    def make_data():
        from rewardflow.data.shapes import generate_dataset

        shards = generate_dataset(
            shapes_cfg,
            cfg.num_images,
            data_dir,
            seed=cfg.seed,
            shard_size=cfg.shard_size,
            workers=cfg.data_workers,
            progress=progress,
        )
        return {"shards": len(shards), "images": cfg.num_images}

    runner.run(
        "data",
        f"generate ShapesWorld ({cfg.shapes_preset}, {cfg.num_images} images)",
        sig_data,
        make_data,
        outputs=(data_dir / "shapes_config.json",),
        clean=(data_dir, text_cache),
    )

    from rewardflow.data.binning import QUANTILE_RULE
    from rewardflow.rewards.registry import reward_versions

    sig_score = digest([sig_data, reward_versions(cfg.rewards)])

    def score():
        from rewardflow.rewards.scoring import score_dataset

        rep = score_dataset(data_dir, cfg.rewards, workers=cfg.data_workers, progress=progress)
        return {"summary": rep.summary()}

    runner.run("score", f"score every image with {', '.join(cfg.rewards)}", sig_score, score)

    sig_bins = digest([sig_score, cfg.num_bins, QUANTILE_RULE])

    def fit_bins():
        from rewardflow.data.binning import RewardBins
        from rewardflow.rewards.scoring import read_scores

        scores = read_scores(data_dir, cfg.rewards)
        RewardBins.fit(scores, num_bins=cfg.num_bins, seed=cfg.seed).save(data_dir / "bins.json")
        return {
            "data_rewards": {
                k: {"mean": float(np.mean(v)), "p10": float(np.quantile(v, 0.1)), "p90": float(np.quantile(v, 0.9))}
                for k, v in scores.items()
            }
        }

    bins_info = runner.run(
        "bins", f"fit {cfg.num_bins} quantile bins per reward", sig_bins, fit_bins, outputs=(data_dir / "bins.json",)
    )

    # ---------------------------------------------------------------- training
    sig_train = digest([sig_bins, cfg.section(*TRAIN_KEYS)])
    # One process per model on >= 2 cores, the chosen threads split between them (at least one
    # each): on 2 idle cores two 1-thread trainings make 1.23x the steps/s of one 2-thread
    # training (benchmarks/demo_parallel_train.py) and ~2x that of the 1 thread choose_threads
    # picks on a busy machine, without the OpenMP oversubscription it avoids. An explicit
    # threads=1 keeps everything to one thread.
    parallel = cfg.parallel_train and (os.cpu_count() or 1) >= 2 and cfg.threads != 1
    per = max(1, threads // len(MODELS)) if parallel else threads
    stages = [
        Stage(
            f"train_{mode}",
            f"train {mode} ({cfg.model_preset}, {cfg.steps} steps x {cfg.batch_size} images)",
            digest([sig_train, mode]),
            # in parallel only MIRO draws a progress bar: two would overwrite each other
            partial(
                train_model,
                cfg.to_dict(),
                out,
                data_dir,
                text_cache,
                mode,
                progress and (mode == "miro" or not parallel),
                per,
            ),
            outputs=(out / "models" / mode / "pipeline_config.json",),
            clean=(out / "runs" / mode,),
        )
        for mode in MODELS
    ]
    if parallel:
        infos = runner.run_parallel(stages, workers=len(MODELS))
    else:
        infos = [runner.run(st.name, st.title, st.signature, st.fn, st.outputs, st.clean) for st in stages]
    train_info = dict(zip(MODELS, infos))

    # ---------------------------------------------------------------- evaluation
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    enc = build_text_encoder(train_config(cfg, data_dir, out / "runs" / "miro", "miro", text_cache))
    _pipes: dict[str, Any] = {}

    def pipes() -> dict[str, Any]:
        if not _pipes:
            _pipes.update({m: RewardFlowPipeline.from_pretrained(out / "models" / m, text_encoder=enc) for m in MODELS})
        return _pipes

    # Each model's default guidance, chosen on held-out prompts (after the curve prompts) and
    # saved in its folder: one shared w over-guides MIRO, whose negative branch differs from the
    # positive in text AND every reward.
    grid = ev.guidance_grid(cfg.sweep_scales, cfg.sweep_text_scales, cfg.sweep_reward_scales, cfg.sweep_intervals)
    held_out = cfg.geneval_per_category + max(1, cfg.eval_prompts // 6)
    sweep_entries = _interleave(ev.prompt_entries(math.ceil(cfg.sweep_images / 6), offset=held_out))
    sweep_entries = sweep_entries[: cfg.sweep_images]

    def sweep():
        return ev.guidance_sweep(
            pipes(), sweep_entries, grid, cfg.rewards, cfg.sample_steps, cfg.seed + 3000, cfg.sample_batch
        )

    sw = runner.run(
        "sweep",
        f"guidance sweep on {len(sweep_entries)} held-out prompts: choose each model's default",
        digest([sig_train, grid, sweep_entries, cfg.sample_steps, cfg.sample_batch, cfg.seed]),
        sweep,
    )
    for m, r in sw.items():  # saved every time: a folder rewritten by a retraining keeps its default
        ev.save_default_guidance(out / "models" / m, r, len(sweep_entries), cfg.sample_steps)
        if _pipes:  # pipelines loaded before the sweep
            _pipes[m].config.update(r["best"])

    sample_keys = ["guidance", "sample_steps", "sample_batch", "seed"]
    sig_eval = digest([sig_train, sw_best(sw), cfg.section(*sample_keys)])
    entries = ev.prompt_entries(cfg.geneval_per_category)

    def geneval():
        res: dict[str, dict] = {"own": {}, "shared": {}}
        for m, pipe in pipes().items():
            for which, g in (("own", None), ("shared", cfg.guidance)):
                imgs = ev.sample(
                    pipe,
                    [e["prompt"] for e in entries],
                    cfg.seed,
                    g,
                    cfg.sample_steps,
                    cfg.sample_batch,
                    desc=f"{m}: GenEval-style prompts, {which} guidance",
                )
                _save_images(eval_dir / f"geneval_{m}{'' if which == 'own' else '_shared'}.npz", images=imgs)
                res[which][m] = ev.summarize(imgs, entries, cfg.rewards)
        return res

    final_all = runner.run(
        "geneval",
        f"sample {len(entries)} GenEval-style prompts per model at its own and the shared guidance, score, evaluate",
        digest([sig_eval, cfg.geneval_per_category]),
        geneval,
    )
    final = final_all["own"]

    grid_entries = _interleave(ev.prompt_entries(math.ceil(cfg.grid_prompts / 6), offset=7))[: cfg.grid_prompts]
    grid_prompts = [e["prompt"] for e in grid_entries]

    def grids():
        items = [p for p in grid_prompts for _ in range(cfg.grid_seeds)]
        for m, pipe in pipes().items():
            imgs = ev.sample(
                pipe, items, cfg.seed + 500, None, cfg.sample_steps, cfg.sample_batch, desc=f"{m}: sample grid"
            )
            _save_images(eval_dir / f"grid_{m}.npz", images=imgs)
        return {"prompts": grid_prompts, "seeds": cfg.grid_seeds}

    runner.run(
        "grids",
        f"sample grids: {len(grid_prompts)} prompts x {cfg.grid_seeds} seeds, both models",
        digest([sig_eval, cfg.grid_prompts, cfg.grid_seeds]),
        grids,
        outputs=tuple(eval_dir / f"grid_{m}.npz" for m in MODELS),
    )

    control_entries = _interleave(ev.prompt_entries(math.ceil(cfg.control_images / 6), offset=3))[: cfg.control_images]

    def control():
        res, imgs = ev.control_sweep(
            pipes()["miro"],
            control_entries,
            cfg.control_reward,
            cfg.control_levels,
            cfg.rewards,
            None,
            cfg.sample_steps,
            cfg.seed + 2000,
            cfg.sample_batch,
        )
        _save_images(eval_dir / "control.npz", images=imgs)
        return dict(res, prompts=[e["prompt"] for e in control_entries])

    ctrl = runner.run(
        "control",
        f"control: dial {cfg.control_reward} over {len(cfg.control_levels)} levels (MIRO)",
        digest([sig_eval, cfg.control_reward, cfg.control_levels, cfg.control_images]),
        control,
        outputs=(eval_dir / "control.npz",),
    )

    # ---------------------------------------------------------------- report (always rewritten)
    from . import report

    runner.index += 1
    runner.banner("write report.html and report.md")
    curves = {m: _eval_curves(out / "runs" / m) for m in MODELS}
    ctx = dict(
        cfg=cfg,
        out=out,
        timings=runner.timings,
        total_s=runner.elapsed(),
        final=final,
        final_shared=final_all["shared"],
        control=ctrl,
        sweep=sw,
        curves=curves,
        train=train_info,
        bins=bins_info,
        grid_prompts=grid_prompts,
        machine=dict(
            cpus=os.cpu_count(),
            torch_threads=threads,
            load_start=load_start,
            load_end=os.getloadavg(),
            platform=platform.platform(),
            torch=torch.__version__,
        ),
    )
    paths = report.write_report(ctx)
    print(f"\nreport: {paths['html']}\n        {paths['md']}  (demo time {runner.elapsed():.0f} s)", flush=True)
    return {
        "report": str(paths["html"]),
        "markdown": str(paths["md"]),
        "seconds": runner.elapsed(),
        "final": final,
        "control": ctrl,
    }


def sw_best(sweep: dict) -> dict:
    """{model: chosen guidance}: what the stages after the sweep depend on."""
    return {m: r["best"] for m, r in sweep.items()}


def _interleave(entries: list[dict]) -> list[dict]:
    """Round-robin over categories, so a short prefix shows every category."""
    by: dict[str, list[dict]] = {}
    for e in entries:
        by.setdefault(e["tag"], []).append(e)
    out, lists = [], list(by.values())
    for i in range(max(len(v) for v in lists)):
        out += [v[i] for v in lists if i < len(v)]
    return out
