"""`rewardflow eval rewards`: a model's mean rewards on a prompt set (PartiPrompts, GenEval's
prompts, the ShapesWorld set or a file), the paper's reward table."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from .evaluate import _common

    r = sub.add_parser(
        "rewards",
        help="mean rewards of a model on a prompt set (PartiPrompts table)",
        description=(
            "Sample one image per prompt (image i has seed SEED + i) and score every image with each "
            "reward; writes OUT/rewards.json and OUT/rewards.md with the mean +- standard error per "
            "reward, and per category where the prompt set has one (PartiPrompts' Category, GenEval's "
            "tag). Shipped prompt sets: parti (PartiPrompts, Apache-2.0), geneval (GenEval's 553 "
            "prompts, MIT), shapes (the ShapesWorld set); or a .txt / .jsonl / .tsv file."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(r)
    r.add_argument("--prompts", default="parti", help="parti | geneval | shapes | FILE (default parti)")
    r.add_argument(
        "--rewards",
        required=True,
        help="comma-separated reward names (rewardflow score --list); 'paper': the paper's seven",
    )
    r.add_argument("--max-prompts", type=int, default=None, help="the first N prompts only")
    r.add_argument("--reward-batch-size", type=int, default=None, help="images per reward call (default: its own)")
    r.set_defaults(func=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from rewardflow.eval.reward_table import reward_table, to_markdown
    from rewardflow.rewards.registry import get_reward, parse_reward_list
    from rewardflow.sampling.prompts import load_prompts

    from .evaluate import _setup, _write

    names = parse_reward_list(args.rewards)
    kw = {"device": args.device} | ({"batch_size": args.reward_batch_size} if args.reward_batch_size else {})
    rewards = {n: get_reward(n, **kw) for n in names}  # unknown names and missing weights fail before sampling
    prompts, entries = load_prompts(args.prompts, args.max_prompts)
    cats = None
    if entries and all(("category" in e or "tag" in e) for e in entries):
        cats = [str(e.get("category", e.get("tag"))) for e in entries]
    pipe = _setup(args)
    t0 = time.perf_counter()
    sample_kw = dict(num_inference_steps=args.steps or 50, solver=args.solver)
    if args.guidance is not None:
        sample_kw["guidance_scale"] = args.guidance
    sample_kw.update(seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress)
    res = reward_table(pipe, prompts, rewards, cats, **sample_kw)
    res.update(model=str(args.model), prompts=args.prompts, seconds=time.perf_counter() - t0)
    title = f"Rewards of `{args.model}` on `{args.prompts}` ({res['settings'].get('num_inference_steps')} steps)"
    _write(Path(args.out), "rewards", res, to_markdown(res, title))
    return 0
