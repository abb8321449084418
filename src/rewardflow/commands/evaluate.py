"""`rewardflow eval`: measurements of a trained pipeline on ShapesWorld.

    rewardflow eval control --model runs/demo/models/miro --out runs/eval/control
    rewardflow eval geneval --model runs/demo/models/baseline --out runs/eval/geneval_baseline

`control` runs the reward-control acceptance checks (see rewardflow.shapes.control): per-reward
target sweeps with Spearman, isolate(k) vs high quality, a guidance-scale sweep with the GenEval-
style overall, a batch-1 vs batch-8 seed check and best-of-N curves. `geneval` samples the
GenEval-style prompt set once and writes the per-category table. Both write JSON + Markdown.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="pipeline folder, training checkpoint step_*/ or run dir")
    p.add_argument("--out", required=True, help="output directory (JSON + Markdown)")
    p.add_argument("--steps", type=int, default=None, help="ODE steps per image (default 50; --quick 4)")
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="CFG scale w where not swept (default: the model folder's saved guidance, else 7; eval control "
        "takes the saved scale and text scale, not a saved guidance interval)",
    )
    p.add_argument("--solver", choices=["euler", "heun"], default="euler")
    p.add_argument("--batch-size", type=int, default=64, help="images per network batch (default 64)")
    p.add_argument("--seed", type=int, default=0, help="base seed; image i of a prompt set gets SEED + i")
    p.add_argument(
        "--max-count",
        type=int,
        default=2,
        help="drop prompts asking for more objects of a class than the world shows (easy world: 2; 0 = keep all)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure a trained model (reward control, GenEval-style table)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="eval_command", metavar="<what>")
    _control_parser(sub)
    _geneval_parser(sub)
    from ._eval_rewards import add_parser

    add_parser(sub)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _control_parser(sub) -> None:
    c = sub.add_parser(
        "control",
        help="reward-control acceptance measurements of a MIRO model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(c)
    c.add_argument(
        "--images-per-level",
        type=int,
        default=64,
        help="prompts (one seed each) per target level, also used for isolate (default 64)",
    )
    c.add_argument("--levels", type=_floats, default=(0.0, 0.25, 0.5, 0.75, 1.0), help="s+ levels, comma-separated")
    c.add_argument(
        "--scales",
        type=_floats,
        default=(0.0, 1.0, 2.0, 3.0, 5.0, 7.0),
        help="guidance scales of the sweep, comma-separated (default 0,1,2,3,5,7)",
    )
    c.add_argument(
        "--others", type=float, default=1.0, help="s+ of the rewards not being swept in the control section (default 1)"
    )
    c.add_argument(
        "--fixed",
        default=None,
        metavar="KEY=V,...",
        help="control section: s+ of named non-swept rewards, overriding --others; isolate section: the "
        "anchor, those rewards held at V in both branches (and in the references)",
    )
    c.add_argument(
        "--sweep-targets",
        default=None,
        metavar="KEY=V,...",
        help="s+ for the guidance sweep (unnamed rewards 1, s- = 0); default: all 1",
    )
    c.add_argument(
        "--text-guidance",
        type=float,
        default=None,
        metavar="W_T",
        help="three-branch guidance: text scale W_T, with --guidance as the reward scale (the reward "
        "contrast then shares the prompt's text; w = 0, the plain reference and the sweep's first "
        "row, stays unguided); default: the two-branch MIRO formula",
    )
    c.add_argument("--sweep-images", type=int, default=96, help="GenEval-style prompts per scale (default 96)")
    c.add_argument("--bon-prompts", type=int, default=32, help="prompts for best-of-N (default 32)")
    c.add_argument("--bon-ns", default="1,2,4,8,16", help="N values, comma-separated (default 1,2,4,8,16)")
    c.add_argument("--rewards", default=None, help="comma-separated subset of the model's reward keys")
    c.add_argument("--only", default=None, help="comma-separated sections: control,isolate,guidance,seeds,best_of_n")
    c.add_argument("--quick", action="store_true", help="toy counts (a smoke test; the figures mean nothing)")
    c.set_defaults(func=run_control)


def _geneval_parser(sub) -> None:
    g = sub.add_parser("geneval", help="GenEval-style table (per category + overall) of any model")
    _common(g)
    g.add_argument("--per-category", type=int, default=16, help="prompts per category (default 16)")
    g.add_argument(
        "--reward",
        action="append",
        metavar="KEY=VALUE",
        help="s+ target (repeatable or comma-separated; unnamed rewards 1; MIRO models only)",
    )
    g.add_argument(
        "--negative-reward",
        action="append",
        metavar="KEY=VALUE",
        help="s- target (unnamed rewards 0), e.g. colorfulness=0.5 with --reward colorfulness=0.5 "
        "for no contrast on that reward",
    )
    g.set_defaults(func=run_geneval)


def _setup(args):
    import torch

    from rewardflow.commands._common import load_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_pipeline(args.model, args.device)


def _write(out: Path, stem: str, data: dict, markdown: str) -> None:
    import json

    from rewardflow.utils.atomic import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{stem}.json", (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(out / f"{stem}.md", (markdown + "\n").encode("utf-8"))
    print(markdown)
    print(f"wrote {out / stem}.json and .md")


def _command() -> str:
    return "rewardflow " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("rewardflow") else ""


def run_control(args) -> int:
    from rewardflow.commands._common import parse_assignments
    from rewardflow.shapes.control import SECTIONS, ControlSettings, run_control

    pipe = _setup(args)
    guidance, text_guidance = _saved_guidance(pipe, args)
    given = dict(steps=args.steps, guidance=guidance)  # unset: the settings' (or --quick's) defaults
    kw = dict(
        {k: v for k, v in given.items() if v is not None},
        solver=args.solver,
        batch_size=args.batch_size,
        seed=args.seed,
        max_count=args.max_count or None,
        others=args.others,
        text_guidance=text_guidance,
        sweep_targets=tuple(
            parse_assignments([args.sweep_targets] if args.sweep_targets else [], "--sweep-targets").items()
        ),
        fixed=tuple(parse_assignments([args.fixed] if args.fixed else [], "--fixed").items()),
    )
    if args.only:
        kw["sections"] = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(kw["sections"]) - set(SECTIONS)
        if unknown:
            raise ValueError(f"--only: unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    if args.quick:
        s = ControlSettings.quick(**kw)
    else:
        ns = tuple(int(v) for v in args.bon_ns.split(",") if v.strip())
        s = ControlSettings(
            images_per_level=args.images_per_level,
            levels=args.levels,
            scales=args.scales,
            sweep_images=args.sweep_images,
            bon_prompts=args.bon_prompts,
            bon_ns=ns,
            **kw,
        )
    keys = [k.strip() for k in args.rewards.split(",")] if args.rewards else None
    rep = run_control(pipe, s, keys=keys, model=str(args.model), progress=not args.no_progress, command=_command())
    _write(Path(args.out), "control", rep.to_dict(), rep.to_markdown())
    return 0


def _saved_guidance(pipe, args) -> tuple[float | None, float | None]:
    """(w, w_text) for eval control: the command line's, else the default guidance a sweep chose
    and saved in the model folder (as `eval geneval` and `rewardflow sample` use), else None (the
    control settings' own default)."""
    if args.guidance is not None or "guidance_choice" not in pipe.config:
        return args.guidance, args.text_guidance
    c = pipe.config
    w_t = args.text_guidance if args.text_guidance is not None else c.get("text_guidance_scale")
    print(f"guidance: the folder's saved default w = {c['guidance_scale']:g}" + (f", w_text = {w_t:g}" if w_t else ""))
    return float(c["guidance_scale"]), w_t


def _vector(t: dict) -> str:
    from rewardflow.sampling.targets import format_target

    return "{" + ", ".join(f"{k}: {format_target(v)}" for k, v in t.items()) + "}"


def run_geneval(args) -> int:
    import time

    from rewardflow.commands._common import parse_assignments
    from rewardflow.shapes import CATEGORIES
    from rewardflow.shapes.control import balanced_entries
    from rewardflow.shapes.geneval import evaluate

    pos, neg = parse_assignments(args.reward, "--reward"), parse_assignments(args.negative_reward, "--negative-reward")
    pipe = _setup(args)
    tg = pipe.resolve_targets(pos or None, neg or None)  # fails before sampling: unknown key, out of range, baseline
    entries = balanced_entries(args.per_category * len(CATEGORIES), args.max_count or None)
    t0 = time.perf_counter()
    args.steps = args.steps or 50
    out = pipe(
        [e["prompt"] for e in entries],
        seed=args.seed,
        guidance_scale=args.guidance,  # None: the folder's
        num_inference_steps=args.steps,
        solver=args.solver,
        output_type="np",
        batch_size=args.batch_size,
        progress=not args.no_progress,
        reward_targets=pos or None,
        negative_reward_targets=neg or None,
    )
    res, wall = evaluate(out.images, entries), time.perf_counter() - t0
    from rewardflow.studies.evaluate import guidance_label

    used = guidance_label(out.settings)
    targets = f"{_vector(out.reward_targets)}, s- = {_vector(out.negative_reward_targets)}" if tg else "none (baseline)"
    md = "\n".join(
        [
            f"GenEval-style (strict, exact counts) of `{args.model}`: {len(entries)} prompts, {args.steps} "
            f"{args.solver} steps, {used}, s+ = {targets}, seed {args.seed}, {wall:.0f} s.",
            "",
            "| category | accuracy | n |",
            "|---|---|---|",
            *[f"| {c} | {a:.3f} | {res.counts[c]} |" for c, a in res.per_category.items()],
            f"| **overall** | **{res.overall:.3f}** | {len(entries)} |",
        ]
    )
    data = dict(
        res.to_dict(),
        model=str(args.model),
        steps=args.steps,
        guidance=out.settings["guidance_scale"],
        text_guidance=out.settings["text_guidance_scale"],
        guidance_interval=out.settings["guidance_interval"],
        seed=args.seed,
        reward_targets=out.reward_targets,
        negative_reward_targets=out.negative_reward_targets,
        wall_s=wall,
        command=_command(),
        per_image=[{k: r[k] for k in ("tag", "prompt", "correct", "reason")} for r in res.per_image],
    )
    _write(Path(args.out), "geneval", data, md)
    return 0
