"""Reward control of a trained MIRO pipeline on ShapesWorld: the figures in docs/INFERENCE.md.

    python benchmarks/control_figures.py --model runs/demo/models/miro [--images 36] [--align-images 256]

For every reward: the positive target dialled over 0 / .25 / .5 / .75 / 1 (the others at 1),
the measured mean at each level and its Spearman correlation with the level; then isolate(k)
(guidance on reward k alone) minus plain sampling (s+ = all 1, no guidance) on the same prompts
and seeds, paired. Alignment's dial is shallow, so it is measured again on `--align-images`
images per level. Sampling uses the pipeline folder's saved default guidance and 20 Euler
steps. Prints a Markdown table and writes the numbers as JSON beside the model (`--out`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from rewardflow.sampling.pipeline import RewardFlowPipeline
from rewardflow.studies import evaluate as ev

LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]
REWARDS = ["shapes_alignment", "sharpness", "cleanliness", "colorfulness"]


def entries(n: int, offset: int) -> list[dict]:
    per = ev.prompt_entries(math.ceil(n / 6), offset=offset)
    by: dict[str, list[dict]] = {}
    for e in per:
        by.setdefault(e["tag"], []).append(e)
    mixed = [v[i] for i in range(max(map(len, by.values()))) for v in by.values() if i < len(v)]
    return mixed[:n]


def isolate_gain(pipe, ents, key: str, seed: int, steps: int) -> tuple[float, float]:
    prompts = [e["prompt"] for e in ents]
    iso = pipe.isolate(key, prompts, seed=seed, num_inference_steps=steps, output_type="np", progress=False).images
    plain = pipe(
        prompts, seed=seed, num_inference_steps=steps, guidance_scale=0.0, output_type="np", progress=False
    ).images
    a, b = ev.summarize(iso, ents, REWARDS), ev.summarize(plain, ents, REWARDS)
    return ev.paired_difference(a, b, key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a MIRO pipeline folder (e.g. runs/demo/models/miro)")
    p.add_argument("--images", type=int, default=36, help="images per level and per isolate run")
    p.add_argument("--align-images", type=int, default=256, help="images per level for the alignment re-run")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", default=None, help="JSON output (default MODEL/control_figures.json)")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    t0, load = time.time(), os.getloadavg()[0]
    pipe = RewardFlowPipeline.from_pretrained(args.model)
    ents = entries(args.images, offset=3)
    out: dict = {"model": args.model, "images": args.images, "steps": args.steps, "seed": args.seed, "rows": {}}
    print("| reward | measured mean at targets 0 / .25 / .5 / .75 / 1 | Spearman | isolate - plain |")
    print("|---|---|---|---|")
    for key in REWARDS:
        res, _ = ev.control_sweep(pipe, ents, key, LEVELS, REWARDS, None, args.steps, args.seed, 64)
        means = [r["rewards"][key] for r in res["rows"]]
        d, se = isolate_gain(pipe, ents, key, args.seed, args.steps)
        out["rows"][key] = {"means": means, "spearman": res["spearman"], "isolate_minus_plain": [d, se]}
        print(f"| {key} | {' / '.join(f'{m:.3f}' for m in means)} | {res['spearman']:.2f} | {d:+.3f} ± {se:.3f} |")
    big = entries(args.align_images, offset=3)
    res, _ = ev.control_sweep(pipe, big, "shapes_alignment", LEVELS, REWARDS, None, args.steps, args.seed + 1000, 64)
    out["alignment_large"] = {
        "images": len(big),
        "means": [r["rewards"]["shapes_alignment"] for r in res["rows"]],
        "geneval": [r["geneval"]["overall"] for r in res["rows"]],
        "spearman": res["spearman"],
    }
    al = out["alignment_large"]
    print(
        f"\nalignment on {len(big)} images per level: {' / '.join(f'{m:.3f}' for m in al['means'])}, "
        f"Spearman {al['spearman']:.2f}; GenEval-style {' / '.join(f'{g:.3f}' for g in al['geneval'])}"
    )
    print(f"({time.time() - t0:.0f} s, load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end)")
    with open(args.out or os.path.join(args.model, "control_figures.json"), "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
