"""results.md of the paper experiment: measured figures beside the paper's, the command that
regenerates them, and a verdict on each of the paper's goals; results.json beside it holds every
measured number. Hand-written text between `<!-- notes -->` and `<!-- /notes -->` in an existing
file survives a rewrite."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from rewardflow.eval.speedup import format_speedup, training_speedup
from rewardflow.studies.evaluate import guidance_label
from rewardflow.utils.atomic import atomic_write_bytes

from . import plots

PAPER_SPEEDUP = "aesthetic 19.1x, HPSv2 6.3x, PickScore 3.5x, ImageReward 3.5-3.7x"
PAPER_GENEVAL = {
    "baseline": [55.3, 94.1, 28.5, 49.1, 68.1, 18.0, 52.2],
    "miro": [67.7, 92.2, 37.5, 55.3, 69.1, 19.0, 56.8],
}
PAPER_TTS = (
    "aesthetic: baseline 5.36 -> 5.87 (N=128), MIRO N=1 6.39; HPSv2: baseline .2469 -> .2858, "
    "MIRO N=1 .2907; ImageReward: baseline 0.52 -> 1.40, MIRO N=1 1.04"
)
PAPER_SWEEP = "aesthetic target 0 / .5 / .625 / .75 / 1: GenEval 71.3 / 72.9 / 74.9 / 71.1 / 67.7"
NOTES = re.compile(r"<!-- notes -->.*?<!-- /notes -->", re.S)


def _f(v, nd=3) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def _table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(map(str, r)) + " |" for r in rows
    ]


def speedups(curves: dict, rewards: list[str], window: int = 1, model: str = "miro") -> list:
    from rewardflow.rewards.registry import get_reward

    metrics = [(f"reward/{k}", bool(getattr(get_reward(k), "higher_is_better", True))) for k in rewards]
    metrics += [("reward/noise_sigma", False), ("geneval/overall", True)]
    out = []
    for key, higher in metrics:
        b = [(r["step"], r[key]) for r in curves.get("baseline", []) if key in r]
        m = [(r["step"], r[key]) for r in curves.get(model, []) if key in r]
        if len(b) >= 1 and len(m) >= 1:
            out.append(training_speedup(*zip(*b), *zip(*m), higher_is_better=higher, metric=key, final_window=window))
    return out


def write_results(ctx: dict, extra: str | Path | None = None) -> Path:
    """Write OUT/results.md, OUT/results.json and OUT/figures; `extra`: also write that markdown
    file with its figures copied to `<extra dir>/results_figures/`."""
    out = Path(ctx["out"])
    lines: list[str] = []
    figures: list[Path] = []
    for section in (_header, _speedup, _geneval, _radar, _tts, _target_sweep, _timings):
        more, figs = section(ctx)
        lines += more
        figures += figs
    text = "\n".join(lines) + "\n"
    keys = ("final", "final_shared", "guidance", "tts", "sweep", "curves", "curves_shared", "train", "data_rewards")
    summary = {k: ctx.get(k) for k in keys} | {"timings": ctx["timings"], "machine": ctx["machine"]}
    atomic_write_bytes(out / "results.json", json.dumps(summary, indent=1, default=str).encode("utf-8"))
    path = out / "results.md"
    path.write_text(_keep_notes(text, path))
    if extra is not None:
        extra = Path(extra)
        fig_dir = extra.parent / "results_figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for f in figures:
            shutil.copy(f, fig_dir / f.name)
        extra.write_text(_keep_notes(text.replace("](figures/", "](results_figures/"), extra))
    return path


def _header(ctx: dict) -> tuple[list[str], list[Path]]:
    cfg, out, m = ctx["cfg"], Path(ctx["out"]), ctx["machine"]
    cmd = ctx.get("command", "rewardflow experiment paper")
    t, stages_s = ctx["total_s"], sum(x["seconds"] for x in ctx["timings"])
    L = [
        "# rewardflow: the MIRO paper's experiments on ShapesWorld",
        "",
        f"Regenerate everything on this page: `{cmd}`",
        "",
        f"Sum of stage times {stages_s / 60:.1f} min (this invocation {t / 60:.1f} min; stages finished by an "
        f"earlier invocation are reused, see Timings) on {m['cpus']} CPU cores "
        f"({m['torch_threads']} torch threads, load average "
        f"{m['load_start'][0]:.1f} at start, {m['load_end'][0]:.1f} at end; torch {m['torch']}). Settings: "
        f"`{out}/experiment_config.json`. Every model: {cfg.model_preset}, {cfg.steps} steps x batch "
        f"{cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}, on {cfg.num_images} ShapesWorld images "
        f"({cfg.shapes_preset}); sampling {cfg.sample_steps} Euler steps, each model at its own default "
        f"guidance chosen on held-out prompts (below), the shared CFG w = {cfg.guidance} beside it; training "
        f"curves both ways too.",
        "",
        "<!-- notes -->",
        "<!-- /notes -->",
        "",
    ]
    if ctx.get("pending"):
        L += [f"**Partial results**: still to train and evaluate: {', '.join(ctx['pending'])}.", ""]
    return L, []


def _speedup(ctx: dict) -> tuple[list[str], list[Path]]:
    cfg, paper, out = ctx["cfg"], ctx["paper"], Path(ctx["out"])
    rewards, tuned, figs = list(cfg.rewards), ctx.get("tuned") or {}, Path(ctx["out"]) / "figures"
    L = [
        "## (a) Training speedup",
        "",
        f"Steps the baseline trained ({cfg.steps}) over the steps MIRO needs to reach the baseline's final score, "
        f"first crossing, linear interpolation between evaluations every {cfg.eval_every} steps "
        f"({cfg.eval_prompts} images per point, {cfg.eval_steps} sampling steps). Paper: {PAPER_SPEEDUP}.",
        "",
    ]
    own, shared = ctx["curves"], ctx.get("curves_shared") or {}
    made = []
    if own:
        L += [
            "Each model at its own default guidance (chosen after training, below): the EMA weights kept at every "
            "evaluation are sampled again with the same prompts and seeds.",
            "",
        ]
        made.append(_speedup_section(L, own, rewards, paper, out, figs / "speedup_curves.png"))
    if shared:
        L += [f"At the shared w = {cfg.guidance:g}, as evaluated during training:", ""]
        if tuned:
            L += [
                f"`miro_tuned` is the same MIRO model evaluated at s+ = {_targets(tuned)} (others 1), on the same "
                "prompts and seeds at every evaluation: the paper's tuned target vector.",
                "",
            ]
        made.append(_speedup_section(L, shared, rewards, paper, out, figs / "speedup_curves_shared.png"))
    return L, made


def _geneval_table(results: dict, cats: list[str]) -> list[str]:
    rows = [
        [name]
        + [_f(r["geneval"]["per_category"][c], 2) for c in cats]
        + [f"{_f(r['geneval']['overall'], 3)} ± {_f(_overall_se(r['geneval']), 3)}"]
        for name, r in results.items()
    ]
    return _table(["model"] + cats + ["overall ± s.e."], rows) + [""] + _geneval_goals(results, cats)


def _geneval(ctx: dict) -> tuple[list[str], list[Path]]:
    cfg, final, out, tuned = ctx["cfg"], ctx["final"], Path(ctx["out"]), ctx.get("tuned") or {}
    f_gen = plots.geneval_bars({m: r["geneval"] for m, r in final.items()}, out / "figures" / "geneval.png")
    cats = list(next(iter(final.values()))["geneval"]["per_category"])
    L = [
        "## (b) GenEval-style accuracy per category",
        "",
        f"{6 * cfg.geneval_per_category} prompts ({cfg.geneval_per_category} per category, counting prompts "
        "limited to what the world shows), one image each, same seeds for every model; MIRO and single-reward "
        "models at s+ = 1, s- = 0" + (f"; miro_tuned at s+ = {_targets(tuned)}, others 1" if tuned else "") + ".",
        "",
    ]
    L += _geneval_table(final, cats)
    shared = ctx.get("final_shared") or {}
    if shared:
        L += [f"The same table with every model at the shared w = {cfg.guidance:g}:", ""]
        L += _geneval_table(shared, cats)
    if ctx.get("guidance"):
        chosen = "; ".join(f"{n} {guidance_label(g['best'])}" for n, g in ctx["guidance"].items())
        L += [
            "Default guidance per model (chosen on held-out prompts by GenEval-style overall + mean alignment, "
            "saved in the model folder): " + chosen + ".",
            "",
        ]
    L += [
        f"Paper (two / single / attr / count / colours / position / overall): baseline "
        f"{PAPER_GENEVAL['baseline']}, MIRO {PAPER_GENEVAL['miro']}.",
        "",
        f"![GenEval]({_rel(f_gen, out)})",
        "",
    ]
    return L, [f_gen]


def _radar(ctx: dict) -> tuple[list[str], list[Path]]:
    final, out, rewards = ctx["final"], Path(ctx["out"]), list(ctx["cfg"].rewards)
    keys = rewards + ["noise_sigma"]
    f_radar = plots.radar({m: r["rewards"] for m, r in final.items()}, keys, out / "figures" / "radar.png")
    L = [
        "## (c) Reward radar: every model on every reward",
        "",
        "Mean reward of the GenEval-style images above (noise_sigma: lower is better).",
        "",
    ]
    L += _table(["model"] + keys, [[n] + [_f(r["rewards"][k], 4) for k in keys] for n, r in final.items()])
    L += [""] + _hacking(final, rewards) + ["", f"![radar]({_rel(f_radar, out)})", ""]
    return L, [f_radar]


def _tts(ctx: dict) -> tuple[list[str], list[Path]]:
    paper, out, rewards = ctx["paper"], Path(ctx["out"]), list(ctx["cfg"].rewards)
    tts, n = ctx["tts"], paper.tts_max_n
    f_tts = plots.tts_curves(tts, rewards, out / "figures" / "tts.png")
    n8 = min(8, n)
    rows = []
    for k in rewards:
        bc, mc = tts["baseline"][k], tts["miro"][k]
        match = next((i + 1 for i, v in enumerate(bc) if v >= mc[0]), None)
        note = "baseline N=1 already >= MIRO N=1" if match == 1 else f"N = {match}" if match else f"not within N = {n}"
        goal = "met" if mc[0] >= bc[n8 - 1] else "missed"
        rows.append([k, *(_f(v, 4) for v in (bc[0], bc[n8 - 1], bc[-1], mc[0], mc[-1])), note, goal])
    head = ["reward", "baseline N=1", f"baseline N={n8}", f"baseline N={n}", "MIRO N=1", f"MIRO N={n}"]
    head += ["baseline best-of-N matching MIRO N=1", f"goal: MIRO N=1 >= baseline N={n8}"]
    L = [
        "## (d) Test-time scaling",
        "",
        f"Best-of-N selecting by each reward, N = 1..{n} (nested seeds, one pool of {n} candidates per prompt), "
        f"{6 * paper.tts_per_category} prompts. Paper: {PAPER_TTS}.",
        "",
    ]
    return L + _table(head, rows) + ["", f"![TTS]({_rel(f_tts, out)})", ""], [f_tts]


def _target_sweep(ctx: dict) -> tuple[list[str], list[Path]]:
    paper, out, sw = ctx["paper"], Path(ctx["out"]), ctx["sweep"]
    f_sweep = plots.target_sweep(sw["rows"], sw["reward"], out / "figures" / "target_sweep.png")
    L = [
        "## (e) Target sweep",
        "",
        f"MIRO, s+ = 1 except {sw['reward']} = w, {6 * paper.sweep_per_category} GenEval-style prompts per level. "
        f"Paper: {PAPER_SWEEP}.",
        "",
    ]
    L += _table(
        ["w", "GenEval-style overall", f"measured {sw['reward']}"],
        [[f"{r['level']:g}", _f(r["geneval"]["overall"]), _f(r["rewards"][sw["reward"]], 4)] for r in sw["rows"]],
    )
    best = max(sw["rows"], key=lambda r: r["geneval"]["overall"])
    L += ["", f"Best GenEval-style overall at w = {best['level']:g}.", "", f"![sweep]({_rel(f_sweep, out)})", ""]
    return L, [f_sweep]


def _timings(ctx: dict) -> tuple[list[str], list[Path]]:
    rows = [[x["title"], f"{x['seconds']:.0f}", "from an earlier run" if x["skipped"] else ""] for x in ctx["timings"]]
    return ["## Timings", ""] + _table(["stage", "seconds", "note"], rows), []


def _speedup_section(L: list[str], curves: dict, rewards: list[str], paper, out: Path, fig: Path) -> Path:
    """Append one speedup table (MIRO, and miro_tuned when its curves exist) and its figure."""
    models = ["miro"] + (["miro_tuned"] if "miro_tuned" in curves else [])
    sp_by = {m: speedups(curves, rewards, paper.speedup_final_window, m) for m in models}
    sp = sp_by["miro"]
    metrics, targets = [(s.metric, s.higher_is_better) for s in sp], {s.metric: s.target for s in sp}
    f = plots.speedup_curves(curves, metrics, targets, fig)
    rows = []
    for m in models:
        for s in sp_by[m]:
            if s.speedup is None and s.upper_bound is None:
                goal = "undetermined (baseline never beat MIRO's step-0 value)"
            else:
                goal = "met" if s.speedup is not None and s.speedup >= 3 else "missed"
            row = [m, s.metric, _f(s.target), _f(s.miro_final), _f(s.miro_steps, 0), format_speedup(s), goal]
            rows.append(row + [s.reason or ""])
    head = ["model", "metric", "baseline final", "MIRO final", "MIRO steps to reach it", "speedup", "goal >= 3x"]
    L += _table(head + ["note"], rows)
    L += ["", f"![eval curves]({_rel(f, out)})", ""]
    return f


def _geneval_goals(final: dict, cats: list[str]) -> list[str]:
    """MIRO ahead of the baseline overall by more than 2 standard errors and in >= 4 of 6 categories."""
    b = final["baseline"]["geneval"]
    lines = []
    for m in [x for x in ("miro", "miro_tuned") if x in final]:
        mi = final[m]["geneval"]
        ahead = [c for c in cats if mi["per_category"][c] > b["per_category"][c]]
        d = mi["overall"] - b["overall"]
        se = (_overall_se(mi) ** 2 + _overall_se(b) ** 2) ** 0.5
        lines += [
            f"Goal ({m} ahead of the baseline overall by > 2 s.e.): **{'met' if d > 2 * se else 'missed'}** "
            f"({_f(mi['overall'])} vs {_f(b['overall'])}, difference {d:+.3f} ± {se:.3f}). "
            f"Goal (ahead in >= 4 of {len(cats)} categories): **{'met' if len(ahead) >= 4 else 'missed'}** "
            f"(ahead in {len(ahead)}: {', '.join(ahead) or 'none'}).",
            "",
        ]
    return lines


def _targets(t: dict) -> str:
    from rewardflow.sampling.targets import format_target

    return ", ".join(f"{k} = {format_target(v)}" for k, v in t.items())


def _overall_se(ge: dict) -> float:
    """Standard error of the overall score (mean of the per-category binomial proportions)."""
    var = sum(p * (1 - p) / max(ge["counts"][c], 1) for c, p in ge["per_category"].items())
    return var**0.5 / max(len(ge["per_category"]), 1)


def _rel(p: Path, out: Path) -> str:
    return str(p.relative_to(out))


def _keep_notes(text: str, path: Path) -> str:
    if path.is_file():
        old = NOTES.search(path.read_text())
        if old:
            return NOTES.sub(lambda _: old.group(0), text, count=1)
    return text


def _hacking(final: dict, rewards: list[str]) -> list[str]:
    """Per single-reward model: does it beat MIRO on its own reward and lose on the others?"""
    lines = []
    mi = final["miro"]["rewards"]
    for k in rewards:
        r = final.get(f"only_{k}", {}).get("rewards")
        if r is None:
            continue
        others = [o for o in rewards if o != k]
        lose = [o for o in others if r[o] < mi[o]]
        lines.append(
            f"- only_{k}: own reward {r[k]:.4f} vs MIRO {mi[k]:.4f} "
            f"({'wins' if r[k] > mi[k] else 'loses'}); below MIRO on {len(lose)}/{len(others)} other "
            f"rewards{' (' + ', '.join(lose) + ')' if lose else ''}."
        )
    return lines
