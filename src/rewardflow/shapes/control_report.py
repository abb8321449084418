"""The report of `eval control` (rewardflow.shapes.control): results as JSON and Markdown, one
Markdown section per measurement."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rewardflow.sampling import targets as T


@dataclass
class ControlReport:
    model: str
    settings: dict
    keys: list[str]
    results: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    command: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        s, r = self.settings, self.results
        wt = s.get("text_guidance")
        mode = "" if wt is None else f" (reward scale; three branches, text scale w_t = {wt:g})"
        out = [
            f"Model: `{self.model}`; {s['steps']} {s['solver']} steps, w = {s['guidance']:g}{mode} unless swept, "
            f"seed {s['seed']}." + (f" Command: `{self.command}`" if self.command else "")
        ]
        sections = {
            "control": _control,
            "isolate": _isolate,
            "isolate_cross": _isolate_cross,
            "guidance": _guidance,
            "seeds": _seeds,
            "best_of_n": _best_of_n,
        }
        for name, section in sections.items():
            if name in r:
                out += section(s, r[name], self.keys)
        if self.timings_s:
            out += ["", "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings_s.items()) + "."]
        return "\n".join(out)


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _control(s: dict, res: dict, keys: list[str]) -> list[str]:
    lv = s["levels"]
    fx = "".join(f", {k} {T.format_target(v)}" for k, v in s.get("fixed") or ())
    out = [
        "",
        f"**Control** ({s['images_per_level']} images per level; s+ of one reward swept, others "
        f"{s.get('others', 1.0):g}{fx}, s- = 0; mean measured reward +- s.e.)",
        "",
        "| reward | " + " | ".join(f"{v:g}" for v in lv) + " | Spearman | >= 0.9 |",
        "|---|" + "---|" * (len(lv) + 2),
    ]
    for k, row in res.items():
        cells = " | ".join(f"{m:.3f} +- {e:.3f}" for m, e in zip(row["means"], row["sems"]))
        out.append(f"| {k} | {cells} | {row['spearman']:.2f} | {_ok(row['pass'])} |")
    return out


def _isolate(s: dict, res: dict, keys: list[str]) -> list[str]:
    anc = ", ".join(f"{k} {T.format_target(v)}" for k, v in s.get("fixed") or ())
    base = f"all 1 but {anc}" if anc else "all 1"
    out = [
        "",
        "**isolate(k) vs plain sampling and high quality** (same prompts and seeds; paired "
        f"difference +- s.e.; anchor: s+ = {base}, the anchored rewards equal in s- too except in "
        f"high quality (s- = 0); text only = s+ = s- = anchor, the text contrast without any reward "
        "contrast; plain = s+ = anchor at w = 0, no guidance)",
        "",
        "| reward | plain | text only | high quality | isolate(k) | isolate - high quality | raised | "
        "isolate - text only | isolate - plain | raised |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, row in res.items():
        out.append(
            f"| {k} | {row['plain']:.3f} | {row['text_only']:.3f} | "
            f"{row['high_quality']:.3f} | {row['isolate']:.3f} | "
            f"{row['delta']:+.3f} +- {row['delta_sem']:.3f} | {_ok(row['pass'])} | "
            f"{row['over_text_only']:+.3f} +- {row.get('over_text_only_sem', 0.0):.3f} | "
            f"{row['over_plain']:+.3f} +- {row['over_plain_sem']:.3f} | "
            f"{_ok(row.get('pass_over_plain', row['over_plain'] > 0))} |"
        )
    return out


def _isolate_cross(s: dict, res: dict, keys: list[str]) -> list[str]:
    out = [
        "",
        "**Every reward under each isolate(j)** (mean; the same images as above)",
        "",
        "| condition | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    return out + [f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |" for name, row in res.items()]


def _guidance(s: dict, g: dict, keys: list[str]) -> list[str]:
    cats = list(g["rows"][0]["per_category"]) if g["rows"] else []
    st = s.get("sweep_targets") or ()
    tgt = (
        ("s+ " + ", ".join(f"{k} = {T.format_target(v)}" for k, v in st) + ", others 1, s- = 0")
        if st
        else "high-quality targets"
    )
    p0 = g["rows"][0]["overall"] if g["rows"] else 0.0
    se = (p0 * (1 - p0) / max(1, g["images"])) ** 0.5  # binomial s.e. of one overall, for scale
    out = [
        "",
        f"**Guidance sweep** ({g['images']} GenEval-style prompts, {tgt}; s.e. of an overall "
        f"~{se:.3f}; CFG at w = {s['guidance']:g} beats w = 0: {_ok(g['pass'])})",
        "",
        "| w | overall | " + " | ".join(cats) + " | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * (len(cats) + len(keys)),
    ]
    for row in g["rows"]:
        out.append(
            f"| {row['w']:g} | **{row['overall']:.3f}** | "
            + " | ".join(f"{row['per_category'][c]:.2f}" for c in cats)
            + " | "
            + " | ".join(f"{row['rewards'][k]:.3f}" for k in keys)
            + " |"
        )
    return out


def _seeds(s: dict, d: dict, keys: list[str]) -> list[str]:
    return [
        "",
        f"**Seeds**: {d['batch']} (prompt, seed) pairs sampled in one batch of {d['batch']} and "
        f"each alone: max |diff| = {d['max_abs_diff']:.2e} (images in [-1, 1]); "
        f"{d['uint8_identical']}/{d['batch']} identical as uint8 images (default batched network); "
        f"with `batch_invariant=True` {d.get('invariant_identical', 0)}/{d['batch']} bit-identical; "
        f"{_ok(d['pass'])}",
    ]


def _best_of_n(s: dict, rows: dict, keys: list[str]) -> list[str]:
    ns = next(iter(rows.values()))["ns"] if rows else []
    out = [
        "",
        f"**Best-of-N** ({s['bon_prompts']} prompts, high quality; mean selected score, each reward its own selector)",
        "",
        "| selector | " + " | ".join(f"N={n}" for n in ns) + " | non-decreasing |",
        "|---|" + "---|" * (len(ns) + 1),
    ]
    return out + [
        f"| {k} | " + " | ".join(f"{m:.3f}" for m in row["means"]) + f" | {_ok(row['pass'])} |"
        for k, row in rows.items()
    ]
