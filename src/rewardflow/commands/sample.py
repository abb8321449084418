"""`rewardflow sample`: images from a trained pipeline with per-reward control.

Writes OUT/images/NNNNN.png, OUT/samples.jsonl (one record per image) and optionally OUT/grid.png.
Images are written batch by batch as they are made; the same command run again continues an
interrupted request where it stopped (and refuses a folder that holds another request's images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardflow.commands._common import add_sampling_args, load_pipeline, mode_targets, parse_assignments


def make_grid(images: list, cols: int):
    from PIL import Image

    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        grid.paste(im.convert("RGB"), ((i % cols) * w, (i // cols) * h))
    return grid


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="generate images with reward control",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_sampling_args(p)
    p.add_argument(
        "--reward",
        action="append",
        metavar="KEY=VALUE",
        help="s+ target in [0, 1] for a reward (repeatable or comma-separated); others default to 1; "
        "KEY=none leaves it unspecified, in s- too (needs a model trained with reward dropout)",
    )
    p.add_argument(
        "--mode",
        default="high",
        help="high (s+ 1, s- 0), isolate:KEY, or pairwise:A,B,T; "
        "--reward / --negative-reward override single entries afterwards",
    )
    p.add_argument(
        "--anchor",
        action="append",
        metavar="KEY=VALUE",
        help="isolate / pairwise: hold these other rewards at VALUE in both s+ and s- (default 1), "
        "e.g. --mode isolate:sharpness --anchor colorfulness=0.25",
    )
    p.add_argument(
        "--score", default=None, help="comma-separated registered rewards to score each image with ('paper': the seven)"
    )
    p.add_argument("--best-of", type=int, default=1, help="test-time scaling: N candidates per image, keep the best")
    p.add_argument("--select", default=None, help="best-of selector: REWARD or REWARD=W,REWARD=W (weighted sum)")
    p.add_argument(
        "--select-normalize",
        choices=["none", "bins", "zscore"],
        default="none",
        help="how a weighted-sum selector puts rewards on one scale (see sampling.selection)",
    )
    p.add_argument("--grid", action="store_true", help="also write grid.png (one row per prompt)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rewardflow.sampling.prompts import load_prompts
    from rewardflow.sampling.sample_folder import SampleFolder

    prompts, _ = load_prompts(args.prompts, args.max_prompts)
    if args.num_per_prompt < 1:
        raise ValueError(f"--num-per-prompt must be >= 1, got {args.num_per_prompt}")
    pipe = load_pipeline(args.model, args.device, args.allow_download, args.variant)
    pos, neg = _targets(args, pipe)
    kw = dict(
        reward_targets=pos or None,
        negative_reward_targets=neg or None,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance,
        text_guidance_scale=args.text_guidance,
        guidance_interval=_interval(args.guidance_interval),
        num_inference_steps=args.steps,
        solver=args.solver,
        shift=args.shift,
        batch_size=args.batch_size,
        batch_invariant=args.batch_invariant,
    )
    flat = [p for p in prompts for _ in range(args.num_per_prompt)]
    tg = pipe.resolve_targets(pos or None, neg or None)
    common = dict(
        reward_targets=dict(tg.positive) if tg else {},
        negative_reward_targets=dict(tg.negative) if tg else {},
        **_settings(args, pipe),
    )
    planned = [dict(file=f"images/{i:05d}.png", prompt=p, seed=args.seed + i, **common) for i, p in enumerate(flat)]
    if args.best_of > 1:  # the seed of each image is the winning candidate's, known only afterwards
        planned = [
            {k: v for k, v in dict(r, best_of=args.best_of, selector=args.select).items() if k != "seed"}
            for r in planned
        ]
    with SampleFolder(args.out, planned) as folder:
        if folder.done < len(planned):
            _make(args, pipe, folder, planned, kw)
        records = folder.records()
    if args.grid:
        from PIL import Image

        pils = [Image.open(Path(args.out) / r["file"]) for r in records]
        make_grid(pils, args.num_per_prompt if len(prompts) > 1 else min(len(pils), 8)).save(
            Path(args.out) / "grid.png"
        )
    print(f"wrote {len(records)} images and {len(records)} records in samples.jsonl to {args.out}")
    return 0


def _targets(args, pipe) -> tuple[dict, dict]:
    from rewardflow.sampling.targets import with_overrides

    base = mode_targets(pipe, args.mode, parse_assignments(args.anchor, "--anchor"))
    pos = parse_assignments(args.reward, "--reward")
    return with_overrides(base, pos, parse_assignments(args.negative_reward, "--negative-reward"))


def _settings(args, pipe) -> dict:
    c = pipe.config
    w, w_t, iv = pipe.resolve_guidance(args.guidance, args.text_guidance, _interval(args.guidance_interval))
    return dict(
        negative_prompt=args.negative_prompt,
        guidance_scale=w,
        text_guidance_scale=w_t,
        guidance_interval=None if iv is None else list(iv),
        num_inference_steps=args.steps or c["num_inference_steps"],
        solver=args.solver or c["solver"],
        shift=c["shift"] if args.shift is None else args.shift,
        batch_invariant=args.batch_invariant,
    )


def _make(args, pipe, folder, planned: list[dict], kw: dict) -> None:
    """Make the images after `folder.done`, writing each network batch as soon as it is decoded.

    Chunks are whole network batches counted from image 0, so a continued run puts every image
    in the same batch as an uninterrupted one and gets the same pixels."""
    from tqdm.auto import tqdm

    if args.best_of > 1:  # candidates are drawn per request: written together at the end
        folder.keep_first(0)
        images, extra = _best_of(args, pipe, [r["prompt"] for r in planned], kw)
        _write(args, folder, images, [dict(r, **e) for r, e in zip(planned, extra)])
        return
    chunk = 16 if args.batch_invariant else (args.batch_size or pipe.config["batch_size"])
    folder.keep_first(folder.done - folder.done % chunk)
    if folder.done:
        print(f"{args.out}: {folder.done} of {len(planned)} images already made; continuing")
    bar = tqdm(total=len(planned), initial=folder.done, unit="img", desc="sampling")
    for a in range(folder.done, len(planned), chunk):
        part = planned[a : a + chunk]
        out = pipe([r["prompt"] for r in part], seed=[r["seed"] for r in part], output_type="pt", progress=False, **kw)
        _write(args, folder, out.images, part)
        bar.update(len(part))
    bar.close()


def _best_of(args, pipe, flat: list[str], kw: dict):
    from rewardflow.sampling.selection import best_of_n

    if not args.select:
        raise ValueError("--best-of needs --select REWARD (or REWARD=W,...)")
    sel = parse_assignments([args.select], "--select") if "=" in args.select else args.select
    if isinstance(sel, dict) and any(v is None for v in sel.values()):
        raise ValueError(f"--select {args.select!r}: every weight must be a number")
    # One prompt entry per output image; best_of_n then draws N nested-seed candidates for each.
    res = best_of_n(
        pipe, flat, args.best_of, sel, seed=args.seed, normalize=args.select_normalize, output_type="pt", **kw
    )
    extra = [
        {
            "seed": res.seeds[i],
            "candidate_seeds": res.candidate_seeds[i],
            "candidate_scores": [float(v) for v in res.scores[i]],
        }
        for i in range(len(flat))
    ]
    return res.images, extra


def _write(args, folder, images, records: list[dict]) -> None:
    """images: (B, C, H, W) in [-1, 1], one per record."""
    from rewardflow.sampling.pipeline import to_output_type

    if args.score:
        from rewardflow.rewards.registry import parse_reward_list
        from rewardflow.sampling.selection import score_images

        scores = score_images(images, [r["prompt"] for r in records], parse_reward_list(args.score))
        records = [dict(r, scores={k: float(v[i]) for k, v in scores.items()}) for i, r in enumerate(records)]
    folder.write(to_output_type(images, "pil"), records)


def _interval(text: str | None):
    """'LO,HI' -> (lo, hi); the pipeline checks the range."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--guidance-interval {text!r} must be two numbers LO,HI, e.g. 0,0.6") from None
    return lo, hi
