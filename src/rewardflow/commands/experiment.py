"""`rewardflow experiment paper --out DIR`: the MIRO paper's experiments on ShapesWorld."""

from __future__ import annotations

import argparse
import shlex

HELP = """\
Train a baseline, a MIRO model and one single-reward model per built-in reward at equal compute
(same data, model, steps, batch and seed), then measure what the paper claims:
  (a) training speedup per reward (steps for MIRO to reach the baseline's final score, linear
      interpolation between the periodic evaluations);
  (b) GenEval-style accuracy per category for every model;
  (c) a reward radar of every model on every reward (reward hacking of single-reward models);
  (d) test-time scaling curves, best-of-N for N = 1..32, baseline vs MIRO, per reward;
  (e) a target sweep of one quality reward vs GenEval-style overall (the paper's 0.625 experiment).
Writes OUT/results.md, OUT/results.json (every measured number) and OUT/figures/*.png (and
--results-md PATH with its figures beside it).

World, model, optimiser and schedule are the demo's defaults (rewardflow demo); any setting of
either the demo or the experiment can be changed with --set KEY=VALUE. Stages finished by an
earlier run with the same settings are skipped, so rerunning resumes.

Every model samples at its own default guidance, chosen on held-out prompts after training and
saved in its folder, with the shared w beside it. The baseline's and MIRO's EMA weights are kept
at every evaluation (OUT/runs/NAME/eval_weights, 46 MB each at the defaults) so that their
training curves, logged at the shared w, are sampled again at their own guidance.

Duration (docs/RESULTS.md): --steps 2400 --set eval_prompts=96 summed to about 60 min of stages
on 2 quiet CPU cores (7 min of training per model); training time scales with --steps.
--quick runs the same stages at toy size in about a minute (figures mean
nothing). tuned_targets ({reward: s+}, unnamed rewards 1) evaluates MIRO a second time at that
target vector: its own curves, speedup rows and GenEval-style table (`miro_tuned`).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="reproduce the MIRO paper's experiments on ShapesWorld",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="experiment", metavar="<experiment>")
    q = sub.add_parser(
        "paper",
        help="speedup, GenEval table, reward radar, test-time scaling, target sweep",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--out", default="runs/paper", help="output directory; default runs/paper")
    q.add_argument("--steps", type=int, default=None, help="training steps of every model (default: the demo's)")
    q.add_argument(
        "--eval-every", type=int, default=None, help="steps between points of the eval curves (default steps / 12)"
    )
    q.add_argument("--num-images", type=int, default=None, help="ShapesWorld training images")
    q.add_argument("--tts-max-n", type=int, default=None, help="largest N of the best-of-N curves (default 32)")
    q.add_argument("--no-single", action="store_true", help="skip the single-reward models (no radar of them)")
    q.add_argument("--quick", action="store_true", help="toy sizes (about a minute): checks that everything runs")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    q.add_argument("--config", default=None, help="YAML file of demo and/or experiment settings")
    q.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a demo setting (e.g. lr=5e-4) or an experiment one (e.g. sweep_reward=sharpness)",
    )
    q.add_argument(
        "--results-md",
        default=None,
        metavar="PATH",
        help="also write the results there (e.g. docs/RESULTS.md), figures in PATH's folder/results_figures",
    )
    q.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")
    q.add_argument("--no-progress", action="store_true", help="hide progress bars (stage banners stay)")
    q.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run(args) -> int:
    import json

    from rewardflow.experiments import load_configs, run_paper

    sets = list(args.set)
    for flag, key in (
        (args.steps, "steps"),
        (args.eval_every, "eval_every"),
        (args.num_images, "num_images"),
        (args.threads, "threads"),
        (args.tts_max_n, "tts_max_n"),
    ):
        if flag is not None:
            sets.append(f"{key}={flag}")
    if args.no_single:
        sets.append("single_reward_models=false")
    cfg, paper = load_configs(args.config, sets, args.quick)
    if args.print_config:
        print(json.dumps({"demo": cfg.to_dict(), "paper": vars(paper)}, indent=2))
        return 0
    command = _command(args)
    from rewardflow.utils.locks import FolderLock

    with FolderLock(args.out, "experiment"):
        run_paper(cfg, paper, args.out, progress=not args.no_progress, command=command, results_md=args.results_md)
    return 0


def _command(args) -> str:
    """The command line that reproduces this run, rebuilt from the parsed options (so it is right
    however the CLI was entered: console script, `python -m`, or `main([...])` in a test)."""
    parts = ["rewardflow", "experiment", "paper"]
    for opt, value in (
        ("--quick", args.quick),
        ("--out", args.out),
        ("--steps", args.steps),
        ("--eval-every", args.eval_every),
        ("--num-images", args.num_images),
        ("--tts-max-n", args.tts_max_n),
        ("--no-single", args.no_single),
        ("--threads", args.threads),
        ("--config", args.config),
        ("--results-md", args.results_md),
    ):
        if value is True:
            parts.append(opt)
        elif value not in (None, False):
            parts += [opt, str(value)]
    for s in args.set:
        parts += ["--set", s]
    return " ".join(shlex.quote(p) for p in parts)
