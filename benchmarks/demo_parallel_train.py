"""Demo training: two models at once (one process each, threads split) vs one after the other.

What `rewardflow demo` chooses on >= 2 cores. Each worker runs the real Trainer step of the demo's
model (its preset, overrides, batch and reward keys) on a fixed synthetic batch for --steps steps.
Per repetition, side by side in one run:
  sequential: one process with all --threads, --steps steps, timed, then doubled (two models);
  parallel:   two processes started together with threads // 2 each (at least 1), wall time
              until both finish.
Reported: the median over --reps of each wall time and of their ratio (> 1: parallel is faster).

    python benchmarks/demo_parallel_train.py [--steps 300] [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def worker(threads: int, steps: int, warmup: int) -> None:
    import torch

    from rewardflow.demo import DemoConfig
    from rewardflow.training import TrainConfig, Trainer
    from rewardflow.training.synthetic import SyntheticData

    torch.set_num_threads(threads)
    d = DemoConfig()
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig.from_dict(
            dict(
                model=dict(preset=d.model_preset, overrides=dict(d.model_overrides)),
                data=dict(reward_keys=list(d.rewards), batch_size=d.batch_size, image_size=32),
                optim=dict(lr=d.lr, warmup_steps=d.warmup_steps),
                ema=dict(decay=d.ema_decay),
                progress=False,
                tensorboard=False,
                out_dir=out,
            )
        )

        def data(ctx):
            return SyntheticData(ctx, channels=3, image_size=32, text_len=32, text_dim=384, fixed=True)

        tr = Trainer(cfg, data=data, callbacks=[])
        tr._iter = iter(tr.data)
        for _ in range(warmup):
            tr.train_step()
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step()
        print(json.dumps({"threads": threads, "steps": steps, "seconds": time.perf_counter() - t0}), flush=True)


def _launch(threads: int, steps: int, warmup: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            "--threads",
            str(threads),
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="timed training steps per model (default 300)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="threads in all (default 2, this machine's cores)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.threads, args.steps, args.warmup)
    per = max(1, args.threads // 2)
    seq, par, ratio = [], [], []
    for rep in range(args.reps):
        p = _launch(args.threads, args.steps, args.warmup)
        one = json.loads(p.communicate()[0].strip().splitlines()[-1])["seconds"]
        t0 = time.perf_counter()
        procs = [_launch(per, args.steps, args.warmup) for _ in range(2)]
        timed = [json.loads(q.communicate()[0].strip().splitlines()[-1])["seconds"] for q in procs]
        wall = time.perf_counter() - t0  # includes both workers' start-up; the sequential figure does not
        seq.append(2 * one)
        par.append(max(timed))
        ratio.append(2 * one / max(timed))
        print(
            f"rep {rep}: sequential 2 x {one:.1f} s ({args.threads} threads), parallel {max(timed):.1f} s "
            f"(2 processes x {per} thread(s); wall with start-up {wall:.1f} s)",
            flush=True,
        )
    print(
        f"\n{args.steps} steps per model, median of {args.reps}: sequential {statistics.median(seq):.1f} s, "
        f"parallel {statistics.median(par):.1f} s, ratio {statistics.median(ratio):.2f}x "
        f"({2 * args.steps / statistics.median(par):.1f} vs {2 * args.steps / statistics.median(seq):.1f} steps/s)"
    )


if __name__ == "__main__":
    main()
