"""`rewardflow demo --out runs/demo`: the whole MIRO loop on ShapesWorld in minutes on a CPU."""

from __future__ import annotations

import argparse

HELP = """\
Generate ShapesWorld, score it with every built-in reward, fit reward bins, train a baseline and a
MIRO model for the same number of steps, sample both with the same prompts and seeds, and write
OUT/report.html and OUT/report.md: training curves of every reward, a GenEval-style table per
category, sample grids, a per-reward control figure and a guidance-scale sweep.

Each stage is skipped when an earlier run finished it with the same settings, so an interrupted
demo resumes where it stopped (training resumes from its last checkpoint) and a changed setting
reruns only the stages it affects. Defaults take about 15 minutes on 2 CPU cores (docs/DEMO.md).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the end-to-end ShapesWorld demo and write a report",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", default="runs/demo", help="output directory (data, runs, models, report); default runs/demo"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes (a minute): checks that everything runs, the figures mean nothing",
    )
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default 2400)")
    p.add_argument("--num-images", type=int, default=None, help="ShapesWorld training images (default 5000)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1, or all cores when the machine is idle and they time clearly "
        "faster); on >= 2 cores the two models train at once, one process each, sharing them "
        "(--threads 1 or --set parallel_train=false trains one after the other)",
    )
    p.add_argument(
        "--config", default=None, help="YAML file of demo settings (see rewardflow.studies.config.DemoConfig)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set lr=5e-4 --set model_overrides.hidden_size=48; repeatable",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (stage banners stay)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from rewardflow.demo import DemoConfig, quick, run_demo

    sets = list(args.set)
    for flag, key in ((args.steps, "steps"), (args.num_images, "num_images"), (args.threads, "threads")):
        if flag is not None:
            sets.append(f"{key}={flag}")
    cfg = DemoConfig.load(args.config, sets, base=quick() if args.quick else None)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from rewardflow.utils.locks import FolderLock

    with FolderLock(args.out, "demo"):  # a second demo in this folder would redo and overwrite stages
        run_demo(cfg, args.out, progress=not args.no_progress)
    return 0
