"""`rewardflow data <subcommand>`: build datasets as webdataset shards.

Each subcommand is one `_add_<name>(sub)` function that registers its parser and sets
`func`; add new ones to `_SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse


def _add_shapes(sub) -> None:
    p = sub.add_parser(
        "shapes",
        help="generate a ShapesWorld dataset (procedural images + GenEval-style captions)",
        description=(
            "Generate ShapesWorld: 1-4 circles/squares/triangles in a fixed palette, captions in "
            "GenEval's six categories, and a quality spectrum drawn independently per image (caption "
            "corruption, blur, noise, low contrast, desaturation, off-frame objects). Writes "
            "OUT/NNNNN.tar shards with {key}.png, {key}.txt (caption) and {key}.json (generator "
            "metadata: clean caption, objects, degradation levels; no reward may read it), plus "
            "OUT/shapes_config.json. The output depends only on the seed, not on --workers."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="output directory for the shards")
    p.add_argument("--size", type=int, default=None, help="image side in pixels; the preset's (32) when omitted")
    p.add_argument("--preset", default="full", choices=["easy", "full"],
                   help="easy: 1-2 large objects for the few-minute demo; full: 1-4 objects")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; sample i uses a seed derived from (seed, i)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--workers", type=int, default=1, help="worker processes (one shard per task)")
    p.add_argument("--clean", action="store_true", help="switch every degradation and caption corruption off")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_shapes)


def _run_shapes(args) -> int:
    from rewardflow.data.shapes import SHAPES_PRESETS, generate_dataset

    cfg = SHAPES_PRESETS[args.preset]
    if args.size is not None:
        cfg = cfg.replace(size=args.size)
    if args.clean:
        cfg = cfg.clean()
    shards = generate_dataset(cfg, args.num, args.out, seed=args.seed, shard_size=args.shard_size,
                              workers=args.workers, progress=not args.no_progress)
    print(f"wrote {args.num} samples in {len(shards)} shards to {args.out}")
    return 0


_SUBCOMMANDS = [_add_shapes]


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build datasets (webdataset shards)",
                                   description="Build datasets as webdataset tar shards.")
    sub = parser.add_subparsers(dest="data_command", metavar="<subcommand>")
    for add in _SUBCOMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
