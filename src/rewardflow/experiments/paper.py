"""`rewardflow experiment paper`: the MIRO paper's experiments reproduced on ShapesWorld.

Models (equal compute: same data, architecture, optimiser, steps, batch and seed; only the reward
conditioning differs): `baseline` (no rewards), `miro` (every reward), `only_<reward>` (one
reward each). Stages, each skipped when an earlier run finished it with the same settings:
data -> score -> bins -> train every model (periodic eval curves) -> each model's default
guidance -> GenEval-style table and reward radar -> curves again at the own guidance (baseline,
MIRO) -> test-time scaling (baseline vs MIRO) -> target sweep (MIRO) -> results.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardflow.studies import evaluate as ev
from rewardflow.studies.evaluations import (
    geneval_own_and_shared,
    guidance_sweep,
    logged_curves,
    own_guidance_curves,
    sweep_grid,
)
from rewardflow.studies.stages import digest
from rewardflow.studies.study import Study, prepare_data, training_signature
from rewardflow.studies.training import SNAPSHOTS, train_stage

from .config import PaperConfig

# The speedup compares these two; their EMA weights are kept at every evaluation (a few MB
# each) so their curves can be sampled again at each model's own default guidance.
CURVE_MODELS = ("baseline", "miro")


def model_specs(cfg, paper: PaperConfig) -> dict[str, tuple[str, list[str]]]:
    """{model name: (data.mode, reward_keys)}."""
    specs = {"baseline": ("baseline", []), "miro": ("miro", list(cfg.rewards))}
    if paper.single_reward_models:
        specs.update({f"only_{r}": ("single", [r]) for r in cfg.rewards})
    return specs


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
    specs = model_specs(cfg, paper)
    stages = 3 + 3 * len(specs) + len(CURVE_MODELS) + 2 + bool(paper.tuned_targets)
    settings = ("experiment_config.json", {"demo": cfg.to_dict(), "paper": vars(paper)})
    study = Study.open(cfg, out, stages, progress, settings)
    sig_bins, bins = prepare_data(study)
    run = PaperRun(study, paper, specs, digest([sig_bins, training_signature(cfg)]), command, results_md)
    run.data_rewards = bins["data_rewards"]
    # Baseline and MIRO are trained and evaluated first: the paper's main claims are ready (and
    # written) before the single-reward models, which only add the reward-hacking comparison.
    for name in CURVE_MODELS:
        run.train(name)
    for name in CURVE_MODELS:
        run.evaluate(name)
        run.curves_at_own_guidance(name)
    if run.tuned:
        run.evaluate("miro", run.tuned, "miro_tuned")
    run.test_time_scaling()
    run.target_sweep()
    md = run.write()
    for name in specs:  # single-reward models; results rewritten after each
        if name not in run.final:
            run.train(name)
            run.evaluate(name)
            md = run.write()
    return {"results": str(md), "seconds": study.runner.elapsed()}


@dataclass
class PaperRun:
    """The experiment's state between stages: what each stage measured so far."""

    study: Study
    paper: PaperConfig
    specs: dict[str, tuple[str, list[str]]]
    sig_train: str
    command: str = ""
    results_md: str | Path | None = None
    data_rewards: dict = field(default_factory=dict)
    train_info: dict = field(default_factory=dict)
    guidance: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    final_shared: dict = field(default_factory=dict)
    own_curves: dict = field(default_factory=dict)
    tts: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)

    @property
    def tuned(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.paper.tuned_targets.items()}

    @property
    def sig_eval(self) -> str:
        return digest([self.sig_train, self.study.cfg.section("guidance", "sample_steps", "sample_batch", "seed")])

    def train(self, name: str) -> None:
        mode, keys = self.specs[name]
        study = self.study
        # Tuned curves only change MIRO's stage, and only when asked for (earlier runs stay valid).
        variants = {"tuned": self.tuned} if self.tuned and name == "miro" else None
        sig = [self.sig_train, name, mode, keys] + ([self.tuned] if variants else [])
        snapshots = name in CURVE_MODELS  # for curves at the guidance chosen after training
        sig += [SNAPSHOTS] if snapshots else []
        st = train_stage(study, name, mode, keys, digest(sig), study.progress, study.threads, variants, snapshots)
        self.train_info[name] = study.runner.run(st.name, st.title, st.signature, st.fn, st.outputs, st.clean)

    def choose_guidance(self, name: str) -> None:
        """The model's default guidance on held-out prompts, saved in its folder."""
        cfg = self.study.cfg
        held_out = ev.prompt_entries(max(1, cfg.sweep_images // 6), offset=4 * cfg.geneval_per_category)
        sig = digest([self.sig_train, name, sweep_grid(cfg), held_out, cfg.sample_steps, cfg.sample_batch, cfg.seed])
        title = f"{name}: choose its default guidance on {len(held_out)} held-out prompts"
        fn = lambda: guidance_sweep(self.study, [name], held_out)[name]  # noqa: E731
        self.guidance[name] = self.study.runner.run(f"guidance_{name}", title, sig, fn)
        self.study.set_default_guidance(name, self.guidance[name], len(held_out))

    def evaluate(self, name: str, targets: dict | None = None, label: str | None = None) -> None:
        """GenEval-style table and rewards at the model's own and at the shared guidance."""
        cfg, label = self.study.cfg, label or name
        if name not in self.guidance:
            self.choose_guidance(name)
        entries = ev.prompt_entries(cfg.geneval_per_category)
        sig = [self.sig_eval, name, cfg.geneval_per_category, self.guidance[name]["best"]]
        sig += [targets] if targets else []
        title = f"{label}: GenEval-style table and rewards, {len(entries)} prompts, own and shared guidance"
        fn = lambda: geneval_own_and_shared(self.study, name, entries, targets, label)  # noqa: E731
        both = self.study.runner.run(f"geneval_{label}", title, digest(sig), fn)
        self.final[label], self.final_shared[label] = both["own"], both["shared"]

    def curves_at_own_guidance(self, name: str) -> None:
        cfg, best = self.study.cfg, self.guidance[name]["best"]
        title = f"{name}: training curves again at its own default guidance ({ev.guidance_label(best)})"
        sig = digest([self.sig_train, name, best, ev.curve_entries(cfg), cfg.eval_steps, cfg.sample_batch])
        fn = lambda: {"rows": own_guidance_curves(self.study, name)}  # noqa: E731
        self.own_curves[name] = self.study.runner.run(f"curves_{name}", title, sig, fn)["rows"]

    def test_time_scaling(self) -> None:
        from rewardflow.sampling.selection import best_of_n

        cfg, paper = self.study.cfg, self.paper
        entries = ev.prompt_entries(paper.tts_per_category, offset=3 * cfg.geneval_per_category)

        def tts():
            res = {}
            for name in CURVE_MODELS:
                r = best_of_n(
                    self.study.pipe(name),
                    [e["prompt"] for e in entries],
                    paper.tts_max_n,
                    {k: 1.0 for k in cfg.rewards},
                    seed=cfg.seed + 4000,
                    output_type="np",
                    batch_size=cfg.sample_batch,
                    progress=False,
                    num_inference_steps=cfg.sample_steps,
                )
                res[name] = tts_curves({k: v.numpy() for k, v in r.reward_scores.items()}, paper.tts_max_n)
                print(f"    {name}: best-of-{paper.tts_max_n} on {len(entries)} prompts", flush=True)
            return res

        best = {n: self.guidance[n]["best"] for n in CURVE_MODELS}
        sig = digest([self.sig_eval, paper.tts_per_category, paper.tts_max_n, best])
        title = f"test-time scaling N = 1..{paper.tts_max_n}, {len(entries)} prompts"
        self.tts = self.study.runner.run("tts", title, sig, tts)

    def target_sweep(self) -> None:
        cfg, paper = self.study.cfg, self.paper
        entries = ev.prompt_entries(paper.sweep_per_category, offset=2 * cfg.geneval_per_category)
        prompts, key = [e["prompt"] for e in entries], paper.sweep_reward

        def sweep():
            rows = []
            for level in paper.sweep_levels:
                desc = f"miro: {key} target {level:g}"
                args = (cfg.seed + 5000, None, cfg.sample_steps, cfg.sample_batch)
                imgs = ev.sample(self.study.pipe("miro"), prompts, *args, targets={key: float(level)}, desc=desc)
                rows.append({"level": float(level), **ev.summarize(imgs, entries, cfg.rewards)})
            return {"reward": key, "rows": rows}

        sig = digest([self.sig_eval, key, paper.sweep_levels, paper.sweep_per_category, self.guidance["miro"]["best"]])
        title = f"target sweep of {key} ({len(paper.sweep_levels)} levels, MIRO)"
        self.sweep = self.study.runner.run("sweep", title, sig, sweep)

    def logged_curves(self) -> dict[str, list[dict]]:
        """The curves logged during training, at the shared w."""
        c = {name: logged_curves(self.study.run_dir(name)) for name in self.final if name != "miro_tuned"}
        if "miro_tuned" in self.final:
            c["miro_tuned"] = variant_curves(c.get("miro", []), "tuned")
        return c

    def write(self) -> Path:
        from .results import write_results

        study, runner = self.study, self.study.runner
        ctx = dict(
            cfg=study.cfg,
            paper=self.paper,
            out=study.out,
            command=self.command or "rewardflow experiment paper",
            timings=runner.timings,
            total_s=runner.elapsed(),
            final=dict(self.final),
            tts=self.tts,
            sweep=self.sweep,
            final_shared=dict(self.final_shared),
            guidance=dict(self.guidance),
            train=self.train_info,
            data_rewards=self.data_rewards,
            pending=[n for n in self.specs if n not in self.final],
            curves=dict(self.own_curves),
            curves_shared=self.logged_curves(),
            tuned=self.tuned,
            machine=study.machine(),
        )
        md = write_results(ctx, extra=self.results_md)
        done = len([n for n in self.final if n in self.specs])  # not counting the miro_tuned table
        print(f"results: {md} ({done}/{len(self.specs)} models; experiment time {runner.elapsed():.0f} s)", flush=True)
        return md
