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
    p.add_argument(
        "--preset",
        default="full",
        choices=["easy", "full"],
        help="easy: 1-2 large objects for the few-minute demo; full: 1-4 objects",
    )
    p.add_argument("--seed", type=int, default=0, help="dataset seed; sample i uses a seed derived from (seed, i)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--workers", type=int, default=1, help="worker processes (one shard per task)")
    p.add_argument("--clean", action="store_true", help="switch every degradation and caption corruption off")
    p.add_argument("--overwrite", action="store_true", help="delete shards already in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_shapes)


def _run_shapes(args) -> int:
    from rewardflow.shapes import SHAPES_PRESETS, generate_dataset

    cfg = SHAPES_PRESETS[args.preset]
    if args.size is not None:
        cfg = cfg.replace(size=args.size)
    if args.clean:
        cfg = cfg.clean()
    shards = generate_dataset(
        cfg,
        args.num,
        args.out,
        seed=args.seed,
        shard_size=args.shard_size,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.num} samples in {len(shards)} shards to {args.out}")
    return 0


def _add_pack(sub) -> None:
    p = sub.add_parser(
        "pack",
        help="pack a folder of images + same-name .txt captions (or a CSV/Parquet table) into shards",
        description=(
            "Turn your own images into OUT/NNNNN.tar shards (img2dataset layout: {key}.png|jpg, {key}.txt, "
            "{key}.json with the source path and size). Captions come from a .txt file with the same name "
            "as each image, or from --table. Images without a caption stop the job before anything is "
            "written unless --missing-caption says otherwise; unreadable images are skipped and counted."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--images", default=None, help="image folder (searched recursively); with --table, the root for relative paths"
    )
    p.add_argument(
        "--table",
        default=None,
        help="CSV/TSV/Parquet with one row per image (paths relative to --images, else to the table)",
    )
    p.add_argument("--out", required=True, help="output directory for the shards (must hold no shards yet)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="resize the short side to SIZE and centre-crop square (default: keep images as they are)",
    )
    p.add_argument(
        "--missing-caption",
        choices=["error", "skip", "empty"],
        default="error",
        help="images without caption: stop with a list, skip and count, or pack with an empty caption",
    )
    p.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="stop when more than this fraction of the images cannot be read (corrupt or missing files)",
    )
    p.add_argument("--path-column", default="path", help="table column with image paths")
    p.add_argument("--caption-column", default="caption", help="table column with captions")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_pack)


def _run_pack(args) -> int:
    from rewardflow.data.pack import pack

    report = pack(
        args.out,
        images=args.images,
        table=args.table,
        shard_size=args.shard_size,
        size=args.size,
        missing_caption=args.missing_caption,
        path_column=args.path_column,
        caption_column=args.caption_column,
        progress=not args.no_progress,
        max_bad_fraction=args.max_bad_fraction,
    )
    print(report.summary() + f" -> {args.out}")
    return 0


_SUBCOMMANDS = [_add_shapes, _add_pack]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="build datasets (webdataset shards)", description="Build datasets as webdataset tar shards."
    )
    sub = parser.add_subparsers(dest="data_command", metavar="<subcommand>")
    for add in _SUBCOMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
