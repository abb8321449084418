"""`rewardflow bins fit`: fit per-reward bin edges on a scored dataset and save them as JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bins",
        help="fit reward bins (score -> [0, 1] conditioning values)",
        description="Reward binning: `rewardflow bins fit --data DIR` reads every DIR/NNNNN.parquet and writes "
        "bins JSON.",
    )
    sub = p.add_subparsers(dest="bins_command", metavar="<action>")
    f = sub.add_parser(
        "fit",
        help="fit bin edges on the scores of a dataset",
        description=(
            "Fit per-reward bin edges on the scores of every shard (`rewardflow score` first). Quantile edges "
            "are quantile(unique(scores), linspace(0, 1, B + 1)) on at most --max-samples random scores; the model "
            "sees bin / (B - 1)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("--data", required=True, metavar="DIR", help="dataset directory with NNNNN.parquet score files")
    f.add_argument(
        "--rewards", default=None, help="comma-separated reward columns (default: all scored in every shard)"
    )
    f.add_argument("--num-bins", type=int, default=64, help="bins per reward (B)")
    f.add_argument("--method", choices=["quantile", "uniform"], default="quantile", help="edge placement")
    f.add_argument("--max-samples", type=int, default=100_000, help="fit on at most this many random scores")
    f.add_argument("--seed", type=int, default=0, help="seed of the random subsample")
    f.add_argument("--drop-nonfinite", action="store_true", help="ignore NaN/inf scores instead of failing on them")
    f.add_argument("--out", default=None, help="output JSON (default: DIR/bins.json)")
    f.set_defaults(func=run_fit)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_fit(args) -> int:
    import numpy as np

    from rewardflow.data.binning import RewardBins
    from rewardflow.rewards.scoring import read_scores

    keys = [k.strip() for k in args.rewards.split(",") if k.strip()] if args.rewards else None
    scores = read_scores(args.data, keys)
    if not scores:
        raise ValueError(f"no reward columns found in the Parquet files of {args.data}")
    bins = RewardBins.fit(
        scores,
        num_bins=args.num_bins,
        method=args.method,
        max_samples=args.max_samples,
        seed=args.seed,
        nonfinite="drop" if args.drop_nonfinite else "error",
    )
    n = len(next(iter(scores.values())))
    finite = {k: int(np.isfinite(np.asarray(v, dtype=np.float64)).sum()) for k, v in scores.items()}
    used = min(finite.values())
    bins.meta = {
        "num_scores": n,
        "num_finite": finite,
        "max_samples": args.max_samples,
        "seed": args.seed,
        "data": str(args.data),
    }
    out = Path(args.out) if args.out else Path(args.data) / "bins.json"
    bins.save(out)
    print(
        f"fitted {args.method} bins (B={args.num_bins}) for {', '.join(bins.keys)} on {used} scores"
        + (f" ({n - used} NaN/inf dropped)" if used < n else "")
        + f" -> {out}"
    )
    return 0
