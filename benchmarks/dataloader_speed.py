"""ShardDataset throughput (images/s) on a ShapesWorld dataset at 32x32, text embeddings cached.

    .venv/bin/python benchmarks/dataloader_speed.py [--num 4000] [--batch-size 64] [--batches 150]

Modes: streaming with 0 / 2 DataLoader workers (PNG decoding per batch) and in-memory (decoded
once, batches are tensor indexing). Rewards are 3 random score columns binned with RewardBins,
so the Parquet + bins path is exercised; the scores' values do not matter for speed. The text
cache is warmed before timing: the trainer's steady state, where every caption has been seen.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rewardflow.data.binning import RewardBins
from rewardflow.data.datasets import ShardDataset
from rewardflow.data.shards import iter_shard, list_shards
from rewardflow.data.text import TextEncoder

REWARDS = ("r0", "r1", "r2")


def build(out: Path, num: int, shard_size: int, size: int) -> None:
    from rewardflow.shapes import SHAPES_PRESETS, generate_dataset

    generate_dataset(SHAPES_PRESETS["full"].replace(size=size), num, out, seed=0, shard_size=shard_size, progress=False)
    rng = np.random.default_rng(0)
    every = {r: [] for r in REWARDS}
    for shard in list_shards(out):
        keys = [s.key for s in iter_shard(shard)]
        cols = {r: rng.random(len(keys)) for r in REWARDS}
        for r in REWARDS:
            every[r].append(cols[r])
        pq.write_table(pa.table({"key": keys, **cols}), out / f"{shard.stem}.parquet")
    RewardBins.fit({r: np.concatenate(v) for r, v in every.items()}, num_bins=16).save(out / "bins.json")


def measure(ds: ShardDataset, batches: int, warmup: int = 5) -> float:
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)["keys"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=4000, help="images in the benchmark dataset")
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=150, help="timed batches per mode")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="streaming worker counts to time")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    enc = TextEncoder(max_length=32)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        build(data, args.num, args.shard_size, args.size)
        print(
            f"dataset: {args.num} images {args.size}x{args.size} in {len(list_shards(data))} shards "
            f"({time.perf_counter() - t0:.1f}s to generate)"
        )
        common = dict(batch_size=args.batch_size, text_encoder=enc, seed=0)
        t0 = time.perf_counter()
        mem = ShardDataset(data, REWARDS, in_memory=True, **common)  # also warms the text cache
        print(
            f"in-memory load (decode all + encode {len(mem._memory['captions'])} unique captions): "
            f"{time.perf_counter() - t0:.1f}s"
        )
        for w in args.workers:
            ds = ShardDataset(data, REWARDS, num_workers=w, **common)
            results[f"streaming_workers{w}"] = measure(ds, args.batches)
        results["in_memory"] = measure(mem, args.batches * 4)
        results["streaming_workers0_no_text"] = measure(
            ShardDataset(data, REWARDS, batch_size=args.batch_size), args.batches
        )
    for k, v in results.items():
        print(f"{k:28s} {v:10.0f} images/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "images_per_s": results}, indent=2))


if __name__ == "__main__":
    main()
