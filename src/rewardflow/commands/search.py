"""`rewardflow target-search`: sweep reward targets on a prompt set, keep the best vector.

Example (the paper's hand-tuned aesthetic = 0.625, found automatically):

    rewardflow target-search --model runs/demo/pipeline --prompts shapes \\
        --sweep aesthetic_score=0:1:9 --metric geneval --out runs/search

Writes OUT/target_search.json (table + best vector) and OUT/target_search.md (a table).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from rewardflow.commands._common import add_sampling_args

    p = subparsers.add_parser(
        "target-search",
        help="find the reward-target vector that maximises a metric",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_sampling_args(p)
    p.add_argument(
        "--sweep",
        action="append",
        required=True,
        metavar="KEY=LO:HI:N|KEY=V1,V2",
        help="a reward target to sweep (repeatable: the grid is the cartesian product)",
    )
    p.add_argument("--reward", action="append", metavar="KEY=VALUE", help="fixed s+ for keys not swept (default 1)")
    p.add_argument(
        "--metric",
        default="geneval",
        help="geneval (needs GenEval metadata: --prompts shapes or a GenEval .jsonl) or reward:NAME",
    )
    p.add_argument("--minimize", action="store_true", help="pick the smallest metric instead")
    p.set_defaults(func=run)


def run(args) -> int:
    from rewardflow.commands._common import load_pipeline, parse_assignments
    from rewardflow.sampling.prompts import load_prompts
    from rewardflow.sampling.target_search import parse_sweep, reward_metric, target_search
    from rewardflow.shapes.geneval import geneval_metric
    from rewardflow.utils.atomic import atomic_write_bytes

    prompts, entries = load_prompts(args.prompts, args.max_prompts)
    if args.metric == "geneval":
        if not entries or "include" not in entries[0]:
            raise ValueError("--metric geneval needs GenEval metadata: use --prompts shapes or a GenEval .jsonl")
        from rewardflow.shapes.vocab import SHAPES

        other = sorted({o["class"] for e in entries for o in e["include"] if o["class"] not in SHAPES})
        if other:  # the evaluator detects ShapesWorld's shapes, not COCO objects
            raise ValueError(
                f"--metric geneval scores ShapesWorld images (objects {', '.join(SHAPES)}); these prompts ask for "
                f"{', '.join(other[:5])}{' ...' if len(other) > 5 else ''}. Use --prompts shapes, or "
                "--metric reward:NAME for other prompt sets"
            )
        metric = geneval_metric(entries)
    elif args.metric.startswith("reward:"):
        metric = reward_metric(args.metric.split(":", 1)[1])
    else:
        raise ValueError(f"--metric {args.metric!r}: expected geneval or reward:NAME")
    sweep = dict(parse_sweep(s) for s in args.sweep)
    pipe = load_pipeline(args.model, args.device, args.allow_download, args.variant)
    res = target_search(
        pipe,
        prompts,
        metric,
        sweep,
        base=parse_assignments(args.reward, "--reward"),
        negative_reward_targets=parse_assignments(args.negative_reward, "--negative-reward") or None,
        seed=args.seed,
        num_images_per_prompt=args.num_per_prompt,
        maximize=not args.minimize,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance,
        text_guidance_scale=args.text_guidance,
        num_inference_steps=args.steps,
        solver=args.solver,
        shift=args.shift,
        batch_size=args.batch_size,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "target_search.json", (res.to_json() + "\n").encode("utf-8"))
    atomic_write_bytes(out / "target_search.md", (res.to_markdown() + "\n").encode("utf-8"))
    print(res.to_markdown())
    print(f"best {res.metric_name} = {res.best_value:.4f} at {res.best}")
    return 0
