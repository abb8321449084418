"""Acceptance measurements of a reward-conditioned pipeline: does dialling a reward move it?

Five measurements, all on ShapesWorld GenEval-style prompts with fixed seeds:
(a) control: sweep the s+ target of one reward over levels (others at 1, s- = 0) and rank-correlate
    the level with the measured reward mean; (b) isolate(k) against high-quality guidance, against
    text-only guidance and against plain high-quality sampling (s+ = all 1, no guidance);
(c) guidance-scale sweep: GenEval-style overall and reward means per w; (d) seeds: an image is the
same whether sampled alone or inside a batch of 8; (e) best-of-N: mean selected score per N.

Every sampling request goes through one cache keyed by (prompts, seeds, targets, w), so shared
work (the level-1 control point IS high-quality sampling) is done once, and the progress bar's
total is known up front. Scores are the registered rewards (`get_reward(key)`), not the model's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from rewardflow.sampling import targets as T
from rewardflow.shapes import CATEGORIES, load_shapes_prompts

from .control_report import ControlReport

SECTIONS = ("control", "isolate", "guidance", "seeds", "best_of_n")


@dataclass
class ControlSettings:
    images_per_level: int = 64
    levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    others: float = 1.0  # s+ of the rewards not being swept in the control section
    fixed: tuple[tuple[str, float], ...] = ()  # exceptions to `others` (control); the anchor (isolate)
    steps: int = 50
    guidance: float = 7.0
    # None: the two-branch MIRO formula at `guidance`. A number: three branches, this text scale
    # and `guidance` as the reward scale (the reward contrast then uses the same text).
    text_guidance: float | None = None
    solver: str = "euler"
    scales: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 7.0)
    sweep_images: int = 96  # GenEval-style prompts per guidance scale (16 per category)
    sweep_targets: tuple[tuple[str, float], ...] = ()  # s+ of the guidance sweep; unnamed rewards 1 (s- = 0)
    bon_prompts: int = 32
    bon_ns: tuple[int, ...] = (1, 2, 4, 8, 16)
    max_count: int | None = 2  # the demo's "easy" world shows at most 2 objects of a class
    seed: int = 0
    batch_size: int = 64
    sections: tuple[str, ...] = SECTIONS

    @classmethod
    def quick(cls, **kw) -> ControlSettings:
        """Toy counts for smoke tests: the mechanics, not the figures."""
        base = dict(images_per_level=6, steps=4, scales=(0.0, 3.0), sweep_images=6, bon_prompts=3, bon_ns=(1, 2, 4))
        return cls(**{**base, **kw})


def balanced_entries(n: int, max_count: int | None = 2, offset: int = 0) -> list[dict]:
    """n prompt entries, round-robin over the six categories (the shipped set is pre-shuffled),
    each category's list entered at `offset` (disjoint slices for different measurements)."""
    pool = load_shapes_prompts(max_count=max_count)
    by_cat = {c: [e for e in pool if e["tag"] == c] for c in CATEGORIES}
    cats = [c for c in CATEGORIES if by_cat[c]]
    pick = ((i, cats[i % len(cats)]) for i in range(n))
    return [by_cat[c][(offset + i // len(cats)) % len(by_cat[c])] for i, c in pick]


@dataclass(frozen=True)
class Job:
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    positive: tuple[tuple[str, float], ...]
    negative: tuple[tuple[str, float], ...]
    w: float
    wt: float | None = None  # text scale of three-branch guidance; None = two branches


class Sampler:
    """Cached sampling + scoring: job -> (uint8 images (B, H, W, 3), {reward: (B,) float64})."""

    def __init__(self, pipe, settings: ControlSettings, keys, progress: bool = True):
        self.pipe, self.s, self.keys, self.progress = pipe, settings, list(keys), progress
        self.cache: dict[Job, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.bar = None
        from rewardflow.rewards import get_reward

        self.rewards = {k: get_reward(k) for k in self.keys}  # fail before any sampling

    def job(self, entries, seeds=None, targets: T.RewardTargets | None = None, w: float | None = None) -> Job:
        """w = 0 is sampling without any guidance (the s+ conditioning alone), also when the settings
        ask for three branches: there w_r = 0 would sample the s- conditioning instead."""
        tg = targets or T.high_quality(self.pipe.reward_keys)
        prompts = tuple(e["prompt"] if isinstance(e, dict) else e for e in entries)
        seeds = tuple(seeds if seeds is not None else range(self.s.seed, self.s.seed + len(prompts)))
        w = float(self.s.guidance if w is None else w)
        return Job(
            prompts,
            seeds,
            tuple(tg.positive.items()),
            tuple(tg.negative.items()),
            w,
            None if w == 0 else self.s.text_guidance,
        )

    def start(self, jobs) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            todo = {j for j in jobs if j not in self.cache}
            self.bar = tqdm(total=sum(len(j.prompts) for j in todo), unit="img", desc="eval control")

    def get(self, job: Job):
        if job not in self.cache:
            out = self.pipe(
                list(job.prompts),
                reward_targets=dict(job.positive),
                negative_reward_targets=dict(job.negative),
                guidance_scale=job.w,
                text_guidance_scale=job.wt,
                num_inference_steps=self.s.steps,
                solver=self.s.solver,
                seed=list(job.seeds),
                output_type="np",
                batch_size=self.s.batch_size,
                progress=False,
            )
            scores = {
                k: np.asarray(r.score(out.images, list(job.prompts)), dtype=np.float64).reshape(-1)
                for k, r in self.rewards.items()
            }
            self.cache[job] = (out.images, scores)
            if self.bar is not None:
                self.bar.update(len(job.prompts))
        return self.cache[job]


def _sem(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


SPEARMAN_PASS = 0.9


def spearman_passes(rho: float) -> bool:
    """rho >= 0.9, robust to float rounding: with 5 levels one adjacent swap gives exactly
    1 - 6 * 2 / 120 = 0.9, which scipy returns as 0.8999999999999998."""
    return bool(rho >= SPEARMAN_PASS - 1e-9)


def spearman(x, y) -> float:
    """Rank correlation (average ranks for ties); NaN when either side is constant (no ranking
    to correlate)."""

    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for u in np.unique(v):  # ties share their mean rank
            m = v == u
            r[m] = r[m].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


# ----------------------------------------------------------------------------- measurements
def _held(S: Sampler, key: str | None) -> dict[str, float]:
    """The anchor: `--fixed` levels of the rewards other than `key`."""
    return {k: v for k, v in S.s.fixed if k != key}


def _control_jobs(S: Sampler, key: str) -> list[Job]:
    entries = balanced_entries(S.s.images_per_level, S.s.max_count)
    return [
        S.job(entries, targets=T.custom(S.pipe.reward_keys, {**_held(S, key), key: lv}, default=S.s.others))
        for lv in S.s.levels
    ]


def control(S: Sampler) -> dict[str, Any]:
    rows = {}
    for k in S.keys:
        scores = [S.get(j)[1][k] for j in _control_jobs(S, k)]
        means = [float(v.mean()) for v in scores]
        rho = spearman(S.s.levels, means)
        rows[k] = {
            "levels": list(S.s.levels),
            "means": means,
            "sems": [_sem(v) for v in scores],
            "spearman": rho,
            "pass": spearman_passes(rho),
        }
    return rows


def _reference_jobs(S: Sampler, key: str | None = None) -> list[Job]:
    """[high quality, text only, plain] with the rewards other than `key` anchored at `--fixed`
    (default 1). Text-only guidance (s+ = s- = anchor) shows what a reward's own contrast adds;
    plain (s+ = anchor at w = 0: conditioning without any guidance) what isolate(k) sampling adds."""
    entries = balanced_entries(S.s.images_per_level, S.s.max_count)
    keys, held = S.pipe.reward_keys, _held(S, key)
    pos = {k: held.get(k, 1.0) for k in keys}
    return [
        S.job(entries, targets=T.custom(keys, held)),
        S.job(entries, targets=T.RewardTargets(pos, dict(pos))),
        S.job(entries, targets=T.custom(keys, held), w=0.0),
    ]


def _isolate_jobs(S: Sampler, key: str) -> list[Job]:
    """[high quality, isolate(key), text only, plain], the other rewards anchored at `--fixed`."""
    entries = balanced_entries(S.s.images_per_level, S.s.max_count)
    hq, txt, plain = _reference_jobs(S, key)
    return [hq, S.job(entries, targets=T.isolate(S.pipe.reward_keys, key, _held(S, key))), txt, plain]


def isolate(S: Sampler) -> dict[str, Any]:
    rows = {}
    for k in S.keys:
        hq, iso, txt, plain = (S.get(j)[1][k] for j in _isolate_jobs(S, k))
        d, dp, dt = iso - hq, iso - plain, iso - txt  # same prompts and seeds: paired differences
        rows[k] = {
            "high_quality": float(hq.mean()),
            "isolate": float(iso.mean()),
            "text_only": float(txt.mean()),
            "plain": float(plain.mean()),
            "delta": float(d.mean()),
            "delta_sem": _sem(d),
            "pass": bool(d.mean() > 0),
            "over_text_only": float(dt.mean()),
            "over_text_only_sem": _sem(dt),
            "over_plain": float(dp.mean()),
            "over_plain_sem": _sem(dp),
            "pass_over_plain": bool(dp.mean() > 0),
        }
    return rows


def isolate_cross(S: Sampler) -> dict[str, dict[str, float]]:
    """Every measured reward under each isolate(j) and the references: {condition: {reward: mean}}.

    Reuses the isolate section's images. Off the diagonal it shows how far one reward's contrast
    moves the others, which is what decides isolate(k) against high quality: high quality carries
    every contrast, so it wins on k wherever the other contrasts raise k as well.
    """
    keys = S.keys
    hq, txt, plain = _reference_jobs(S)
    conds = {"plain": plain, "text only": txt, "high quality": hq}
    conds.update({f"isolate({j})": _isolate_jobs(S, j)[1] for j in keys})
    return {name: {k: float(S.get(job)[1][k].mean()) for k in keys} for name, job in conds.items()}


def _guidance_jobs(S: Sampler) -> list[Job]:
    entries = balanced_entries(S.s.sweep_images, S.s.max_count)
    tg = T.custom(S.pipe.reward_keys, dict(S.s.sweep_targets)) if S.s.sweep_targets else None
    return [S.job(entries, targets=tg, w=w) for w in S.s.scales]


def guidance(S: Sampler) -> dict[str, Any]:
    from rewardflow.shapes.geneval import evaluate

    entries = balanced_entries(S.s.sweep_images, S.s.max_count)
    rows = []
    for w, job in zip(S.s.scales, _guidance_jobs(S)):
        images, scores = S.get(job)
        ge = evaluate(images, entries)
        rows.append(
            {
                "w": float(w),
                "overall": ge.overall,
                "per_category": ge.per_category,
                "rewards": {k: float(v.mean()) for k, v in scores.items()},
            }
        )
    by_w = {r["w"]: r["overall"] for r in rows}
    ref = by_w.get(float(S.s.guidance), max((v for w, v in by_w.items() if w > 0), default=float("nan")))
    return {"rows": rows, "images": len(entries), "pass": bool(0.0 in by_w and ref > by_w[0.0])}


def seeds(pipe, settings: ControlSettings, batch: int = 8) -> dict[str, Any]:
    """Each image of one request of `batch` prompts against the same (prompt, seed) sampled alone:
    once with the default batched network (rounding differences allowed, reported) and once with
    ``batch_invariant=True`` (must be bit-identical: the acceptance check)."""
    entries = balanced_entries(batch, settings.max_count)
    prompts, sd = [e["prompt"] for e in entries], [settings.seed + 1000 + i for i in range(batch)]
    kw = dict(
        guidance_scale=settings.guidance,
        num_inference_steps=settings.steps,
        solver=settings.solver,
        output_type="pt",
        progress=False,
    )
    alone = [pipe([p], seed=[s], batch_size=1, **kw).images[0] for p, s in zip(prompts, sd)]
    together = pipe(prompts, seed=sd, batch_size=batch, **kw).images
    invariant = pipe(prompts, seed=sd, batch_invariant=True, **kw).images
    diffs = [float((together[i] - a).abs().max()) for i, a in enumerate(alone)]
    u8 = [bool(np.array_equal(_u8(together[i]), _u8(a))) for i, a in enumerate(alone)]
    exact = [bool(torch.equal(invariant[i], a)) for i, a in enumerate(alone)]
    return {
        "batch": batch,
        "max_abs_diff": max(diffs),
        "uint8_identical": sum(u8),
        "invariant_identical": sum(exact),
        "pass": all(exact),
    }


def _bon_job(S: Sampler) -> Job:
    from rewardflow.sampling.selection import candidate_seeds

    entries, n = balanced_entries(S.s.bon_prompts, S.s.max_count), max(S.s.bon_ns)
    cs = candidate_seeds(len(entries), n, S.s.seed + 5000)
    # Candidate-major flat order, as selection.best_of_n lays it out.
    return S.job([e for _ in range(n) for e in entries], [cs[i][j] for j in range(n) for i in range(len(entries))])


def best_of_n(S: Sampler) -> dict[str, Any]:
    """Best-of-N from ONE pool of max(N) nested-seed candidates per prompt: best-of-n is the best
    of the first n (the seeds of selection.best_of_n), so every N is judged on the same images."""
    P, n = S.s.bon_prompts, max(S.s.bon_ns)
    _, scores = S.get(_bon_job(S))
    sel = {k: v.reshape(n, P) for k, v in scores.items()}
    bins = getattr(S.pipe, "bins", None)
    if bins is not None and all(k in bins.keys for k in S.keys):  # quantile positions: one scale
        sel["sum_of_bin_positions"] = sum(
            bins.bin_index(k, v.reshape(-1)).reshape(n, P) / (bins.num_bins - 1) for k, v in scores.items()
        )
    rows = {}
    for k, v in sel.items():
        curve = [float(v[:m].max(axis=0).mean()) for m in S.s.bon_ns]
        rows[k] = {"ns": list(S.s.bon_ns), "means": curve, "pass": bool(np.all(np.diff(curve) >= 0))}
    return rows


def _u8(x) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def run_control(
    pipe, settings: ControlSettings | None = None, keys=None, model: str = "", progress: bool = True, command: str = ""
) -> ControlReport:
    """All requested sections on one pipeline; `keys` defaults to the model's reward keys."""
    s = settings or ControlSettings()
    unknown = set(s.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
    if not pipe.reward_keys:
        raise ValueError("eval control needs a reward-conditioned (MIRO) model; this one has no reward keys")
    keys = list(keys or pipe.reward_keys)
    bad = [k for k in keys if k not in pipe.reward_keys]
    if bad:
        raise ValueError(f"reward(s) {bad} are not among the model's keys {list(pipe.reward_keys)}")
    S = Sampler(pipe, s, keys, progress)
    plan = {
        "control": lambda: [j for k in keys for j in _control_jobs(S, k)],
        "isolate": lambda: [j for k in keys for j in _isolate_jobs(S, k)] + _reference_jobs(S),
        "guidance": lambda: _guidance_jobs(S),
        "best_of_n": lambda: [_bon_job(S)],
    }
    S.start([j for name in s.sections if name in plan for j in plan[name]()])
    report = ControlReport(model, asdict(s), keys, command=command)
    funcs = {
        "control": control,
        "isolate": isolate,
        "guidance": guidance,
        "best_of_n": best_of_n,
        "seeds": lambda _: seeds(pipe, s),
    }
    try:
        for name in SECTIONS:
            if name in s.sections:
                t0 = time.perf_counter()
                report.results[name] = funcs[name](S)
                if name == "isolate":
                    report.results["isolate_cross"] = isolate_cross(S)
                report.timings_s[name] = time.perf_counter() - t0
    finally:
        if S.bar is not None:
            S.bar.close()
    return report
