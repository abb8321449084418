"""`rewardflow score`: score dataset shards with reward models into per-shard Parquet files."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score shards with reward models (one Parquet per shard, resumable)",
        description=(
            "Score every DIR/NNNNN.tar with the given rewards into DIR/NNNNN.parquet (column `key` plus one "
            "float column per reward). Resumable: run the same command again after an interruption; shards "
            "already holding every requested reward are skipped, and a shard missing some reward gets only that "
            "column added. Undecodable images are skipped and listed in DIR/_skipped.json. Under torchrun or "
            "accelerate launch (one node or many) each process scores its share of the shards, on its own GPU "
            "with --device cuda, and the first prints one summary for the job."
        ),
        epilog=(
            "The paper's reward models (aesthetic_score, pick_a_score_score, hpsv2_score, sciscore_score, "
            "image_reward_score, vqa_score, clip_score) load from the Hugging Face cache under their hub ids, "
            "or from folders named by environment variables (e.g. REWARDFLOW_PICKSCORE_MODEL=/models/PickScore_v1); "
            "nothing is downloaded (unless REWARDFLOW_TRUST_REMOTE_CODE=1 sends clip_score to jina's hub code). "
            "aesthetic_score's head file comes from REWARDFLOW_AESTHETIC_MLP, and clip_score "
            "(jina-clip-v2, non-commercial licence) needs "
            "REWARDFLOW_ACCEPT_JINA_LICENSE=1. Every variable: docs/REWARD_BACKENDS.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", metavar="DIR", help="dataset directory holding NNNNN.tar shards (required to score)")
    p.add_argument(
        "--rewards",
        default="shapes_alignment,sharpness,cleanliness,colorfulness",
        help="comma-separated reward names (see --list); 'paper': the paper's seven",
    )
    p.add_argument("--batch-size", type=int, default=None, help="images per reward call (default: each reward's own)")
    p.add_argument("--workers", type=int, default=0, help="processes scoring shards in parallel (0 or 1: in-process)")
    p.add_argument("--device", default="cpu", help="torch device for rewards that run a network")
    p.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="fail (exit 1, after scoring what is intact) when more than this fraction of samples "
        "cannot be read: truncated shards, corrupt images",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--list", action="store_true", help="list the registered rewards and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from rewardflow.rewards.registry import get_reward_class, list_rewards, parse_reward_list
    from rewardflow.rewards.scoring import SKIPPED_FILE, score_dataset

    if args.list:
        for name in list_rewards():
            cls = get_reward_class(name)
            summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())  # the first paragraph
            print(f"{name:24s} v{cls.version:4s} {summary}")
        return 0
    if not args.data:
        raise ValueError("--data DIR is required: the dataset directory holding the NNNNN.tar shards to score")
    from rewardflow.rewards.score_ranks import Ranks

    names = parse_reward_list(args.rewards)
    ranks = Ranks.from_env()  # torchrun / accelerate launch: each rank scores its share of the shards
    report = score_dataset(
        args.data,
        names,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        reward_kwargs={"device": ranks.device(args.device)},
        ranks=ranks,
    )
    if ranks.rank != 0:
        return 0  # rank 0 prints the job's summary and judges the damage
    print(report.summary())
    if report.num_skipped:
        first = next(iter(report.skipped.items()))
        print(
            f"warning: {report.num_skipped} sample(s) skipped (e.g. {first[0]}: {first[1][0]['key']}: "
            f"{first[1][0]['reason']}); all listed in {args.data}/{SKIPPED_FILE}",
            file=sys.stderr,
        )
    from rewardflow.data.damage import too_many

    total = report.samples_total
    if too_many(report.num_skipped, total, args.max_bad_fraction):
        raise ValueError(
            f"{report.num_skipped} of {total} samples cannot be read, more than --max-bad-fraction "
            f"{args.max_bad_fraction}: the data looks damaged (a cut or failed copy?). The intact samples are "
            f"scored; re-copy the shards listed in {args.data}/{SKIPPED_FILE} and run this command again, or "
            "raise --max-bad-fraction to accept the loss"
        )
    return 0
