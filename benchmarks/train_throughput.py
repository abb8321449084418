"""Training throughput and model FLOP utilisation (MFU) of the real Trainer step on this CPU.

MFU = (images/s x 3 x analytic forward FLOPs per image) / (this machine's measured fp32 matmul
rate). The step includes everything the trainer does per step (per-step seeded noise, loss,
backward, grad clipping, the cross-rank NaN check, AdamW, EMA update); data is a fixed
synthetic batch, so data loading is excluded (benchmarks/dataloader_speed.py measures it).

    python benchmarks/train_throughput.py [--presets dit-tiny,dit-small] [--batch 32] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def matmul_rate(n: int = 2048, reps: int = 10, dtype=torch.float32, device="cpu") -> float:
    """Best sustained FLOP/s of an n x n x n matmul (the denominator of MFU)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(reps):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def bench_preset(
    preset: str,
    batch: int,
    steps: int,
    warmup: int,
    text_len: int,
    num_rewards: int,
    precision: str = "fp32",
    compile: bool = False,
    device_sync=None,
) -> dict:
    from rewardflow.models import forward_flops
    from rewardflow.training import TrainConfig, Trainer
    from rewardflow.training.synthetic import SyntheticData

    keys = [f"r{i}" for i in range(num_rewards)]
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig.load(
            None,
            [
                f"model.preset={preset}",
                f"data.batch_size={batch}",
                f"out_dir={out}",
                "progress=false",
                "tensorboard=false",
                f"precision={precision}",
                f"compile={str(compile).lower()}",
                f"data.reward_keys=[{','.join(keys)}]" if keys else "data.mode=baseline",
            ],
        )

        def data(ctx):
            m = ctx.config.model
            from rewardflow.models import model_config_from_preset

            mc = model_config_from_preset(m.preset)
            return SyntheticData(
                ctx,
                channels=mc.in_channels,
                image_size=mc.image_size,
                text_len=text_len,
                text_dim=mc.text_dim,
                fixed=True,
            )

        from rewardflow.models import model_config_from_preset

        image_size = model_config_from_preset(preset).image_size
        cfg.data.image_size = image_size
        tr = Trainer(cfg, data=data, callbacks=[])
        tr.raw_model.validate_inputs = False  # input checks cost a device sync; data is trusted here
        tr._iter = iter(tr.data)
        t_compile = time.perf_counter()
        for _ in range(warmup):
            tr.train_step()
        if device_sync:
            device_sync()
        t0 = time.perf_counter()
        warm_s = t0 - t_compile
        for _ in range(steps):
            tr.train_step()
        if device_sync:
            device_sync()
        dt = time.perf_counter() - t0
        fwd = forward_flops(tr.raw_model.config, batch_size=1, text_len=text_len)
        params = sum(p.numel() for p in tr.raw_model.parameters())
    ips = steps * batch / dt
    return {
        "preset": preset,
        "params": params,
        "batch": batch,
        "steps": steps,
        "precision": precision,
        "compile": compile,
        "images_per_s": ips,
        "step_s": dt / steps,
        "warmup_s": warm_s,
        "train_flops_per_image": 3 * fwd,
        "achieved_flop_s": ips * 3 * fwd,
        "skipped": tr.skipped_steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="dit-tiny,unet-tiny,dit-small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--text-len", type=int, default=32)
    ap.add_argument("--rewards", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_rate()
    rows = []
    for preset in args.presets.split(","):
        r = bench_preset(preset, args.batch, args.steps, args.warmup, args.text_len, args.rewards)
        r["mfu"] = r["achieved_flop_s"] / peak
        rows.append(r)
    print(f"CPU fp32 matmul rate (2048^3, {torch.get_num_threads()} threads): {peak / 1e9:.1f} GFLOP/s")
    print("| preset | params | batch | images/s | step (s) | train GFLOP/img | achieved GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['params'] / 1e6:.2f}M | {r['batch']} | {r['images_per_s']:.1f} | "
            f"{r['step_s']:.3f} | {r['train_flops_per_image'] / 1e9:.3f} | {r['achieved_flop_s'] / 1e9:.1f} | "
            f"{100 * r['mfu']:.1f}% |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"matmul_flop_s": peak, "threads": torch.get_num_threads(), "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
