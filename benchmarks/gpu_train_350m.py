"""GPU check: the ~350M preset in bf16, with and without torch.compile, 100 steps at
batch 64 on synthetic tensors through the real Trainer step; images/s, peak memory and MFU.

MFU is reported against 790 TFLOP/s (the H200's measured dense bf16 rate) and against the rate
this script measures itself with a large bf16 matmul. Writes JSON to --out (default $OUT or .).
Budget: under 5 minutes on an H200 (compilation is most of it).

    python benchmarks/gpu_train_350m.py [--steps 100] [--batch 64] [--no-compile]

NOT YET RUN ON A GPU (written without one at hand).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import bench_preset, matmul_rate  # noqa: E402

H200_BF16 = 790e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="dit-350m")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--text-len", type=int, default=128)
    ap.add_argument("--rewards", type=int, default=7, help="the paper's 7 reward tokens")
    ap.add_argument("--no-compile", action="store_true", help="only the eager run")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this is the GPU check (benchmarks/train_throughput.py is the CPU one)")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.cuda.get_device_name(0)
    measured = matmul_rate(n=8192, reps=20, dtype=torch.bfloat16, device="cuda")
    print(f"{dev}: measured bf16 matmul {measured / 1e12:.0f} TFLOP/s (reference {H200_BF16 / 1e12:.0f})", flush=True)
    results = []
    for compile in [False] if args.no_compile else [False, True]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        r = bench_preset(
            args.preset,
            args.batch,
            args.steps,
            args.warmup,
            args.text_len,
            args.rewards,
            precision="bf16",
            compile=compile,
            device_sync=torch.cuda.synchronize,
        )
        r.update(
            peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30,
            wall_s=time.perf_counter() - t0,
            mfu_vs_790=r["achieved_flop_s"] / H200_BF16,
            mfu_vs_measured=r["achieved_flop_s"] / measured,
        )
        results.append(r)
        print(
            f"compile={compile}: {r['images_per_s']:.0f} img/s, {r['step_s'] * 1e3:.0f} ms/step, "
            f"peak {r['peak_memory_gib']:.1f} GiB, MFU {100 * r['mfu_vs_790']:.1f}% of 790 TFLOP/s "
            f"({100 * r['mfu_vs_measured']:.1f}% of measured), warmup {r['warmup_s']:.0f}s, "
            f"skipped {r['skipped']}",
            flush=True,
        )
    out = Path(args.out) / f"gpu_train_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "device": dev,
                "torch": torch.__version__,
                "measured_bf16_flop_s": measured,
                "reference_flop_s": H200_BF16,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
