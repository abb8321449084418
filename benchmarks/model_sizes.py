"""Parameter counts and forward FLOPs of every model preset; optionally CPU training speed.

    python benchmarks/model_sizes.py                       # table of all presets (meta device, instant)
    python benchmarks/model_sizes.py --num-rewards 7 --text-len 120
    python benchmarks/model_sizes.py --speed unet-demo dit-demo --batch 64 --steps 5

FLOPs are analytic (2 x MACs of matmuls / convs / attention, see rewardflow.models.flops) for one
forward of ONE image; a training step costs ~3x, a CFG sampling step 2x.
"""

from __future__ import annotations

import argparse
import time

import torch

from rewardflow.models import PRESETS, build_model, count_parameters, forward_flops, model_config_from_preset


def table(num_rewards: int, text_len: int) -> None:
    print(
        f"{'preset':<11} {'backbone':<8} {'input':<10} {'params':>12} {'GFLOPs/img fwd':>15}  "
        f"(N={num_rewards}, L={text_len})"
    )
    for name in PRESETS:
        c = model_config_from_preset(name, num_rewards=num_rewards)
        shape = f"{c.in_channels}x{c.image_size}x{c.image_size}"
        n = count_parameters(c)
        f = forward_flops(c, batch_size=1, text_len=text_len)
        print(f"{name:<11} {c.backbone:<8} {shape:<10} {n:>12,} {f / 1e9:>15.3f}")


def train_speed(name: str, batch: int, steps: int, num_rewards: int, text_len: int) -> float:
    """Images/s of a full training step (forward + backward + AdamW) on random data."""
    torch.manual_seed(0)
    c = model_config_from_preset(name, num_rewards=num_rewards)
    model = build_model(c).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, c.in_channels, c.image_size, c.image_size)
    t = torch.rand(batch)
    text = torch.randn(batch, text_len, c.text_dim)
    mask = torch.ones(batch, text_len, dtype=torch.bool)
    rewards = torch.rand(batch, num_rewards) if num_rewards else None
    target = torch.randn_like(x)

    def step() -> None:
        loss = (model(x, t, text, mask, rewards) - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocator, oneDNN kernels)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best, med = min(times), sorted(times)[len(times) // 2]
    print(
        f"{name:<11} params {count_parameters(c):>10,}  batch {batch}: median {batch / med:7.1f} img/s "
        f"(best {batch / best:7.1f}), {torch.get_num_threads()} threads"
    )
    return batch / med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-rewards", type=int, default=4, help="reward tokens per sample (default 4)")
    ap.add_argument("--text-len", type=int, default=16, help="text tokens per sample (default 16)")
    ap.add_argument("--speed", nargs="*", metavar="PRESET", help="also time a CPU training step for these presets")
    ap.add_argument("--batch", type=int, default=64, help="batch size for --speed (default 64)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps for --speed (default 5)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for --speed (0 = torch default)")
    args = ap.parse_args()
    table(args.num_rewards, args.text_len)
    if args.speed:
        if args.threads:
            torch.set_num_threads(args.threads)
        print()
        for name in args.speed:
            train_speed(name, args.batch, args.steps, args.num_rewards, args.text_len)


if __name__ == "__main__":
    main()
