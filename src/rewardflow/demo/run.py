"""`rewardflow demo`: the whole MIRO loop on ShapesWorld, from nothing to runs/demo/report.html.

Stages (each skipped when a previous run finished it with the same settings):
data -> score -> bins -> train baseline and MIRO -> guidance sweep (each model's default) ->
GenEval-style table -> sample grids -> control -> report. The two models share data,
architecture, optimiser, steps, seed and evaluation prompts/seeds; only the reward conditioning
differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rewardflow.shapes.control import balanced_entries
from rewardflow.studies import evaluate as ev
from rewardflow.studies.config import DemoConfig
from rewardflow.studies.evaluations import (
    geneval_own_and_shared,
    guidance_sweep,
    logged_curves,
    save_images,
    sweep_grid,
)
from rewardflow.studies.stages import digest
from rewardflow.studies.study import Study, prepare_data, training_signature
from rewardflow.studies.training import train_stage

MODELS = ("baseline", "miro")


def run_demo(cfg: DemoConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    study = Study.open(cfg, out, stages=10, progress=progress, settings=("demo_config.json", cfg.to_dict()))
    sig_bins, bins_info = prepare_data(study)
    sig_train = digest([sig_bins, training_signature(cfg)])
    train_info = _train(study, sig_train)
    sweep = _choose_guidance(study, sig_train)
    sample_keys = ["guidance", "sample_steps", "sample_batch", "seed"]
    sig_eval = digest([sig_train, sw_best(sweep), cfg.section(*sample_keys)])
    entries = ev.prompt_entries(cfg.geneval_per_category)

    def geneval():
        res: dict[str, dict] = {"own": {}, "shared": {}}
        for m in MODELS:
            both = geneval_own_and_shared(study, m, entries, save=True)
            res["own"][m], res["shared"][m] = both["own"], both["shared"]
        return res

    title = f"sample {len(entries)} GenEval-style prompts per model at its own and the shared guidance, score, evaluate"
    final_all = study.runner.run("geneval", title, digest([sig_eval, cfg.geneval_per_category]), geneval)
    grid_prompts = _grids(study, sig_eval)
    ctrl = _control(study, sig_eval)
    ctx = dict(
        final=final_all["own"],
        final_shared=final_all["shared"],
        control=ctrl,
        sweep=sweep,
        train=train_info,
        bins=bins_info,
        grid_prompts=grid_prompts,
    )
    return _report(study, ctx)


def _train(study: Study, sig_train: str) -> dict[str, dict]:
    """Both models; on >= 2 cores one process each, the chosen threads split between them (at
    least one each): on 2 idle cores two 1-thread trainings make 1.23x the steps/s of one
    2-thread training (benchmarks/demo_parallel_train.py) and ~2x that of the 1 thread
    choose_threads picks on a busy machine, without the OpenMP oversubscription it avoids. An
    explicit threads=1 keeps everything to one thread."""
    cfg = study.cfg
    parallel = cfg.parallel_train and (os.cpu_count() or 1) >= 2 and cfg.threads != 1
    per = max(1, study.threads // len(MODELS)) if parallel else study.threads
    keys = {"baseline": [], "miro": list(cfg.rewards)}
    # in parallel only MIRO draws a progress bar: two would overwrite each other
    stages = [
        train_stage(study, m, m, keys[m], digest([sig_train, m]), study.progress and (m == "miro" or not parallel), per)
        for m in MODELS
    ]
    if parallel:
        infos = study.runner.run_parallel(stages, workers=len(MODELS))
    else:
        infos = [study.runner.run(st.name, st.title, st.signature, st.fn, st.outputs, st.clean) for st in stages]
    return dict(zip(MODELS, infos))


def _choose_guidance(study: Study, sig_train: str) -> dict[str, dict]:
    """Each model's default guidance, chosen on held-out prompts (after the curve prompts) and
    saved in its folder: one shared w over-guides MIRO, whose negative branch differs from the
    positive in text AND every reward."""
    cfg = study.cfg
    held_out = cfg.geneval_per_category + max(1, cfg.eval_prompts // 6)
    entries = balanced_entries(cfg.sweep_images, offset=held_out)
    sig = digest([sig_train, sweep_grid(cfg), entries, cfg.sample_steps, cfg.sample_batch, cfg.seed])
    title = f"guidance sweep on {len(entries)} held-out prompts: choose each model's default"
    sw = study.runner.run("sweep", title, sig, lambda: guidance_sweep(study, MODELS, entries))
    for m, r in sw.items():
        study.set_default_guidance(m, r, len(entries))
    return sw


def _grids(study: Study, sig_eval: str) -> list[str]:
    cfg = study.cfg
    grid_entries = balanced_entries(cfg.grid_prompts, offset=7)
    grid_prompts = [e["prompt"] for e in grid_entries]

    def grids():
        items = [p for p in grid_prompts for _ in range(cfg.grid_seeds)]
        for m in MODELS:
            desc = f"{m}: sample grid"
            imgs = ev.sample(study.pipe(m), items, cfg.seed + 500, None, cfg.sample_steps, cfg.sample_batch, desc=desc)
            save_images(study.eval_dir / f"grid_{m}.npz", images=imgs)
        return {"prompts": grid_prompts, "seeds": cfg.grid_seeds}

    title = f"sample grids: {len(grid_prompts)} prompts x {cfg.grid_seeds} seeds, both models"
    sig = digest([sig_eval, cfg.grid_prompts, cfg.grid_seeds])
    study.runner.run("grids", title, sig, grids, outputs=tuple(study.eval_dir / f"grid_{m}.npz" for m in MODELS))
    return grid_prompts


def _control(study: Study, sig_eval: str) -> dict:
    cfg = study.cfg
    entries = balanced_entries(cfg.control_images, offset=3)

    def control():
        levels, key = cfg.control_levels, cfg.control_reward
        args = (cfg.rewards, None, cfg.sample_steps, cfg.seed + 2000, cfg.sample_batch)
        res, imgs = ev.control_sweep(study.pipe("miro"), entries, key, levels, *args)
        save_images(study.eval_dir / "control.npz", images=imgs)
        return dict(res, prompts=[e["prompt"] for e in entries])

    title = f"control: dial {cfg.control_reward} over {len(cfg.control_levels)} levels (MIRO)"
    sig = digest([sig_eval, cfg.control_reward, cfg.control_levels, cfg.control_images])
    return study.runner.run("control", title, sig, control, outputs=(study.eval_dir / "control.npz",))


def _report(study: Study, ctx: dict) -> dict[str, Any]:
    """report.html, report.md and results.json (always rewritten)."""
    from . import report

    runner = study.runner
    runner.index += 1
    runner.banner("write report.html and report.md")
    curves = {m: logged_curves(study.run_dir(m)) for m in MODELS}
    ctx = dict(ctx, cfg=study.cfg, out=study.out, timings=runner.timings, total_s=runner.elapsed(), curves=curves)
    ctx["machine"] = study.machine()
    paths = report.write_report(ctx)
    print(f"\nreport: {paths['html']}\n        {paths['md']}  (demo time {runner.elapsed():.0f} s)", flush=True)
    return {
        "report": str(paths["html"]),
        "markdown": str(paths["md"]),
        "seconds": runner.elapsed(),
        "final": ctx["final"],
        "control": ctx["control"],
    }


def sw_best(sweep: dict) -> dict:
    """{model: chosen guidance}: what the stages after the sweep depend on."""
    return {m: r["best"] for m, r in sweep.items()}
