"""report.html + report.md from one list of blocks (heading, paragraph, table, figure), so the
two files always say the same thing. Figures are PNGs in OUT/figures, linked relatively."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from rewardflow.shapes.control import spearman_passes
from rewardflow.studies import evaluate as ev

from . import plots

QUALITY = ("sharpness", "cleanliness", "colorfulness")


def _f(v: Any, nd: int = 3) -> str:
    return f"{v:.{nd}f}" if isinstance(v, (int, float)) and np.isfinite(v) else "n/a"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3g}x" if b else "n/a"


def _row_guidance(r: dict) -> dict:
    return {
        "guidance_scale": r["scale"],
        "text_guidance_scale": r["text_scale"],
        "guidance_interval": r.get("interval"),
    }


def _is_best(row: dict, best: dict) -> bool:
    return _row_guidance(row) == {k: best.get(k) for k in ev.GUIDANCE_KEYS}


def comparisons(final: dict) -> list[tuple[str, str, bool]]:
    """MIRO vs baseline, paired over the same images: ahead on GenEval-style overall and on every
    quality reward, and not behind on alignment by more than one standard error."""
    if not final:
        return []
    m, b = final["miro"], final["baseline"]

    def row(label: str, key: str, level_ok: bool = False) -> tuple[str, str, bool]:
        d, se = ev.paired_difference(m, b, key)
        name = "GenEval-style overall" if key == "geneval_correct" else key
        vals = (
            (m["geneval"]["overall"], b["geneval"]["overall"])
            if key == "geneval_correct"
            else (m["rewards"][key], b["rewards"][key])
        )
        return (
            label.format(name),
            f"{vals[0]:.3f} vs {vals[1]:.3f}: {d:+.3f} +- {se:.3f}",
            d >= -se if level_ok else d > 0,
        )

    return [
        row("MIRO {} > baseline", "geneval_correct"),
        row("MIRO {} >= baseline (or within 1 s.e.)", "shapes_alignment", level_ok=True),
        *[row("MIRO {} > baseline", k) for k in QUALITY if k in m["rewards"]],
    ]


def build_figures(ctx: dict) -> dict[str, str]:
    out, cfg = Path(ctx["out"]), ctx["cfg"]
    fig = out / "figures"
    ev = out / "eval"
    keys = [f"reward/{k}" for k in cfg.rewards] + ["reward/noise_sigma", "geneval/overall"]
    paths = {"curves": plots.training_curves(ctx["curves"], keys, fig / "training_curves.png")}
    paths["geneval"] = plots.geneval_bars({m: r["geneval"] for m, r in ctx["final"].items()}, fig / "geneval.png")
    grids = {m: np.load(ev / f"grid_{m}.npz")["images"] for m in ctx["final"]}
    paths["grid"] = plots.sample_grid(grids, ctx["grid_prompts"], cfg.grid_seeds, fig / "samples.png")
    ctrl_imgs = np.load(ev / "control.npz")["images"]
    paths["control"] = plots.control_figure(ctx["control"], ctrl_imgs, ctx["control"]["prompts"], fig / "control.png")
    one_scale = {
        m: [r for r in res["rows"] if r["text_scale"] is None and not r.get("interval")]
        for m, res in ctx["sweep"].items()
    }
    paths["sweep"] = plots.guidance_figure(one_scale, list(cfg.rewards) + ["noise_sigma"], fig / "guidance_sweep.png")
    return {k: str(Path(v).relative_to(out)) for k, v in paths.items()}


def blocks(ctx: dict, figs: dict[str, str]) -> list[tuple]:
    """The report as a list of (kind, ...) blocks that to_markdown and to_html render."""
    return [
        *_intro(ctx),
        *_checks(ctx),
        *_rewards(ctx, figs),
        *_samples_and_control(ctx, figs),
        *_guidance(ctx, figs),
        *_timings(ctx),
        ("h2", "Settings"),
        ("pre", json.dumps(ctx["cfg"].to_dict(), indent=1)),
    ]


def _timing_sentence(ctx: dict) -> str:
    reused = [t for t in ctx["timings"] if t["skipped"]]
    timing = f"This invocation took {ctx['total_s'] / 60:.1f} min"
    if reused:
        timing += (
            f" ({len(reused)} stage(s) reused from earlier runs, "
            f"{sum(t['seconds'] for t in reused) / 60:.1f} min when they ran)"
        )
    if any(t.get("parallel") for t in ctx["timings"]):
        timing += ", the two trainings at once, one process each"
    return timing


def _intro(ctx: dict) -> list[tuple]:
    cfg, mach = ctx["cfg"], ctx["machine"]
    g_own = {mod: ev.guidance_label(r["best"]) for mod, r in ctx["sweep"].items()}
    text = (
        f"Two {cfg.model_preset} denoisers ({ctx['train']['miro'].get('params', 0):,} parameters) trained for "
        f"{cfg.steps} steps of {cfg.batch_size} images on {cfg.num_images} ShapesWorld ({cfg.shapes_preset}) "
        f"images: a baseline (text only) and MIRO (text + one token per reward: {', '.join(cfg.rewards)}). "
        f"Everything else is identical. Samples: {cfg.sample_steps} Euler steps, each model at its own "
        f"default guidance, chosen on held-out prompts (baseline {g_own.get('baseline')}, MIRO "
        f"{g_own.get('miro')}; see the guidance sweep); MIRO at high targets (s+ = all 1, s- = all 0). "
        f"{_timing_sentence(ctx)}, on "
        f"{mach['cpus']} CPU core(s), {mach['torch_threads']} torch threads, load average "
        f"{mach['load_start'][0]:.1f} at start and {mach['load_end'][0]:.1f} at the end."
    )
    return [("h1", "rewardflow demo: MIRO vs baseline on ShapesWorld"), ("p", text)]


def _checks(ctx: dict) -> list[tuple]:
    """Every comparison the demo makes, passing or not, at the own and at the shared guidance."""
    final, ctrl, cfg = ctx["final"], ctx["control"], ctx["cfg"]
    rb, rm = final["baseline"]["rewards"], final["miro"]["rewards"]
    noise_ratio = rm["noise_sigma"] / rb["noise_sigma"] if rb["noise_sigma"] else float("nan")
    key = ctrl["reward"]
    checks = [
        ("MIRO estimated noise <= 0.3x baseline", f"{noise_ratio:.3g}x", noise_ratio <= 0.3),
        *comparisons(final),
        (
            f"control figure moves ({key}, Spearman over {len(ctrl['levels'])} levels >= 0.9)",
            f"{ctrl['spearman']:.2f}, range {_f(ctrl['rows'][0]['rewards'][key])} -> "
            f"{_f(ctrl['rows'][-1]['rewards'][key])}",
            spearman_passes(ctrl["spearman"]),
        ),
    ]
    head = ["check", "measured", "result"]
    out: list[tuple] = [
        ("h2", "Checks"),
        ("table", head, [[c, v, "PASS" if ok else "FAIL"] for c, v, ok in checks]),
        (
            "p",
            "Differences are MIRO - baseline over the same prompts and seeds, +- the standard error of the "
            "paired difference. MIRO is 'level' on alignment when it is at most one standard error behind.",
        ),
    ]
    shared = ctx.get("final_shared") or {}
    if shared:
        rows = [[c, v, "PASS" if ok else "FAIL"] for c, v, ok in comparisons(shared)]
        out += [("h3", f"The same comparisons at one shared w = {cfg.guidance:g}"), ("table", head, rows)]
    return out


def _rewards(ctx: dict, figs: dict[str, str]) -> list[tuple]:
    """Rewards at equal steps, training curves and the GenEval-style table."""
    cfg, b, m = ctx["cfg"], ctx["final"]["baseline"], ctx["final"]["miro"]
    rb, rm, gb, gm = b["rewards"], m["rewards"], b["geneval"], m["geneval"]
    rows = [[k, _f(rb[k]), _f(rm[k]), _ratio(rm[k], rb[k])] for k in rb]
    rows += [["GenEval-style overall", _f(gb["overall"]), _f(gm["overall"]), _ratio(gm["overall"], gb["overall"])]]
    data_means = ", ".join(f"{k} {_f(v['mean'])}" for k, v in ctx["bins"].get("data_rewards", {}).items())
    per_cat = [
        [c, str(gb["counts"][c]), _f(gb["per_category"][c]), _f(gm["per_category"][c])] for c in gb["per_category"]
    ]
    return [
        ("h2", "Rewards at equal steps (GenEval-style prompt set, same prompts and seeds)"),
        ("table", ["metric", "baseline", "MIRO", "MIRO / baseline"], rows),
        (
            "p",
            "noise_sigma is the robust noise estimate behind `cleanliness` (uint8 units; lower is better). "
            "Training-data reward means for reference: " + data_means + ".",
        ),
        ("h2", "Training curves"),
        (
            "img",
            figs["curves"],
            f"Every reward, the noise estimate and GenEval-style overall of the EMA model, "
            f"{cfg.eval_prompts} fixed prompts and seeds, {cfg.eval_steps} sampling steps.",
        ),
        ("h2", "GenEval-style accuracy per category"),
        (
            "table",
            ["category", "n", "baseline", "MIRO"],
            per_cat + [["overall", "", _f(gb["overall"]), _f(gm["overall"])]],
        ),
        (
            "img",
            figs["geneval"],
            "Strict: an image counts only if every claim of its prompt holds "
            "(the evaluator's detector is separate code from the training rewards).",
        ),
    ]


def _samples_and_control(ctx: dict, figs: dict[str, str]) -> list[tuple]:
    cfg, ctrl = ctx["cfg"], ctx["control"]
    rows = [
        [_f(r["level"], 2), *[_f(v) for v in r["rewards"].values()], _f(r["geneval"]["overall"])] for r in ctrl["rows"]
    ]
    return [
        ("h2", "Samples (same prompts and seeds)"),
        (
            "img",
            figs["grid"],
            f"{len(ctx['grid_prompts'])} prompts x {cfg.grid_seeds} seeds; left block baseline, "
            "right block MIRO at high targets.",
        ),
        ("h2", f"Control: dialling {ctrl['reward']}"),
        (
            "img",
            figs["control"],
            f"MIRO, s+ for {ctrl['reward']} set to each level, the other rewards at 1; "
            f"{len(ctrl['prompts'])} images per level, the same prompts and seeds at every level.",
        ),
        ("table", ["target", *[k for k in ctrl["rows"][0]["rewards"]], "GenEval overall"], rows),
    ]


def _guidance(ctx: dict, figs: dict[str, str]) -> list[tuple]:
    cfg, sweep = ctx["cfg"], ctx["sweep"]
    rows = [
        [
            mod,
            ev.guidance_label(_row_guidance(r)),
            _f(r["objective"]),
            _f(r["geneval"]["overall"]),
            *[_f(r["rewards"][k]) for k in cfg.rewards],
            _f(r["rewards"]["noise_sigma"]),
            "yes" if _is_best(r, res["best"]) else "",
        ]
        for mod, res in sweep.items()
        for r in res["rows"]
    ]
    head = ["model", "guidance", "objective", "GenEval overall", *cfg.rewards, "noise_sigma", "chosen"]
    return [
        ("h2", "Guidance sweep (held-out prompts): each model's default"),
        (
            "img",
            figs["sweep"],
            "Both models over one CFG scale w on text and rewards together (w = 0: no "
            "guidance); same held-out prompts and seeds.",
        ),
        ("table", head, rows),
        (
            "p",
            f"Objective: {ev.OBJECTIVE}. The chosen setting is saved as the "
            "model folder's default guidance (pipeline_config.json), so `rewardflow sample` uses it too. "
            "w_text / w_reward: three-branch guidance, v(null, s-) + w_text (v(c, s-) - v(null, s-)) + "
            "w_reward (v(c, s+) - v(c, s-)); t in [lo, hi]: guidance only at those times (t = 1 is noise), the "
            "plain conditional velocity elsewhere.",
        ),
    ]


def _timings(ctx: dict) -> list[tuple]:
    def note(t: dict) -> str:
        return "from an earlier run" if t["skipped"] else "at once with the other training" if t.get("parallel") else ""

    stages = [[t["title"], f"{t['seconds']:.1f}", note(t)] for t in ctx["timings"]]
    stages += [["total (this invocation)", f"{ctx['total_s']:.1f}", ""]]
    models = [
        [mod, _f(t.get("wall_s"), 1), _f(t.get("train_images_per_s"), 1), str(t.get("images_seen"))]
        for mod, t in ctx["train"].items()
    ]
    return [
        ("h2", "Wall time per stage"),
        ("table", ["stage", "seconds", "note"], stages),
        ("table", ["model", "train wall s", "median train img/s", "images seen"], models),
    ]


def to_markdown(bl: list[tuple]) -> str:
    lines = []
    for kind, *rest in bl:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + rest[0], ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "table":
            head, rows = rest
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] + [""]
        elif kind == "img":
            lines += [f"![{rest[1]}]({rest[0]})", "", f"*{rest[1]}*", ""]
        elif kind == "pre":
            lines += ["```json", rest[0], "```", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}"
    "figcaption{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.6em;font-size:.8em}"
    ".PASS{color:#080;font-weight:bold}.FAIL{color:#b00;font-weight:bold}"
)


def _td(text: str) -> str:
    cls = f" class='{text}'" if text in ("PASS", "FAIL") else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def to_html(bl: list[tuple]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rewardflow demo</title>"
        f"<style>{_CSS}</style></head><body>"
    ]
    for kind, *rest in bl:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(rest[0])}</p>")
        elif kind == "table":
            head, rows = rest
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(_td(str(c)) for c in r) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            parts.append(
                f"<figure><img src='{e(rest[0])}' alt='{e(rest[1])}'><figcaption>{e(rest[1])}</figcaption></figure>"
            )
        elif kind == "pre":
            parts.append(f"<details><summary>settings</summary><pre>{e(rest[0])}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(ctx: dict) -> dict[str, Path]:
    from rewardflow.utils.atomic import atomic_write_bytes

    out = Path(ctx["out"])
    bl = blocks(ctx, build_figures(ctx))
    md, page = out / "report.md", out / "report.html"
    atomic_write_bytes(md, to_markdown(bl).encode("utf-8"))
    atomic_write_bytes(page, to_html(bl).encode("utf-8"))
    summary = {
        k: ctx[k] for k in ("final", "final_shared", "control", "sweep", "train", "timings", "total_s", "machine")
    }
    atomic_write_bytes(out / "results.json", json.dumps(summary, indent=1, default=str).encode("utf-8"))
    return {"html": page, "md": md}
