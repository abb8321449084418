"""clip_score (our jina-clip-v2) at its real size on random weights: images/s of the whole
reward (PIL preprocessing + both towers + score) and of the towers alone on ready pixels, so the
preprocessing's share shows. The release is written first (865M numbers, 1.7 GB in bf16) in
jina-clip-v2's layout with its real shapes; nothing is downloaded.

    python benchmarks/jina_clip_speed.py --device cuda [--batch 32] [--repeats 5]   # the GPU check
    python benchmarks/jina_clip_speed.py --batch 2 --repeats 1                     # a CPU smoke run

Source images are 768 x 1024 random uint8 (resized to 512 as the release does); captions are
short. Median of --repeats timed batches after one warm-up batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "rewards"))
    from jina_release import REAL_TEXT, REAL_VISION, REAL_VOCAB, write_release

    from rewardflow.rewards import get_reward

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch, 768, 1024, 3), dtype=np.uint8)
    captions = [f"a photo of object number {i} on a wooden table" for i in range(args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_release(Path(tmp), vision=REAL_VISION, text=REAL_TEXT, vocab_size=REAL_VOCAB)
        t1 = time.perf_counter()
        # random weights, not jina's CC-BY-NC-4.0 ones: nothing to accept
        r = get_reward("clip_score", path=tmp, accept_license=True, device=args.device, dtype=args.dtype)
        r.ensure_loaded()
        t2 = time.perf_counter()
        px = r.preprocess(images, r.device, r.dtype)
        scores = r.score(images, captions)
        if not torch.isfinite(scores).all():
            raise SystemExit(f"non-finite scores at this size: {scores.tolist()}")
        with torch.inference_mode():
            whole = timed(lambda: r.score(images, captions), args.device, args.repeats)
            towers = timed(lambda: r.model.vision_model(px), args.device, args.repeats)
            pre = timed(lambda: r.preprocess(images, r.device, r.dtype), "cpu", args.repeats)
    mem = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else float("nan")
    print(f"load average {os.getloadavg()[0]:.2f}, device {args.device}, dtype {r.dtype}, batch {args.batch}")
    print(f"  write release {t1 - t0:.1f} s, load {t2 - t1:.1f} s, peak GPU memory {mem:.1f} GiB")
    print(f"  clip_score, whole reward:     {args.batch / whole:8.1f} images/s")
    print(f"  image tower on ready pixels:  {args.batch / towers:8.1f} images/s")
    print(f"  PIL preprocessing alone:      {args.batch / pre:8.1f} images/s")
    print(f"  scores finite, e.g. {scores[:3].tolist()}")


if __name__ == "__main__":
    main()
