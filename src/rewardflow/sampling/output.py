"""What a pipeline call returns, and the conversion of sampled tensors to each output type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def to_output_type(x: torch.Tensor, output_type: str):
    """(B, C, H, W) float in [-1, 1] -> "pt": same (CPU float32, the library's image form, what
    rewards take); "np": uint8 (B, H, W, C); "pil": list of PIL images. ("latent" is the raw
    model-space sample, returned by the pipeline before decoding.)"""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    x = x.detach().float().cpu()
    if output_type == "latent":
        return x
    x = x.clamp(-1, 1)
    if output_type == "pt":
        return x
    arr = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if output_type == "np":
        return arr
    from PIL import Image

    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


@dataclass
class RewardFlowPipelineOutput:
    images: Any  # list[PIL.Image] | uint8 ndarray (B, H, W, C) | float tensor (B, C, H, W) in [-1, 1]
    prompts: list[str]
    seeds: list[int]
    reward_targets: dict[str, float]
    negative_reward_targets: dict[str, float]
    settings: dict = field(default_factory=dict)  # guidance, steps, solver, shift, negative prompt


def pipeline_output(plan, images, negative_prompt, batch_invariant: bool) -> RewardFlowPipelineOutput:
    """The images with everything that made them: prompts, seeds, targets and settings."""
    w, w_t, interval = plan.guidance
    settings = dict(
        negative_prompt=negative_prompt,
        guidance_scale=w,
        text_guidance_scale=w_t,
        guidance_interval=None if interval is None else list(interval),
        num_inference_steps=plan.steps,
        solver=plan.solver,
        shift=plan.shift,
        batch_invariant=bool(batch_invariant),
    )
    tg = plan.targets
    return RewardFlowPipelineOutput(
        images=images,
        prompts=plan.items,
        seeds=plan.seeds,
        reward_targets=dict(tg.positive) if tg else {},
        negative_reward_targets=dict(tg.negative) if tg else {},
        settings=settings,
    )
