"""The demo's figures (matplotlib, Agg backend: no display needed). Each function writes one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"baseline": "#7f7f7f", "miro": "#d62728"}
LABELS = {"noise_sigma": "estimated noise σ (uint8, lower is better)", "geneval/overall": "GenEval-style overall"}


def _label(key: str) -> str:
    key = key.replace("reward/", "")
    return LABELS.get(key, key)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(curves: dict[str, list[dict]], keys: Sequence[str], path: Path) -> Path:
    """curves: {model: [eval records from log.jsonl]}; one panel per metric key."""
    n = len(keys)
    ncol = 3
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.1 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for model, recs in curves.items():
            pts = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, "o-", ms=3, color=COLORS.get(model), label=model)
        ax.set_title(_label(key), fontsize=10)
        if key.endswith("noise_sigma"):
            ax.set_yscale("log")  # step 0 is pure noise (~95): a linear axis hides the end of the run
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle("Training curves: EMA model sampled every few steps (same prompts and seeds)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _upscale(img: np.ndarray, k: int) -> np.ndarray:
    return img.repeat(k, axis=0).repeat(k, axis=1)


def sample_grid(images: dict[str, np.ndarray], prompts: Sequence[str], seeds: int, path: Path) -> Path:
    """images: {model: (P * seeds, H, W, 3)} in prompt-major order. Rows are prompts; each model
    gets a block of `seeds` columns, the same seeds in both blocks."""
    models = list(images)
    p = len(prompts)
    fig, axes = plt.subplots(p, len(models), figsize=(1.05 * seeds * len(models) + 2.6, 1.1 * p + 0.6), squeeze=False)
    for j, m in enumerate(models):
        arr = images[m].reshape(p, seeds, *images[m].shape[1:])
        for i in range(p):
            strip = np.concatenate(
                [np.pad(_upscale(a, 3), ((2, 2), (2, 2), (0, 0)), constant_values=255) for a in arr[i]], axis=1
            )
            ax = axes[i, j]
            ax.imshow(strip)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(m, fontsize=11, color=COLORS.get(m, "k"))
            if j == 0:
                ax.set_ylabel(prompts[i].replace("a photo of ", ""), rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def control_figure(result: dict, images: np.ndarray, prompts: Sequence[str], path: Path, n_show: int = 6) -> Path:
    """Left: measured mean of every reward vs the dialled target of one reward. Right: the same
    prompts and seeds at each level."""
    key, levels, rows = result["reward"], result["levels"], result["rows"]
    fig = plt.figure(figsize=(11, 4.2))
    ax = fig.add_axes([0.06, 0.14, 0.36, 0.74])
    for name in rows[0]["rewards"]:
        if name == "noise_sigma":
            continue
        y = [r["rewards"][name] for r in rows]
        e = [r["rewards_sem"][name] for r in rows]
        bold = name == key
        ax.errorbar(
            levels,
            y,
            yerr=e,
            marker="o",
            ms=5 if bold else 3,
            lw=2.5 if bold else 1,
            alpha=1.0 if bold else 0.55,
            capsize=3,
            label=name + (" (dialled)" if bold else ""),
        )
    ax.set_xlabel(f"target for {key} (others fixed at 1)")
    ax.set_ylabel("measured reward (mean ± s.e.)")
    ax.set_title(f"Control: {key}, Spearman {result['spearman']:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    k = min(n_show, images.shape[1])

    def cell(img):
        return np.pad(_upscale(img, 2), ((2, 2), (2, 2), (0, 0)), constant_values=255)

    grid = np.concatenate(
        [np.concatenate([cell(images[li, i]) for li in range(len(levels))], axis=1) for i in range(k)], axis=0
    )
    ax2 = fig.add_axes([0.47, 0.05, 0.52, 0.88])
    ax2.imshow(grid)
    h = images.shape[2] * 2 + 4
    ax2.set_xticks([h * (li + 0.5) for li in range(len(levels))], [f"{v:.2f}" for v in levels])
    ax2.set_yticks([h * (i + 0.5) for i in range(k)], [p.replace("a photo of ", "") for p in prompts[:k]], fontsize=7)
    ax2.set_xlabel(f"{key} target")
    return _save(fig, path)


def guidance_figure(sweep: dict[str, list[dict]], keys: Sequence[str], path: Path) -> Path:
    """One panel per metric vs the CFG scale, both models."""
    panels = ["geneval/overall", *keys]
    ncol = 3
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.0 * nrow), squeeze=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax, key in zip(axes.flat, panels):
        for model, rows in sweep.items():
            x = [r["scale"] for r in rows]
            y = [r["geneval"]["overall"] if key == "geneval/overall" else r["rewards"][key] for r in rows]
            ax.plot(x, y, "o-", ms=4, color=COLORS.get(model), label=model)
        ax.set_title(_label(key), fontsize=9)
        ax.set_xlabel("guidance scale w")
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle("Guidance-scale sweep (same prompts and seeds; w = 0 is no guidance)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def geneval_bars(
    results: dict[str, dict], path: Path, color_of=None, figsize=(9, 3.2), legend_kw: dict | None = None
) -> Path:
    """Per-category GenEval-style accuracy, grouped bars per model.

    color_of(model, i) picks a bar colour (default: the demo's two-model palette)."""
    color_of = color_of or (lambda model, i: COLORS.get(model))
    cats = list(next(iter(results.values()))["per_category"]) + ["overall"]
    x = np.arange(len(cats))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=figsize)
    for i, (model, r) in enumerate(results.items()):
        vals = [r["per_category"][c] for c in cats[:-1]] + [r["overall"]]
        ax.bar(x + (i - (len(results) - 1) / 2) * width, vals, width, color=color_of(model, i), label=model)
    ax.set_xticks(x, [c.replace("_", " ") for c in cats], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (strict)")
    ax.legend(**(legend_kw or {}))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
