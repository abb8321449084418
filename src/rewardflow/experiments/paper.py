"""`rewardflow experiment paper`: the MIRO paper's experiments reproduced on ShapesWorld.

Models (equal compute: same data, architecture, optimiser, steps, batch and seed; only the reward
conditioning differs): `baseline` (no rewards), `miro` (every reward), `only_<reward>` (one
reward each). Stages, each skipped when an earlier run finished it with the same settings:
data -> score -> bins -> train every model (periodic eval curves) -> GenEval-style table and
reward radar -> test-time scaling (baseline vs MIRO) -> target sweep (MIRO) -> results.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardflow.demo import evaluate as ev
from rewardflow.demo.config import TRAIN_KEYS
from rewardflow.demo.evaluate import guidance_label
from rewardflow.demo.stages import StageRunner

from .config import PaperConfig

# The speedup compares these two; their EMA weights are kept at every evaluation (a few MB
# each) so their curves can be sampled again at each model's own default guidance.
CURVE_MODELS = ("baseline", "miro")
SNAPSHOTS = "eval_weights"


def model_specs(cfg, paper: PaperConfig) -> dict[str, tuple[str, list[str]]]:
    """{model name: (data.mode, reward_keys)}."""
    specs = {"baseline": ("baseline", []), "miro": ("miro", list(cfg.rewards))}
    if paper.single_reward_models:
        specs.update({f"only_{r}": ("single", [r]) for r in cfg.rewards})
    return specs


def _train_config(cfg, data_dir: Path, run_dir: Path, mode: str, keys: list[str], text_cache: Path):
    from rewardflow.demo.run import train_config

    tc = train_config(cfg, data_dir, run_dir, "miro" if mode == "miro" else "baseline", text_cache)
    if mode == "single":
        tc.data.mode, tc.data.reward_keys = "single", list(keys)
    return tc


def read_curves(run_dir: Path) -> list[dict]:
    from rewardflow.training import read_jsonl

    by_step = {r["step"]: r for r in read_jsonl(run_dir / "log.jsonl", "eval")}  # resumes may repeat a step
    return [by_step[s] for s in sorted(by_step)]


def variant_curves(rows: list[dict], name: str) -> list[dict]:
    """The eval rows a `variants` callback logged under `<name>/...`, prefix removed."""
    pre = name + "/"
    return [
        {"step": r["step"], **{k[len(pre) :]: v for k, v in r.items() if k.startswith(pre)}}
        for r in rows
        if any(k.startswith(pre) for k in r)
    ]


def tts_curves(reward_scores: dict[str, np.ndarray], max_n: int) -> dict[str, list[float]]:
    """{reward: [mean over prompts of the best of the first N candidates, N = 1..max_n]}.

    reward_scores[r] is (P, max_n); seeds are nested in N, so best-of-N for every N comes from
    one pool of max_n candidates (the first N columns).
    """
    return {r: [float(np.max(s[:, :n], axis=1).mean()) for n in range(1, max_n + 1)] for r, s in reward_scores.items()}


def run_paper(
    cfg,
    paper: PaperConfig,
    out: str | Path,
    progress: bool = True,
    command: str = "",
    results_md: str | Path | None = None,
) -> dict[str, Any]:
    import torch

    from rewardflow.data.shapes import ShapesConfig
    from rewardflow.sampling.pipeline import RewardFlowPipeline
    from rewardflow.training import Trainer, latest_checkpoint
    from rewardflow.training.builders import build_text_encoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from rewardflow.demo.run import choose_threads

    # On the oversubscribed shared box 1 thread beat 2 by 7x (the demo measures which wins).
    torch.set_num_threads(cfg.threads or choose_threads(cfg))
    load_start = os.getloadavg()
    specs = model_specs(cfg, paper)
    runner = StageRunner(out, total=3 + 3 * len(specs) + len(CURVE_MODELS) + 2 + bool(paper.tuned_targets))
    data_dir, text_cache = out / "data", out / "text_cache"
    digest = type(cfg).digest
    (out / "experiment_config.json").write_text(json.dumps({"demo": cfg.to_dict(), "paper": vars(paper)}, indent=2))
    shapes_cfg = ShapesConfig.from_preset(cfg.shapes_preset, **cfg.shapes_overrides)

    # ------------------------------------------------------------ data, scores, bins
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
        return {"shards": len(shards)}

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

    sig_bins = digest([sig_data, reward_versions(cfg.rewards), cfg.num_bins, QUANTILE_RULE])

    def score_and_bin():
        from rewardflow.data.binning import RewardBins
        from rewardflow.rewards.scoring import read_scores, score_dataset

        score_dataset(data_dir, cfg.rewards, workers=cfg.data_workers, progress=progress)
        scores = read_scores(data_dir, cfg.rewards)
        RewardBins.fit(scores, num_bins=cfg.num_bins, seed=cfg.seed).save(data_dir / "bins.json")
        return {k: {"mean": float(np.mean(v)), "p90": float(np.quantile(v, 0.9))} for k, v in scores.items()}

    data_rewards = runner.run(
        "bins", "score every image and fit reward bins", sig_bins, score_and_bin, outputs=(data_dir / "bins.json",)
    )

    # ------------------------------------------------------------ training
    curve_entries = ev.prompt_entries(max(1, cfg.eval_prompts // 6), offset=cfg.geneval_per_category)
    sig_train = digest([sig_bins, cfg.section(*TRAIN_KEYS)])
    train_info: dict[str, dict] = {}
    tuned = {k: float(v) for k, v in paper.tuned_targets.items()}

    def train_model(name: str) -> None:
        mode, keys = specs[name]
        run_dir = out / "runs" / name

        def train():
            tc = _train_config(cfg, data_dir, run_dir, mode, keys, text_cache)
            tc.progress = progress  # --no-progress also hides the training bar
            encoder = build_text_encoder(tc)
            cb = ev.PeriodicEval(
                encoder,
                curve_entries,
                cfg.rewards,
                period=cfg.eval_every or cfg.steps,
                last=cfg.steps,
                steps=cfg.eval_steps,
                guidance=cfg.guidance,
                seed=cfg.seed + 1000,
                batch=cfg.sample_batch,
                variants={"tuned": tuned} if tuned and name == "miro" else None,
                weights_dir=run_dir / SNAPSHOTS if name in CURVE_MODELS else None,
            )
            t0 = time.perf_counter()
            summary = Trainer(tc, callbacks=[cb]).train()
            wall = time.perf_counter() - t0
            RewardFlowPipeline.from_checkpoint(latest_checkpoint(run_dir), text_encoder=encoder).save_pretrained(
                out / "models" / name
            )
            return {
                "steps": summary["step"],
                "images_seen": summary["images_seen"],
                "wall_s": wall,
                "mode": mode,
                "reward_keys": keys,
            }

        title = f"train {name} ({cfg.model_preset}, {cfg.steps} steps x {cfg.batch_size} images)"
        # Tuned curves only change MIRO's stage, and only when asked for (earlier runs stay valid).
        sig = [sig_train, name, mode, keys] + ([tuned] if tuned and name == "miro" else [])
        outputs = [out / "models" / name / "pipeline_config.json"]
        if name in CURVE_MODELS:  # snapshots for curves at the guidance chosen after training
            sig.append(SNAPSHOTS)
            outputs.append(run_dir / SNAPSHOTS)
        train_info[name] = runner.run(
            f"train_{name}", title, digest(sig), train, outputs=tuple(outputs), clean=(run_dir,)
        )

    # Baseline and MIRO are trained and evaluated first: the paper's main claims are ready (and
    # written) before the single-reward models, which only add the reward-hacking comparison.
    for name in ("baseline", "miro"):
        train_model(name)
    enc = build_text_encoder(_train_config(cfg, data_dir, out / "runs" / "miro", "miro", [], text_cache))
    cache: dict[str, Any] = {}

    def pipe(name: str):
        if name not in cache:
            cache[name] = RewardFlowPipeline.from_pretrained(out / "models" / name, text_encoder=enc)
        return cache[name]

    sig_eval = digest([sig_train, cfg.section("guidance", "sample_steps", "sample_batch", "seed")])
    entries = ev.prompt_entries(cfg.geneval_per_category)
    final: dict[str, dict] = {}
    final_shared: dict[str, dict] = {}
    guidance: dict[str, dict] = {}
    grid = ev.guidance_grid(cfg.sweep_scales, cfg.sweep_text_scales, cfg.sweep_reward_scales, cfg.sweep_intervals)
    held_out = ev.prompt_entries(max(1, cfg.sweep_images // 6), offset=4 * cfg.geneval_per_category)

    def choose_guidance(name: str) -> None:
        """The model's default guidance on held-out prompts, saved in its folder (as the demo does)."""

        def sweep():
            return ev.guidance_sweep(
                {name: pipe(name)}, held_out, grid, cfg.rewards, cfg.sample_steps, cfg.seed + 3000, cfg.sample_batch
            )[name]

        guidance[name] = runner.run(
            f"guidance_{name}",
            f"{name}: choose its default guidance on {len(held_out)} held-out prompts",
            digest([sig_train, name, grid, held_out, cfg.sample_steps, cfg.sample_batch, cfg.seed]),
            sweep,
        )
        # Re-saved every time: a retrained folder (same settings) must not lose its default.
        ev.save_default_guidance(out / "models" / name, guidance[name], len(held_out), cfg.sample_steps)
        pipe(name).config.update(guidance[name]["best"])

    def evaluate_model(name: str, targets: dict | None = None, label: str | None = None) -> None:
        label = label or name
        if name not in guidance:
            choose_guidance(name)

        def geneval():
            res = {}
            for which, g in (("own", None), ("shared", cfg.guidance)):
                imgs = ev.sample(
                    pipe(name),
                    [e["prompt"] for e in entries],
                    cfg.seed,
                    g,
                    cfg.sample_steps,
                    cfg.sample_batch,
                    targets=targets,
                    desc=f"{label}: GenEval-style prompts ({which})",
                )
                res[which] = ev.summarize(imgs, entries, cfg.rewards)
            return res

        sig = [sig_eval, name, cfg.geneval_per_category, guidance[name]["best"]] + ([targets] if targets else [])
        both = runner.run(
            f"geneval_{label}",
            f"{label}: GenEval-style table and rewards, {len(entries)} prompts, own and shared guidance",
            digest(sig),
            geneval,
        )
        final[label], final_shared[label] = both["own"], both["shared"]

    own_curves: dict[str, list[dict]] = {}
    for name in CURVE_MODELS:
        evaluate_model(name)
        own_curves[name] = runner.run(
            f"curves_{name}",
            f"{name}: training curves again at its own default guidance ({guidance_label(guidance[name]['best'])})",
            digest([sig_train, name, guidance[name]["best"], curve_entries, cfg.eval_steps, cfg.sample_batch]),
            lambda name=name: {
                "rows": ev.curves_from_snapshots(
                    RewardFlowPipeline.from_pretrained(out / "models" / name, text_encoder=enc),
                    out / "runs" / name / SNAPSHOTS,
                    curve_entries,
                    cfg.rewards,
                    cfg.eval_steps,
                    cfg.seed + 1000,
                    cfg.sample_batch,
                )
            },
        )["rows"]
    if tuned:
        evaluate_model("miro", tuned, "miro_tuned")
    tts_entries = ev.prompt_entries(paper.tts_per_category, offset=3 * cfg.geneval_per_category)

    def tts():
        from rewardflow.sampling.selection import best_of_n

        res = {}
        for name in ("baseline", "miro"):
            r = best_of_n(
                pipe(name),
                [e["prompt"] for e in tts_entries],
                paper.tts_max_n,
                {k: 1.0 for k in cfg.rewards},
                seed=cfg.seed + 4000,
                output_type="np",
                batch_size=cfg.sample_batch,
                progress=False,
                num_inference_steps=cfg.sample_steps,
            )
            res[name] = tts_curves({k: v.numpy() for k, v in r.reward_scores.items()}, paper.tts_max_n)
            print(f"    {name}: best-of-{paper.tts_max_n} on {len(tts_entries)} prompts", flush=True)
        return res

    tts_res = runner.run(
        "tts",
        f"test-time scaling N = 1..{paper.tts_max_n}, {len(tts_entries)} prompts",
        digest(
            [sig_eval, paper.tts_per_category, paper.tts_max_n, {n: guidance[n]["best"] for n in ("baseline", "miro")}]
        ),
        tts,
    )
    sweep_entries = ev.prompt_entries(paper.sweep_per_category, offset=2 * cfg.geneval_per_category)

    def sweep():
        rows = []
        for level in paper.sweep_levels:
            imgs = ev.sample(
                pipe("miro"),
                [e["prompt"] for e in sweep_entries],
                cfg.seed + 5000,
                None,
                cfg.sample_steps,
                cfg.sample_batch,
                targets={paper.sweep_reward: float(level)},
                desc=f"miro: {paper.sweep_reward} target {level:g}",
            )
            rows.append({"level": float(level), **ev.summarize(imgs, sweep_entries, cfg.rewards)})
        return {"reward": paper.sweep_reward, "rows": rows}

    sweep_res = runner.run(
        "sweep",
        f"target sweep of {paper.sweep_reward} ({len(paper.sweep_levels)} levels, MIRO)",
        digest([sig_eval, paper.sweep_reward, paper.sweep_levels, paper.sweep_per_category, guidance["miro"]["best"]]),
        sweep,
    )

    from .results import write_results

    def curves() -> dict[str, list[dict]]:
        """The curves logged during training, at the shared w."""
        c = {name: read_curves(out / "runs" / name) for name in final if name != "miro_tuned"}
        if "miro_tuned" in final:
            c["miro_tuned"] = variant_curves(c.get("miro", []), "tuned")
        return c

    def write() -> Path:
        ctx = dict(
            cfg=cfg,
            paper=paper,
            out=out,
            command=command or "rewardflow experiment paper",
            timings=runner.timings,
            total_s=runner.elapsed(),
            final=dict(final),
            tts=tts_res,
            sweep=sweep_res,
            final_shared=dict(final_shared),
            guidance=dict(guidance),
            train=train_info,
            data_rewards=data_rewards,
            pending=[n for n in specs if n not in final],
            curves=dict(own_curves),
            curves_shared=curves(),
            tuned=tuned,
            machine=dict(
                cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads(),
                load_start=load_start,
                load_end=os.getloadavg(),
                platform=platform.platform(),
                torch=torch.__version__,
            ),
        )
        md = write_results(ctx, extra=results_md)
        done = len([n for n in final if n in specs])  # not counting the miro_tuned table
        print(f"results: {md} ({done}/{len(specs)} models; experiment time {runner.elapsed():.0f} s)", flush=True)
        return md

    md = write()
    for name in specs:  # single-reward models; results rewritten after each
        if name not in final:
            train_model(name)
            evaluate_model(name)
            md = write()
    return {"results": str(md), "seconds": runner.elapsed()}
