"""Argument helpers shared by the sampling commands (sample, target-search, eval): KEY=VALUE
reward assignments, target modes, the common sampling options, and loading a model given as a
pipeline folder, a training checkpoint or a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

UNSPECIFIED_WORDS = ("none", "null")  # KEY=none: leave that reward unspecified (its null token)


def parse_assignments(items: list[str] | None, what: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for item in items or []:
        for part in item.split(","):
            key, sep, val = part.partition("=")
            if not sep:
                raise ValueError(f"{what} {part!r} must look like key=value")
            if val.strip().lower() in UNSPECIFIED_WORDS:
                out[key.strip()] = None
                continue
            try:
                out[key.strip()] = float(val)
            except ValueError:
                raise ValueError(
                    f"{what} {part!r}: value must be a number in [0, 1] (or 'none': unspecified)"
                ) from None
    return out


def mode_targets(pipe, mode: str, anchor: dict | None = None):
    """'high' | 'isolate:KEY' | 'pairwise:A,B,T' -> RewardTargets (None for a baseline model);
    ``anchor`` holds the other rewards of isolate / pairwise at those levels in both branches."""
    from rewardflow.sampling import targets as T

    name, _, arg = mode.partition(":")
    if anchor and name not in ("isolate", "pairwise"):
        raise ValueError(
            f"--anchor applies to --mode isolate:KEY or pairwise:A,B,T, not {mode!r}; "
            "for other modes set levels with --reward / --negative-reward"
        )
    if name == "high":
        return T.high_quality(pipe.reward_keys) if pipe.reward_keys else None
    if name == "isolate" and arg:
        return T.isolate(pipe.reward_keys, arg, anchor)
    if name == "pairwise" and arg.count(",") == 2:
        a, b, t = arg.split(",")
        return T.pairwise(pipe.reward_keys, a, b, float(t), anchor)
    raise ValueError(f"--mode {mode!r}: expected high, isolate:KEY or pairwise:A,B,T")


def load_pipeline(spec: str, device: str = "cpu", allow_download: bool = False, variant: str | None = None):
    """A pipeline folder / hub id (ours or a released MIRO checkpoint, ``variant`` a subfolder of
    it), a training checkpoint (step_*/), or a run dir (its latest checkpoint)."""
    from rewardflow.sampling.pipeline import CONFIG_NAME, RewardFlowPipeline

    p = Path(spec).expanduser()
    if p.is_dir() and not variant and not (p / CONFIG_NAME).is_file():
        if (p / "checkpoints").is_dir():
            from rewardflow.training.checkpoint import newest_valid_checkpoint

            p = newest_valid_checkpoint(p) or p  # a damaged newest checkpoint is skipped, with a warning
        if (p / "train_config.json").is_file():
            return RewardFlowPipeline.from_checkpoint(p, device=device, allow_download=allow_download)
    return RewardFlowPipeline.from_pretrained(spec, device=device, allow_download=allow_download, variant=variant)


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Options shared by `sample` and `target-search`."""
    p.add_argument(
        "--model",
        required=True,
        help="pipeline folder or hub id (HF cache; released MIRO checkpoints such as nicolas-dufour/miro too), "
        "training checkpoint step_*/ or run dir (its latest checkpoint)",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="a subfolder of --model: the released ablations, e.g. --model nicolas-dufour/miro-ablations "
        "--variant miro-no-clip",
    )
    p.add_argument(
        "--prompts",
        required=True,
        help='FILE (.txt one per line, .jsonl with "prompt", '
        ".tsv with a Prompt column), 'shapes' (the shipped ShapesWorld set) or a prompt text",
    )
    p.add_argument("--max-prompts", type=int, default=None, help="use only the first N prompts")
    p.add_argument(
        "--negative-reward",
        action="append",
        metavar="KEY=VALUE",
        help="s- for a reward (repeatable or comma-separated); others default to 0; "
        "KEY=none leaves it unspecified (models trained with reward dropout)",
    )
    p.add_argument("--negative-prompt", default=None, help="negative text; default: the model's learned null text")
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="reward(+text) CFG scale w (default: the model folder's saved guidance, else 7); given "
        "alone it means plain two-branch CFG, whatever the folder's saved setting",
    )
    p.add_argument(
        "--text-guidance",
        type=float,
        default=None,
        help="separate text scale: switches to the 3-branch mode (--guidance is then the reward scale)",
    )
    p.add_argument(
        "--guidance-interval",
        default=None,
        metavar="LO,HI",
        help="guide only while LO <= t <= HI (t = 1 is noise), e.g. 0,0.6",
    )
    p.add_argument("--steps", type=int, default=None, help="ODE steps (default: pipeline's, 50)")
    p.add_argument("--solver", choices=["euler", "heun"], default=None, help="ODE solver (default euler)")
    p.add_argument("--shift", type=float, default=None, help="SD3 time shift of the step grid (default 1)")
    p.add_argument("--seed", type=int, default=0, help="image i gets seed SEED + i (default 0)")
    p.add_argument("--num-per-prompt", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument("--batch-size", type=int, default=None, help="images per network batch (default 64)")
    p.add_argument(
        "--batch-invariant",
        action="store_true",
        help="one image per network call: bit-identical images whatever the number of prompts "
        "(slower; without it batched float32 kernels may move pixels by ~1e-4)",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--allow-download", action="store_true", help="let hub ids download (off: HF cache only)")
    p.add_argument("--out", required=True, help="output directory")
