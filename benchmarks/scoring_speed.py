"""Scoring throughput of the built-in ShapesWorld rewards, and how related they are.

    python benchmarks/scoring_speed.py [--num 10000] [--workers 0] [--out runs/bench_scoring]

Generates `--num` images with the full ShapesWorld preset as shards, runs the real scoring job
(`rewardflow.rewards.scoring.score_dataset`: PNG decode, all four rewards, Parquet writes) and
reports images/s end to end, the time per reward, the Spearman correlation matrix of the four
rewards and the alignment reward's AUC between correct and corrupted captions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

REWARDS = ["shapes_alignment", "sharpness", "cleanliness", "colorfulness"]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (what Spearman's rho needs)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, start, counts = np.unique(xs, return_index=True, return_counts=True)
    for s, c in zip(start, counts):
        if c > 1:
            ranks[order[s : s + c]] = s + (c + 1) / 2
    return ranks


def spearman_matrix(cols: dict[str, np.ndarray]) -> np.ndarray:
    r = np.stack([rankdata(np.asarray(v, dtype=np.float64)) for v in cols.values()])
    return np.corrcoef(r)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=10_000, help="images to generate and score")
    ap.add_argument("--workers", type=int, default=0, help="scoring processes (0: in-process)")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="directory for results.json (default: print only)")
    args = ap.parse_args()

    import torch

    from rewardflow.data.shards import iter_shard, list_shards
    from rewardflow.rewards import get_reward
    from rewardflow.rewards.scoring import _read_shard, score_dataset
    from rewardflow.shapes import ShapesConfig, generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="rf_bench_"))
    try:
        t = time.perf_counter()
        generate_dataset(ShapesConfig(), args.num, tmp, seed=args.seed, shard_size=args.shard_size, progress=False)
        t_gen = time.perf_counter() - t

        t = time.perf_counter()
        report = score_dataset(tmp, REWARDS, workers=args.workers, progress=False)
        t_score = time.perf_counter() - t

        # Per-reward cost on the first shard, in-process (decode excluded).
        _, images, captions, _ = _read_shard(list_shards(tmp)[0])
        batch = np.stack(images)
        per_reward = {}
        for name in REWARDS:
            r = get_reward(name)
            t = time.perf_counter()
            r.score(batch, captions)
            per_reward[name] = len(batch) / (time.perf_counter() - t)

        import pyarrow.parquet as pq

        tables = [pq.read_table(s.with_suffix(".parquet")) for s in list_shards(tmp)]
        cols = {k: np.concatenate([tb.column(k).to_numpy() for tb in tables]) for k in REWARDS}
        corrupted = np.array(
            [
                json.loads(s.members["json"])["degradations"]["caption_corruption"] is not None
                for shard in list_shards(tmp)
                for s in iter_shard(shard)
            ]
        )
        rho = spearman_matrix(cols)
        a = cols["shapes_alignment"]
        result = {
            "num_images": args.num,
            "torch_threads": torch.get_num_threads(),
            "workers": args.workers,
            "generate_s": round(t_gen, 2),
            "score_s": round(t_score, 2),
            "score_images_per_s": round(args.num / t_score, 1),
            "per_reward_images_per_s": {k: round(v, 1) for k, v in per_reward.items()},
            "skipped": report.num_skipped,
            "spearman": {k: dict(zip(REWARDS, map(lambda x: round(float(x), 3), row))) for k, row in zip(REWARDS, rho)},
            "alignment_auc_correct_vs_corrupted_caption": round(auc(a[~corrupted], a[corrupted]), 4),
            "means": {k: round(float(v.mean()), 4) for k, v in cols.items()},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps(result, indent=2))
    print("\n| | " + " | ".join(REWARDS) + " |\n|---|" + "---|" * len(REWARDS))
    for k in REWARDS:
        print(f"| {k} | " + " | ".join(f"{result['spearman'][k][j]:+.2f}" for j in REWARDS) + " |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
