"""Images/s of the PIL preprocessing that ImageReward, VQAScore and jina-clip-v2 share (resize
of the shortest side with PIL bicubic, centre crop, normalise: per image, as the releases do),
with one thread against the parallel default (this process's share of the CPU cores).

    python benchmarks/pil_preprocess_speed.py [--size 512] [--images 32] [--repeats 5]

The two settings alternate within each repeat, so machine load hits both alike; the output is
the same tensor either way (checked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from rewardflow.rewards.backends.clip_common import PILPreprocessor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="target side (jina-clip-v2: 512, ImageReward: 224)")
    ap.add_argument("--images", type=int, default=32, help="images per batch")
    ap.add_argument("--source", type=int, nargs=2, default=(768, 1024), help="source image height width")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, *args.source, 3), dtype=np.uint8)
    one, par = PILPreprocessor(args.size, threads=1), PILPreprocessor(args.size)
    assert torch.equal(one(images, torch.device("cpu"), torch.float32), par(images, torch.device("cpu"), torch.float32))
    times: dict[str, list[float]] = {"1 thread": [], "parallel": []}
    for _ in range(args.repeats):
        for name, pre in (("1 thread", one), ("parallel", par)):
            t0 = time.perf_counter()
            pre(images, torch.device("cpu"), torch.float32)
            times[name].append(time.perf_counter() - t0)
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"{args.images} images {args.source[0]}x{args.source[1]} -> {args.size}, median of {args.repeats}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:<9} {args.images / v:8.1f} images/s")
    print(f"  ratio parallel / 1 thread: {med['1 thread'] / med['parallel']:.2f}x")


if __name__ == "__main__":
    main()
