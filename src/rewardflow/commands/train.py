"""`rewardflow train --config configs/X.yaml [key=value ...]`: one entry point for 1 CPU, 1 GPU,
K GPUs (`accelerate launch` / `torchrun --nproc_per_node=K`) and several nodes."""

from __future__ import annotations

import argparse

HELP = """\
Train a flow-matching denoiser (baseline, single-reward or MIRO) from a YAML config, with any
setting overridden as dotted key=value pairs (values parsed as YAML), e.g.
  rewardflow train --config configs/shapes-miro.yaml max_steps=2000 optim.lr=3e-4 out_dir=runs/m1

To resume, run the same command again: the newest checkpoint in out_dir is loaded and training
continues bit for bit. A changed setting is refused (the error lists each difference) unless
named with --allow-change. Multi-GPU / multi-node: launch this same command with
`accelerate launch -m rewardflow.cli train ...` or `torchrun --nproc_per_node=K -m rewardflow.cli train ...`;
data.batch_size is the GLOBAL batch, so the same config gives the same run on any number of GPUs.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a denoiser from a config (resumes automatically)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML training config (see configs/); omitted -> built-in defaults")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, e.g. optim.lr=3e-4 data.reward_keys=[sharpness] max_steps=500",
    )
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="on resume, accept a new value for KEY (dotted key, a section such as optim, "
        "world_size, or * for everything); repeatable",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from rewardflow.training import TrainConfig, Trainer

    config = TrainConfig.load(args.config, args.overrides)
    if args.print_config:
        print(config.to_json())
        return 0
    summary = Trainer(config, allow_changes=args.allow_change).train()
    if summary.get("step") is not None:
        print(
            f"done: step {summary['step']}, {summary['images_seen']} images, "
            f"{summary['skipped_steps']} skipped step(s); checkpoints in {summary['out_dir']}/checkpoints"
        )
    return 0
