"""The `rewardflow sample` command and the Python call that reproduce what the page shows."""

from __future__ import annotations

import shlex

from rewardflow.sampling.targets import format_target

from .request import UIRequest


def _assign(d: dict) -> str:
    return ",".join(f"{k}={format_target(v)}" for k, v in d.items())


def _mode(req: UIRequest) -> str | None:
    if req.mode == "high":
        return "high"
    if req.mode == "isolate":
        return f"isolate:{req.isolate}"
    if req.mode == "pairwise":
        return f"pairwise:{req.pair[0]},{req.pair[1]},{req.pair_t:g}"
    return None


def command(req: UIRequest, model: str, variant: str | None = None) -> str:
    args = ["rewardflow", "sample", "--model", model]
    if variant:
        args += ["--variant", variant]
    args += ["--prompts", req.prompt, "--steps", str(req.steps)]
    if req.guidance is not None:  # else the folder's saved guidance, as the CLI's default too
        args += ["--guidance", f"{req.guidance:g}"]
    args += ["--seed", str(req.seed), "--num-per-prompt", str(req.num_images), "--solver", req.solver]
    args += ["--shift", f"{req.shift:g}"]
    mode = _mode(req)
    # custom mode: a full s+ / s- from the page; the CLI's default mode would fill the rest anyway
    args += ["--mode", mode or "high"]
    if req.anchor and mode and mode != "high":
        args += ["--anchor", _assign(req.anchor)]
    if req.positive:
        args += ["--reward", _assign(req.positive)]
    if req.negative:
        args += ["--negative-reward", _assign(req.negative)]
    if req.best_of > 1:
        args += ["--best-of", str(req.best_of), "--select", req.select]
    return shlex.join(args + ["--out", "samples/"])


def python_call(req: UIRequest, model: str, pos: dict, neg: dict, variant: str | None = None) -> str:
    """The same request as a Python call; ``pos`` / ``neg`` the full targets the page used."""
    load = f"pipe = RewardFlowPipeline.from_pretrained({model!r}" + (f", variant={variant!r})" if variant else ")")
    kw = [f"reward_targets={pos!r}", f"negative_reward_targets={neg!r}"] if pos or neg else []
    kw += [f"guidance_scale={req.guidance:g}"] if req.guidance is not None else []
    kw += [f"num_inference_steps={req.steps}", f"seed={req.seed}"]
    kw += [f"num_images_per_prompt={req.num_images}", f"solver={req.solver!r}", f"shift={req.shift:g}"]
    lines = ["from rewardflow import RewardFlowPipeline", load]
    if req.best_of > 1:
        lines.insert(1, "from rewardflow.sampling.selection import best_of_n")
        head = f"best_of_n(pipe, {req.prompt!r}, {req.best_of}, {req.select!r}, seed={req.seed}, "
        kw = [k for k in kw if not k.startswith(("seed=", "num_images_per_prompt="))]
        lines.append(head + ", ".join(kw) + ")")
    else:
        lines.append(f"images = pipe({req.prompt!r}, " + ", ".join(kw) + ").images")
    return "\n".join(lines)
