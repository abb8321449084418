"""The diffusers-style inputs of a pipeline call, beside prompts and per-image seeds: the start
noise (`latents=`, or `generator=` drawing the whole request's noise as ONE randn, as diffusers
pipelines and the official MIRO pipeline do) and precomputed text embeddings
(`prompt_embeds=`, `negative_prompt_embeds=`, each with an optional attention mask)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .targets import RewardTargets


@dataclass
class CallPlan:
    """One call's resolved arguments (RewardFlowPipeline._plan)."""

    items: list[str]  # one prompt per image, prompt-major
    seeds: list[int]
    steps: int
    solver: str
    guidance: tuple  # (w, w_text or None, interval or None)
    shift: float
    targets: RewardTargets | None
    batch_size: int


@dataclass
class CallInputs:
    noise: torch.Tensor | None = None  # (N, C, H, W) start noise of every image, or None: per-image seeds
    text: tuple[torch.Tensor, torch.Tensor] | None = None  # (N, L, D), (N, L) bool, or None: encode
    negative: tuple[torch.Tensor, torch.Tensor] | None = None  # (1 or N, L, D), mask, or None

    @classmethod
    def of(cls, model_config, n: int, noise_args, text_args, negative_args) -> CallInputs:
        """From a call's (latents, generator, seed), (prompt_embeds, mask, images per prompt) and
        (negative_prompt_embeds, mask), for its n images."""
        c = model_config
        noise = start_noise(*noise_args, n, (c.in_channels, c.image_size, c.image_size))
        x, mask, per_prompt = text_args
        text = None if x is None else embeds("prompt_embeds", x, mask, per_prompt)
        negative = None if negative_args[0] is None else embeds("negative_prompt_embeds", *negative_args)
        return cls(noise, text, negative)

    def batch(self, start: int, stop: int) -> CallInputs:
        """The inputs of images start..stop-1 (a batch-1 negative is shared by all)."""

        def part(pair):
            if pair is None or pair[0].shape[0] == 1:
                return pair
            return pair[0][start:stop], pair[1][start:stop]

        noise = None if self.noise is None else self.noise[start:stop]
        return CallInputs(noise, part(self.text), part(self.negative))


def embeds(name: str, x, mask, per_prompt: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked (B * per_prompt, L, D) embeddings and a bool mask (all True when not given)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"{name} must be a (batch, tokens, dim) tensor, got {getattr(x, 'shape', type(x))}")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{name[:-7]}_attention_mask must be a (batch, tokens) = {tuple(x.shape[:2])} tensor")
    mask = mask.bool()
    if per_prompt > 1:
        x, mask = x.repeat_interleave(per_prompt, 0), mask.repeat_interleave(per_prompt, 0)
    return x, mask


def start_noise(latents, generator, seed, n: int, shape: tuple[int, ...]) -> torch.Tensor | None:
    """(n, *shape) float32 start noise from `latents` or from `generator` (one randn for the
    whole request); None when the images' own seeds make it."""
    if latents is not None:
        if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != (n, *shape):
            raise ValueError(f"latents must be a ({n}, {', '.join(map(str, shape))}) tensor, one per image")
        return latents.float()
    if generator is not None and seed is None:
        return torch.randn((n, *shape), generator=generator, device=generator.device, dtype=torch.float32)
    return None


def check_prompt_inputs(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds):
    """The call's prompts: `prompt`, or one empty string per row of `prompt_embeds`."""
    if (prompt is None) == (prompt_embeds is None):
        raise ValueError("give prompt or prompt_embeds (one of them)")
    if negative_prompt is not None and negative_prompt_embeds is not None:
        raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
    if prompt is None:
        return [""] * (prompt_embeds.shape[0] if isinstance(prompt_embeds, torch.Tensor) else 0)
    return prompt
