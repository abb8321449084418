"""Sampling speed and solver accuracy of RewardFlowPipeline.

1. images/s of 50-step Euler multi-reward CFG sampling, with both CFG branches in ONE forward of
   batch 2B (what the pipeline does) vs two separate forwards of batch B; plus their max difference.
2. batch-invariant mode: images/s of the pipeline with its default batched network vs
   ``batch_invariant=True`` (one image per network call, bit-identical whatever the batch), and
   how far the default's batched images are from the same (prompt, seed) sampled alone.
3. Euler vs Heun: RMSE (pixels in [-1, 1]) to a 200-step Heun reference as a function of steps
   and network evaluations (NFE), and the NFE each needs to match Euler@50's error.

    python benchmarks/sampling_speed.py --model runs/demo/pipeline          # a trained pipeline
    python benchmarks/sampling_speed.py --preset unet-demo                  # random weights (speed only)

Random weights give a meaningful speed figure but not a meaningful accuracy curve (the ODE of an
untrained net is not an image flow); use a trained model for part 2's numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from rewardflow.sampling.guidance import Condition, make_velocity_fn
from rewardflow.sampling.noise import randn_per_seed
from rewardflow.sampling.solvers import num_evaluations, solve, time_grid

PROMPTS = ["a red circle", "two blue squares", "a green triangle left of a yellow circle", "three circles"]


def build(args):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    if args.model:
        from rewardflow.commands._common import load_pipeline

        return load_pipeline(args.model, args.device)
    from rewardflow.data.text import TextEncoder
    from rewardflow.models import build_model, model_config_from_preset

    torch.manual_seed(0)
    keys = ("shapes_alignment", "sharpness", "cleanliness", "colorfulness")
    model = build_model(model_config_from_preset(args.preset, reward_keys=keys))
    with torch.no_grad():  # adaLN-zero init would make the velocity trivially zero
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return RewardFlowPipeline(model, TextEncoder()).to(args.device)


def conditions(pipe, b):
    dev = pipe.device
    text, mask = pipe.text_encoder.encode([PROMPTS[i % len(PROMPTS)] for i in range(b)], device=dev)
    n = len(pipe.reward_keys)
    pos = Condition(text, mask, torch.ones(b, n, device=dev) if n else None)
    nt, nm = pipe.model.null_text(b)
    neg = Condition(nt, nm, torch.zeros(b, n, device=dev) if n else None)
    return pos, neg


def separate_velocity_fn(model, pos, neg, w):
    def fn(x, t):
        v_pos = model(x, t, pos.text, pos.text_mask, rewards=pos.rewards)
        v_neg = model(x, t, neg.text, neg.text_mask, rewards=neg.rewards)
        return v_pos + w * (v_pos - v_neg)

    return fn


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def speed(pipe, batch, steps, w, repeats):
    cfg, dev = pipe.model.config, pipe.device
    pos, neg = conditions(pipe, batch)
    x0 = randn_per_seed(range(batch), (cfg.in_channels, cfg.image_size, cfg.image_size), device=dev)
    grid = time_grid(steps, device=dev)
    fns = {
        "batched_2B": make_velocity_fn(pipe.model, pos, neg, w),
        "separate_2xB": separate_velocity_fn(pipe.model, pos, neg, w),
    }
    res, outs = {}, {}
    solve("euler", fns["batched_2B"], x0, time_grid(2, device=dev))  # warm-up (allocator, kernels)
    for _ in range(repeats):  # interleave so machine-load drift hits both equally
        for name, fn in fns.items():
            sync(dev)
            t0 = time.perf_counter()
            outs[name] = solve("euler", fn, x0, grid)
            sync(dev)
            res.setdefault(name, []).append(time.perf_counter() - t0)
    r = {k: batch / statistics.median(v) for k, v in res.items()}
    return dict(
        batch=batch,
        steps=steps,
        guidance=w,
        images_per_s=r,
        speedup=r["batched_2B"] / r["separate_2xB"],
        max_abs_diff=float((outs["batched_2B"] - outs["separate_2xB"]).abs().max()),
    )


@torch.no_grad()
def invariance(pipe, batch, steps, w, repeats):
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    kw = dict(seed=list(range(batch)), guidance_scale=w, num_inference_steps=steps, output_type="pt", progress=False)
    modes = {"batched": dict(batch_size=batch), "batch_invariant": dict(batch_invariant=True)}
    pipe(prompts[:1], **{**kw, "seed": [0], "num_inference_steps": 2})  # warm-up
    res, outs = {}, {}
    for _ in range(repeats):
        for name, extra in modes.items():
            sync(pipe.device)
            t0 = time.perf_counter()
            outs[name] = pipe(prompts, **kw, **extra).images
            sync(pipe.device)
            res.setdefault(name, []).append(time.perf_counter() - t0)
    alone = torch.cat([pipe([p], **{**kw, "seed": [i]}).images for i, p in enumerate(prompts)])
    r = {k: batch / statistics.median(v) for k, v in res.items()}
    return dict(
        batch=batch,
        steps=steps,
        images_per_s=r,
        cost=r["batched"] / r["batch_invariant"],
        batched_vs_alone_max_diff=float((outs["batched"] - alone).abs().max()),
        invariant_equal_alone=bool(torch.equal(outs["batch_invariant"], alone)),
    )


def accuracy(pipe, n_images, w, ref_steps, euler_steps, heun_steps):
    kw = dict(seed=list(range(n_images)), guidance_scale=w, output_type="pt", progress=False)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n_images)]
    ref = pipe(prompts, solver="heun", num_inference_steps=ref_steps, **kw).images
    rows = []
    for solver, steps_list in (("euler", euler_steps), ("heun", heun_steps)):
        for s in steps_list:
            img = pipe(prompts, solver=solver, num_inference_steps=s, **kw).images
            rmse = float((img - ref).pow(2).mean().sqrt())
            rows.append(dict(solver=solver, steps=s, nfe=num_evaluations(solver, time_grid(s)), rmse=rmse))
    target = next((r["rmse"] for r in rows if r["solver"] == "euler" and r["steps"] == 50), None)
    needed = {}
    for solver in ("euler", "heun"):
        rs = [r for r in rows if r["solver"] == solver]
        needed[solver] = _nfe_to_reach(rs, target) if target is not None else None
    return dict(
        reference=f"heun {ref_steps} steps",
        images=n_images,
        rows=rows,
        target_rmse_euler50=target,
        nfe_to_match_euler50=needed,
    )


def _nfe_to_reach(rows, target):
    """NFE where RMSE first drops to target, log-log interpolated between evaluated points."""
    for a, b in zip(rows, rows[1:]):
        if a["rmse"] <= target:
            return a["nfe"]
        if b["rmse"] <= target:
            la, lb, lt = (math.log(max(v, 1e-12)) for v in (a["rmse"], b["rmse"], target))
            f = (la - lt) / (la - lb) if la != lb else 1.0
            return round(math.exp(math.log(a["nfe"]) + f * (math.log(b["nfe"]) - math.log(a["nfe"]))), 1)
    return rows[-1]["nfe"] if rows and rows[-1]["rmse"] <= target else None


def markdown(r):
    s = r["speed"]
    lines = [
        f"### Sampling speed ({r['what']}, device {r['device']}, {r['threads']} threads)",
        "",
        "| CFG forward | images/s (50-step Euler) |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in s["images_per_s"].items()]
    lines += [
        "",
        f"One batched 2B forward is **{s['speedup']:.2f}x** two separate B forwards "
        f"(batch {s['batch']}, w = {s['guidance']}); max |difference| {s['max_abs_diff']:.1e}.",
        "",
    ]
    if "invariance" in r:
        v = r["invariance"]
        lines += [
            f"### Batch-invariant sampling ({v['batch']} images, {v['steps']} steps)",
            "",
            "| mode | images/s |",
            "|---|---|",
        ]
        lines += [f"| {k} | {x:.2f} |" for k, x in v["images_per_s"].items()]
        lines += [
            "",
            f"batch_invariant=True costs **{v['cost']:.2f}x** in throughput; batched images differ from "
            f"the same (prompt, seed) alone by up to {v['batched_vs_alone_max_diff']:.1e}; batch-invariant "
            f"images equal them bit for bit: {v['invariant_equal_alone']}.",
            "",
        ]
    if "accuracy" in r:
        a = r["accuracy"]
        lines += [
            f"### Euler vs Heun (RMSE to {a['reference']}, {a['images']} images)",
            "",
            "| solver | steps | NFE | RMSE |",
            "|---|---|---|---|",
        ]
        lines += [f"| {x['solver']} | {x['steps']} | {x['nfe']} | {x['rmse']:.4f} |" for x in a["rows"]]
        lines += [
            "",
            f"NFE to match Euler@50's RMSE ({a['target_rmse_euler50']:.4f}): {json.dumps(a['nfe_to_match_euler50'])}",
        ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="trained pipeline / checkpoint; default: random --preset")
    ap.add_argument("--preset", default="unet-demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=7.0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    ap.add_argument(
        "--no-invariance", dest="invariance", action="store_false", help="skip the batch-invariant-mode timing"
    )
    ap.add_argument("--accuracy-images", type=int, default=8, help="0 skips the Euler/Heun part")
    ap.add_argument("--ref-steps", type=int, default=200)
    ap.add_argument("--out", default=None, help="write JSON + markdown here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = build(args)
    r = dict(
        what=args.model or f"{args.preset} (random weights)",
        device=str(pipe.device),
        threads=torch.get_num_threads(),
        speed=speed(pipe, args.batch, args.steps, args.guidance, args.repeats),
    )
    if args.invariance:
        r["invariance"] = invariance(pipe, args.batch, args.steps, args.guidance, args.repeats)
    if args.accuracy_images:
        r["accuracy"] = accuracy(
            pipe, args.accuracy_images, args.guidance, args.ref_steps, [5, 10, 20, 50, 100], [3, 5, 10, 25, 50]
        )
    md = markdown(r)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sampling_speed.json").write_text(json.dumps(r, indent=2))
        (out / "sampling_speed.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
