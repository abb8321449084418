"""Figures of the paper experiment (matplotlib, Agg). Each function writes one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rewardflow.demo.plots import geneval_bars as _demo_geneval_bars  # noqa: E402

COLORS = {"baseline": "#7f7f7f", "miro": "#d62728", "miro_tuned": "#e377c2"}
_CYCLE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def color(model: str, i: int = 0) -> str:
    return COLORS.get(model, _CYCLE[i % len(_CYCLE)])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def speedup_curves(
    curves: dict[str, list[dict]], metrics: Sequence[tuple[str, bool]], targets: dict[str, float], path: Path
) -> Path:
    """Baseline vs MIRO (and tuned-target MIRO, if any) eval curves per metric, with the baseline's
    final score as a dashed line (where MIRO's curve first crosses it gives the speedup)."""
    n, ncol = len(metrics), 3
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax, (key, higher) in zip(axes.flat, metrics):
        for model in ("baseline", "miro", "miro_tuned"):
            pts = [(r["step"], r[key]) for r in curves.get(model, []) if isinstance(r.get(key), (int, float))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, "o-", ms=3, color=color(model), label=model)
        if key in targets:
            ax.axhline(targets[key], ls="--", lw=1, color=COLORS["baseline"])
        ax.set_title(f"{key.split('/', 1)[-1]} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def geneval_bars(results: dict[str, dict], path: Path) -> Path:
    # The demo's chart, with a palette for more than two models.
    return _demo_geneval_bars(results, path, color_of=color, figsize=(10, 3.4), legend_kw={"fontsize": 7, "ncol": 2})


def radar(
    scores: dict[str, dict[str, float]], keys: Sequence[str], path: Path, lower_better: Sequence[str] = ("noise_sigma",)
) -> Path:
    """scores: {model: {reward: mean}}. Each axis is min-max scaled over the models (raw reward
    scales differ by orders of magnitude), so the plot shows ranking and balance, not absolutes.
    Outward is better on every axis: lower-is-better metrics are flipped."""
    keys = list(keys)
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False).tolist()
    lo = {k: min(s[k] for s in scores.values()) for k in keys}
    hi = {k: max(s[k] for s in scores.values()) for k in keys}
    fig = plt.figure(figsize=(5.2, 5.2))
    ax = fig.add_subplot(111, polar=True)
    for i, (model, s) in enumerate(scores.items()):
        frac = [(s[k] - lo[k]) / (hi[k] - lo[k]) if hi[k] > lo[k] else 0.5 for k in keys]
        v = [0.1 + 0.9 * (1 - f if k in lower_better else f) for k, f in zip(keys, frac)]
        ax.plot(
            angles + angles[:1],
            v + v[:1],
            "o-",
            ms=3,
            lw=2 if model in COLORS else 1.2,
            color=color(model, i),
            label=model,
        )
    ax.set_xticks(angles, [f"{k} (flipped)" if k in lower_better else k for k in keys], fontsize=8)
    ax.set_yticklabels([])
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=7)
    ax.set_title("reward radar (per-axis min-max over models; outward is better)", fontsize=9)
    return _save(fig, path)


def tts_curves(tts: dict[str, dict[str, list[float]]], keys: Sequence[str], path: Path) -> Path:
    """Best-of-N mean reward vs N (log2 axis), baseline vs MIRO, one panel per selecting reward."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for model, curves in tts.items():
            y = curves[key]
            ax.plot(range(1, len(y) + 1), y, "o-", ms=2.5, color=color(model), label=model)
        ax.set_xscale("log", base=2)
        ax.set_title(f"best-of-N by {key}", fontsize=9)
        ax.set_xlabel("N")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def target_sweep(rows: list[dict], reward: str, path: Path) -> Path:
    """GenEval-style overall and the dialled reward vs its target (MIRO)."""
    x = [r["level"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.plot(x, [r["geneval"]["overall"] for r in rows], "o-", color=COLORS["miro"], label="GenEval-style overall")
    ax.set_xlabel(f"{reward} target (others 1)")
    ax.set_ylabel("GenEval-style overall", color=COLORS["miro"])
    ax2 = ax.twinx()
    ax2.plot(x, [r["rewards"][reward] for r in rows], "s--", color="#1f77b4", label=reward)
    ax2.set_ylabel(f"measured {reward}", color="#1f77b4")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
