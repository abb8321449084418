"""Throughput of ShapesWorld generation, end to end (scene, render, degrade, PNG, tar shards).

    python benchmarks/shapes_generation.py [--num 20000] [--size 32] [--preset full] [--workers 1]

Prints images/s for the full `generate_dataset` path and for generate_sample alone, per
wall-clock second and per CPU second of this process (the one-core figure; on a shared machine
wall-clock rates understate it). With --workers > 1 only the wall-clock rate is meaningful.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from rewardflow.shapes import SHAPES_PRESETS, generate_dataset, generate_sample, sample_seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=20000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--preset", default="full", choices=sorted(SHAPES_PRESETS))
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    cfg = SHAPES_PRESETS[args.preset].replace(size=args.size)

    n = min(args.num, 5000)
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        generate_sample(cfg, sample_seed(0, i))
    sample_wall, sample_cpu = n / (time.perf_counter() - t), n / (time.process_time() - c)

    with tempfile.TemporaryDirectory() as d:
        t, c = time.perf_counter(), time.process_time()
        generate_dataset(cfg, args.num, d, seed=0, shard_size=1000, workers=args.workers, progress=False)
        data_wall, data_cpu = args.num / (time.perf_counter() - t), args.num / (time.process_time() - c)
    print(f"preset={args.preset} size={args.size} workers={args.workers}")
    print(f"generate_sample only:        {sample_wall:8.0f} images/s wall  {sample_cpu:8.0f} images/CPU-s")
    print(f"generate_dataset (png+tar):  {data_wall:8.0f} images/s wall  {data_cpu:8.0f} images/CPU-s")


if __name__ == "__main__":
    main()
