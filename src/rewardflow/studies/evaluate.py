"""What the demo measures on sampled images: rewards, estimated noise, GenEval-style accuracy,
per-reward control and the guidance sweep. Every comparison uses the same prompts and seeds
for both models, so the two columns differ only by the reward conditioning."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardflow.shapes import CATEGORIES, load_shapes_prompts
from rewardflow.shapes.control import spearman
from rewardflow.shapes.geneval import evaluate as geneval_evaluate
from rewardflow.training.callbacks import Callback, save_grid


def prompt_entries(per_category: int, max_count: int | None = 2, offset: int = 0) -> list[dict]:
    """`per_category` GenEval-style entries of each category, in category order.

    The shipped set is already shuffled within each category, so the first entries are a fair
    sample; `offset` takes a disjoint slice (training curves vs final table). Prompts asking for
    more objects than the world shows (easy: 2) are left out: no model could satisfy them.
    """
    entries = load_shapes_prompts(max_count=max_count)
    out = []
    for cat in CATEGORIES:
        pool = [e for e in entries if e["tag"] == cat]
        out += [pool[(offset + i) % len(pool)] for i in range(per_category)]
    return out


def curve_entries(cfg) -> list[dict]:
    """The prompts of the training curves: `eval_prompts` entries, after the final table's."""
    return prompt_entries(max(1, cfg.eval_prompts // 6), offset=cfg.geneval_per_category)


def reward_scores(images: np.ndarray, prompts: Sequence[str], rewards: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-image scores of each reward plus `noise_sigma` (the robust noise std in uint8 units
    behind `cleanliness`, the direct "estimated noise" figure)."""
    from rewardflow.rewards import get_reward
    from rewardflow.shapes.rewards.quality import noise_sigma, to_float_bchw

    out = {name: np.asarray(get_reward(name).score(images, list(prompts)), dtype=np.float64) for name in rewards}
    out["noise_sigma"] = noise_sigma(to_float_bchw(images)).double().numpy()
    return out


def summarize(images: np.ndarray, entries: Sequence[dict], rewards: Sequence[str]) -> dict[str, Any]:
    """Mean of every reward and the GenEval-style result of `images[i]` against `entries[i]`."""
    prompts = [e["prompt"] for e in entries]
    scores = reward_scores(images, prompts, rewards)
    ge = geneval_evaluate(images, list(entries))
    correct = np.array([float(r["correct"]) for r in ge.per_image])
    return {
        "rewards": {k: float(v.mean()) for k, v in scores.items()},
        "rewards_sem": {k: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0 for k, v in scores.items()},
        "geneval": ge.to_dict(),
        # per image, for paired differences between models sampled with the same prompts and seeds
        "per_image": {"geneval_correct": correct.tolist(), **{k: v.tolist() for k, v in scores.items()}},
    }


def paired_difference(a: Mapping, b: Mapping, key: str) -> tuple[float, float]:
    """Mean of a - b over images and its standard error, from two `summarize` results of the
    same prompts and seeds (`key`: a reward, or "geneval_correct" for GenEval-style overall)."""
    d = np.asarray(a["per_image"][key]) - np.asarray(b["per_image"][key])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")


GUIDANCE_KEYS = ("guidance_scale", "text_guidance_scale", "guidance_interval")
OBJECTIVE = "GenEval-style overall + mean shapes_alignment"


def guidance_kwargs(guidance: float | Mapping | None) -> dict[str, Any]:
    """A CFG setting as pipeline keywords: a number is one scale on text and rewards together
    (two branches); a mapping gives `guidance_scale` and `text_guidance_scale` (three branches
    when the latter is set); None keeps the pipeline's saved default."""
    if guidance is None:
        return {}
    if isinstance(guidance, Mapping):
        return {k: guidance[k] for k in GUIDANCE_KEYS if k in guidance}
    return {"guidance_scale": float(guidance), "text_guidance_scale": None, "guidance_interval": None}


def guidance_label(g: Mapping) -> str:
    wt, iv = g.get("text_guidance_scale"), g.get("guidance_interval")
    text = f"w = {g['guidance_scale']:g}" if wt is None else f"w_text = {wt:g}, w_reward = {g['guidance_scale']:g}"
    return text if not iv else text + f", t in [{iv[0]:g}, {iv[1]:g}]"


def sample(
    pipe,
    prompts: Sequence[str],
    seed: int,
    guidance: float | Mapping | None,
    steps: int,
    batch: int,
    targets: dict | None = None,
    desc: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """uint8 (B, H, W, 3); image i has seed `seed + i`. A baseline takes no reward targets; a
    MIRO model given none samples at the paper's default s+ = all 1, s- = all 0. `guidance`:
    see `guidance_kwargs`."""
    kw = {"reward_targets": targets} if targets else {}
    out = pipe(
        list(prompts),
        seed=seed,
        num_inference_steps=steps,
        output_type="np",
        batch_size=batch,
        progress=False,
        **guidance_kwargs(guidance),
        **kw,
    )
    if progress and desc:
        print(f"    {desc}: {len(prompts)} images", flush=True)
    return out.images


class DemoEvalCallback(Callback):
    """One point of the training curves: every reward, the noise estimate and GenEval-style
    accuracy of images sampled from the EMA model with fixed prompts and seeds.

    `variants` ({name: reward targets}) evaluates a reward-conditioned model once more per named
    target vector, on the same prompts and seeds, logged under `<name>/reward/...` (ignored for a
    baseline model).

    `weights_dir`: also keep the EMA weights of every evaluated step there
    (`step_XXXXXXX.safetensors`), so the curve can be sampled again later at a guidance chosen
    only after training (`curves_from_snapshots`)."""

    kind = "eval"

    def __init__(
        self,
        text_encoder,
        entries: Sequence[dict],
        rewards: Sequence[str],
        every: int,
        steps: int,
        guidance: float,
        seed: int,
        batch: int,
        variants: dict[str, dict] | None = None,
        weights_dir: str | Path | None = None,
    ):
        self.text_encoder, self.entries, self.rewards, self.every = text_encoder, list(entries), list(rewards), every
        self.steps, self.guidance, self.seed, self.batch = steps, guidance, seed, batch
        self.variants = dict(variants or {})
        self.weights_dir = None if weights_dir is None else Path(weights_dir)

    def __call__(self, trainer, step: int) -> dict[str, Any]:
        from rewardflow.sampling.pipeline import RewardFlowPipeline

        pipe = RewardFlowPipeline(trainer.ema.module, self.text_encoder)
        if self.weights_dir is not None:
            save_snapshot(trainer.ema.module, self.weights_dir / f"step_{step:07d}.safetensors")
        prompts = [e["prompt"] for e in self.entries]
        images = sample(pipe, prompts, self.seed, self.guidance, self.steps, self.batch)
        ncol = len(self.entries) // len(CATEGORIES) or 1
        save_grid(images, Path(trainer.config.out_dir) / "samples" / f"step_{step:07d}.png", ncol=ncol)
        metrics = _metrics(summarize(images, self.entries, self.rewards))
        for name, targets in self.variants.items() if pipe.reward_keys else ():
            imgs = sample(pipe, prompts, self.seed, self.guidance, self.steps, self.batch, targets=targets)
            metrics.update({f"{name}/{k}": v for k, v in _metrics(summarize(imgs, self.entries, self.rewards)).items()})
        return metrics


def save_snapshot(model, path: Path) -> None:
    from rewardflow.models.io import strip_compile_prefix, unwrap_model
    from rewardflow.utils.tensorfile import save_safetensors

    sd = strip_compile_prefix(unwrap_model(model).state_dict())
    save_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}, path)


def curves_from_snapshots(
    pipe,
    weights_dir: str | Path,
    entries: Sequence[dict],
    rewards: Sequence[str],
    steps: int,
    seed: int,
    batch: int,
    guidance: float | Mapping | None = None,
) -> list[dict]:
    """The training curve again, from the weights `DemoEvalCallback` kept: each snapshot loaded
    into `pipe`'s model in turn (which is left holding the last one) and sampled with the same
    prompts and seeds, at `guidance` (None: the pipeline's saved default). One row per step,
    keyed as the logged curves are."""
    from rewardflow.models.io import check_state_dict, read_weights

    files = sorted(Path(weights_dir).glob("step_*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no step_*.safetensors snapshots in {weights_dir}: train with weights_dir set")
    rows = []
    for f in files:
        sd = read_weights(f)
        check_state_dict(pipe.model, sd, str(f))
        pipe.model.load_state_dict(sd)
        images = sample(pipe, [e["prompt"] for e in entries], seed, guidance, steps, batch)
        rows.append({"step": int(f.stem.split("_")[1]), **_metrics(summarize(images, entries, rewards))})
    return rows


def _metrics(s: dict) -> dict[str, float]:
    out = {f"reward/{k}": v for k, v in s["rewards"].items()}
    out["geneval/overall"] = s["geneval"]["overall"]
    out.update({f"geneval/{k}": v for k, v in s["geneval"]["per_category"].items()})
    return out


def control_sweep(
    pipe,
    entries: Sequence[dict],
    key: str,
    levels: Sequence[float],
    rewards: Sequence[str],
    guidance: float,
    steps: int,
    seed: int,
    batch: int,
) -> tuple[dict, np.ndarray]:
    """Dial reward `key`'s positive target over `levels`, the other targets fixed at 1 (s- = 0).

    Returns per-level means (and standard errors) of every reward, the Spearman correlation of
    the level with the measured mean of `key`, and the images (levels, B, H, W, 3).
    """
    prompts = [e["prompt"] for e in entries]
    rows, stacks = [], []
    for level in levels:
        images = sample(
            pipe, prompts, seed, guidance, steps, batch, targets={key: float(level)}, desc=f"{key} target {level:.2f}"
        )
        s = summarize(images, entries, rewards)
        rows.append({"level": float(level), **s})
        stacks.append(images)
    means = [r["rewards"][key] for r in rows]
    return {
        "reward": key,
        "levels": [float(v) for v in levels],
        "rows": rows,
        "spearman": spearman(list(levels), means),
    }, np.stack(stacks)


def guidance_grid(
    scales: Sequence[float],
    text_scales: Sequence[float] = (),
    reward_scales: Sequence[float] = (),
    intervals: Sequence[Sequence[float]] = (),
) -> list[dict]:
    """One scale on text and rewards together for every model, the nonzero ones again inside
    each guidance interval, plus (text, reward) pairs for a reward-conditioned model."""
    one = [{"guidance_scale": float(w), "text_guidance_scale": None, "guidance_interval": None} for w in scales]
    limited = [
        dict(g, guidance_interval=[float(v) for v in iv]) for iv in intervals for g in one if g["guidance_scale"] > 0
    ]
    return (
        one
        + limited
        + [
            {
                "guidance_scale": float(wr),
                "text_guidance_scale": float(wt),
                "guidance_interval": None,
                "three_branch": True,
            }
            for wt in text_scales
            for wr in reward_scales
        ]
    )


def selection_objective(summary: Mapping) -> float:
    """What a default guidance is chosen for: composition, GenEval-style overall plus the
    (less noisy, continuous) mean alignment reward."""
    return float(summary["geneval"]["overall"] + summary["rewards"]["shapes_alignment"])


def guidance_sweep(
    pipes: dict[str, Any],
    entries: Sequence[dict],
    grid: Sequence[dict],
    rewards: Sequence[str],
    steps: int,
    seed: int,
    batch: int,
) -> dict[str, dict]:
    """Every model over the grid on the same (held-out) prompts and seeds, and the setting with
    the best `selection_objective` per model (the first of equals, so the smaller scale):
    {model: {"rows": [{scale, text_scale, objective, rewards, geneval}], "best": {...}}}."""
    prompts = [e["prompt"] for e in entries]
    out: dict[str, dict] = {}
    for name, pipe in pipes.items():
        rows = []
        for g in grid:
            if g.get("three_branch") and not pipe.reward_keys:
                continue
            images = sample(pipe, prompts, seed, g, steps, batch, desc=f"{name} {guidance_label(g)}")
            s = summarize(images, entries, rewards)
            rows.append(
                {
                    "scale": g["guidance_scale"],
                    "text_scale": g["text_guidance_scale"],
                    "interval": g["guidance_interval"],
                    "objective": selection_objective(s),
                    **s,
                }
            )
        best = max(rows, key=lambda r: r["objective"])
        out[name] = {
            "rows": rows,
            "best": {
                "guidance_scale": best["scale"],
                "text_guidance_scale": best["text_scale"],
                "guidance_interval": best["interval"],
            },
        }
    return out


def save_default_guidance(model_dir: str | Path, result: Mapping, images: int, steps: int) -> None:
    """Make a model's `guidance_sweep` winner its pipeline folder's default guidance, with a record
    of how it was chosen (`guidance_choice`)."""
    from rewardflow.sampling.pipeline import CONFIG_NAME
    from rewardflow.utils.atomic import atomic_write_json

    path = Path(model_dir) / CONFIG_NAME
    cfg = json.loads(path.read_text(encoding="utf-8"))
    record = {"objective": OBJECTIVE, "images": images, "steps": steps, "candidates": len(result["rows"])}
    cfg.update({k: result["best"].get(k) for k in GUIDANCE_KEYS}, guidance_choice=record)
    atomic_write_json(path, cfg)


class PeriodicEval(DemoEvalCallback):
    """Fires every `eval_every` steps and at the last step (the trainer only knows multiples)."""

    def __init__(self, *args, period: int, last: int, **kw):
        super().__init__(*args, every=1, **kw)
        self.period, self.last = period, last

    def __call__(self, trainer, step):
        if step % self.period == 0 or step == self.last:
            return super().__call__(trainer, step)
        return None
