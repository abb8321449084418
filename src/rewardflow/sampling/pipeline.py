"""RewardFlowPipeline: text + reward targets -> images, with multi-reward CFG.

Folder layout written by ``save_pretrained`` (and read by ``from_pretrained``)::

    model/                  denoiser, save_pretrained format (config.json + model.safetensors)
    text_encoder.json       {"model_id", "max_length"}: a reference, weights are NOT copied unless
                            save_pretrained(copy_text_encoder=True) puts them in text_encoder/
    bins.json               the reward bins the model was trained with (absent for a baseline)
    pipeline_config.json    reward keys, image shape, default sampling settings, run config,
                            latent_stats (per-channel mean/std the latents were normalised with)
    vae/                    optional, diffusers AutoencoderKL format (latent models); a training
                            checkpoint names its VAE in latent_stats instead

Every training checkpoint (step_*/) carries these files beside its resume state, so it loads
with ``from_pretrained`` too.

Negative branch: with ``negative_prompt=None`` the negative text is the model's learned null text
(``model.null_text``), the "unconditional" caption it saw under text dropout; a string is encoded
like the prompt. The negative branch always carries ``s-`` (default all 0), so the contrast is
text AND rewards. Reproducibility: image i uses its own seed for its initial noise, and text
embeddings do not depend on batch-mates, so an image depends on (prompt, seed, settings) only.
The network itself is batched, and float32 kernels (CPU convolutions above all) may block their
sums differently by batch size, so batch-1 and batch-8 results agree to rounding (measured up to
2e-4 on the demo U-Net, a 1-level uint8 change on some pixels), not bit for bit. For bit-identical
images whatever the request size, pass ``batch_invariant=True``: the network then sees one image
(its 2 or 3 CFG rows) per call, the same shapes as a request of one image, at a throughput cost
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from . import targets as T
from .arguments import check_int as _check_int
from .arguments import check_interval as _check_interval
from .arguments import check_number as _check_number
from .call_inputs import CallInputs, CallPlan, check_prompt_inputs
from .guidance import Condition, make_velocity_fn, make_velocity_fn_3, with_guidance_interval
from .latent_carry import with_latent_carry
from .noise import randn_per_seed
from .output import OUTPUT_TYPES, RewardFlowPipelineOutput, pipeline_output, to_output_type
from .pipeline_io import (  # noqa: F401 (re-exported)
    BINS_NAME,
    CONFIG_NAME,
    FORMAT,
    TEXT_NAME,
    VERSION,
    load_checkpoint_parts,
    load_pipeline_parts,
    save_pipeline,
)
from .precision import network_autocast
from .progress import progress_bar
from .solvers import SOLVERS, solve, time_grid

DEFAULTS = dict(
    guidance_scale=7.0,
    text_guidance_scale=None,
    guidance_interval=None,
    num_inference_steps=50,
    solver="euler",
    shift=1.0,
    batch_size=64,
)


class RewardFlowPipeline:
    """Reward-controllable text-to-image sampling. See the module docstring for the folder format."""

    def __init__(
        self,
        model,
        text_encoder,
        bins=None,
        reward_keys: Sequence[str] | None = None,
        vae=None,
        config: Mapping | None = None,
    ):
        self.model, self.text_encoder, self.bins, self.vae = model, text_encoder, bins, vae
        self.reward_keys = tuple(model.config.reward_keys)
        if reward_keys is not None and tuple(reward_keys) != self.reward_keys:
            raise ValueError(f"reward_keys {list(reward_keys)} differ from the model's {list(self.reward_keys)}")
        if bins is not None and sorted(bins.keys) != sorted(self.reward_keys):
            raise ValueError(f"bins cover {bins.keys} but the model is conditioned on {list(self.reward_keys)}")
        self.config = dict(DEFAULTS, **(config or {}))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device=None, dtype=None) -> RewardFlowPipeline:
        self.model.to(device=device, dtype=dtype)
        if self.vae is not None:
            self.vae.to(device=device)
        return self

    def compile(self, **kwargs) -> RewardFlowPipeline:
        """torch.compile the network's forward (``run`` for a RIN) for faster sampling; the first
        call of each batch shape pays the compilation. ``kwargs`` go to torch.compile."""
        m = self.model
        name = "run" if hasattr(m, "run") else "forward"
        setattr(m, name, torch.compile(getattr(m, name), **kwargs))
        return self

    # ------------------------------------------------------------------------------- targets
    def resolve_targets(self, reward_targets=None, negative_reward_targets=None) -> T.RewardTargets | None:
        """Partial dicts fill in: s+ missing keys -> 1.0, s- missing keys -> 0.0."""
        if not self.reward_keys:
            if reward_targets or negative_reward_targets:
                raise ValueError(
                    "this is a baseline model (num_rewards=0, no reward conditioning): "
                    "reward targets cannot be used; drop reward_targets/negative_reward_targets"
                )
            return None
        if isinstance(reward_targets, T.RewardTargets):
            if negative_reward_targets is not None:
                raise ValueError("pass negative targets inside the RewardTargets, not separately")
            return self._check_unspecified(
                T.custom(self.reward_keys, reward_targets.positive, negative=reward_targets.negative)
            )
        for name, d in (("reward_targets", reward_targets), ("negative_reward_targets", negative_reward_targets)):
            if d is not None and not isinstance(d, Mapping):
                raise TypeError(f"{name} must be a dict {{reward_key: value in [0, 1]}}, got {type(d).__name__}")
        return self._check_unspecified(
            T.custom(self.reward_keys, reward_targets or {}, negative=negative_reward_targets or None)
        )

    def _check_unspecified(self, tg: T.RewardTargets) -> T.RewardTargets:
        """An unspecified (None) target needs null reward tokens the model learned to use."""
        if not tg.unspecified:
            return tg
        if not getattr(self.model.config, "reward_null", False):
            raise ValueError(
                f"targets {list(tg.unspecified)} are unspecified (None) but this model has no null "
                "reward tokens (model config reward_null=False); give every reward a value in [0, 1]"
            )
        dropout = (self.config.get("run_config") or {}).get("reward_dropout")
        if dropout is not None and float(dropout) <= 0:
            raise ValueError(
                f"targets {list(tg.unspecified)} are unspecified (None) but this model was trained with "
                "reward_dropout = 0, so its null reward tokens were never trained; give every reward a "
                "value in [0, 1], or train with reward_dropout > 0 (e.g. 0.1)"
            )
        return tg

    # ------------------------------------------------------------------------------- sampling
    def resolve_guidance(self, guidance_scale=None, text_guidance_scale=None, guidance_interval=None):
        """(w, w_text or None, interval or None) a call samples with. An explicit guidance_scale
        replaces the saved guidance setting as a whole: a folder whose chosen default is
        three-branch or interval-limited still means plain CFG for pipe(w=...)."""
        c = self.config
        saved = guidance_scale is None
        w = _check_number("guidance_scale", c["guidance_scale"] if saved else guidance_scale, lo=0.0)
        w_t = (c["text_guidance_scale"] if saved else None) if text_guidance_scale is None else text_guidance_scale
        w_t = None if w_t is None else _check_number("text_guidance_scale", w_t, lo=0.0)
        iv = (c["guidance_interval"] if saved else None) if guidance_interval is None else guidance_interval
        return w, w_t, _check_interval(iv)

    def _seeds(self, n: int, seed, generator) -> list[int]:
        if isinstance(seed, bool):
            raise ValueError(f"seed must be an int or a list of ints, got {seed!r}")
        if seed is not None and not isinstance(seed, int):
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for {n} images (prompts x num_images_per_prompt)")
            return [int(s) for s in seeds]
        if seed is None and generator is not None:
            return []  # the generator draws the request's noise as one randn (CallInputs)
        if seed is None:  # honours torch.manual_seed; the seeds are returned
            seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        return [seed + i for i in range(n)]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str] | None = None,
        reward_targets=None,
        negative_reward_targets=None,
        negative_prompt: str | None = None,
        guidance_scale: float | None = None,
        text_guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        solver: str | None = None,
        shift: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | Sequence[int] | None = None,
        num_images_per_prompt: int = 1,
        output_type: str = "pil",
        batch_size: int | None = None,
        progress=True,
        batch_invariant: bool = False,
        guidance_interval=None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
    ) -> RewardFlowPipelineOutput:
        """Sample images; ``seed=int`` gives image i seed ``seed + i`` (prompt-major order), a list
        gives one seed per image. Returns images with the prompts, seeds and targets used.
        ``batch_invariant=True`` samples one image per network call (overriding ``batch_size``) so an
        image is bit-identical whatever else is in the request (see the module docstring).
        ``guidance_interval=(lo, hi)`` guides only while lo <= t <= hi (t = 1 is noise).
        ``progress``: a tqdm bar (True), nothing (False) or a callable ``(steps_done, total)``.

        diffusers' conventions work too: ``latents`` (N, C, H, W) is the start noise of the N
        images; ``generator`` without ``seed`` draws the whole request's noise as one randn (as
        diffusers pipelines do), so ``seeds`` is then empty; ``prompt_embeds`` (with
        ``prompt_attention_mask``, default all True) replaces ``prompt`` and skips the text
        encoder, ``negative_prompt_embeds`` the negative prompt."""
        prompt = check_prompt_inputs(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds)
        plan = self._plan(
            prompt,
            (reward_targets, negative_reward_targets),
            (guidance_scale, text_guidance_scale, guidance_interval),
            num_inference_steps,
            solver,
            shift,
            (seed, generator, num_images_per_prompt),
            output_type,
            batch_size,
        )
        if batch_invariant:
            plan.batch_size = 1
        inputs = CallInputs.of(
            self.model.config,
            len(plan.items),
            (latents, generator, seed),
            (prompt_embeds, prompt_attention_mask, num_images_per_prompt),
            (negative_prompt_embeds, negative_prompt_attention_mask),
        )
        if inputs.noise is not None:
            plan.seeds = []  # the noise is not made from per-image seeds
        x = self._run(plan, negative_prompt, inputs, output_type == "latent", progress)
        return pipeline_output(plan, to_output_type(x, output_type), negative_prompt, batch_invariant)

    def _plan(self, prompt, targets, guidance, steps, solver, shift, seeding, output_type, batch_size) -> CallPlan:
        """Every argument of a call checked and resolved against the saved defaults."""
        c = self.config
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt list is empty: give at least one prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        steps = _check_int("num_inference_steps", c["num_inference_steps"] if steps is None else steps)
        solver = solver or c["solver"]
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; expected one of {sorted(SOLVERS)}")
        w, w_t, interval = self.resolve_guidance(*guidance)
        shift = _check_number("shift", c["shift"] if shift is None else shift)
        if shift <= 0:
            raise ValueError(f"shift must be > 0, got {shift}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if output_type != "latent" and self.vae is None and self.model.config.in_channels not in (1, 3):
            raise ValueError(
                f"this model makes {self.model.config.in_channels}-channel latents and the pipeline "
                "has no VAE: pass vae=... or use output_type='latent'"
            )
        seed, generator, per_prompt = seeding
        _check_int("num_images_per_prompt", per_prompt)
        tg = self.resolve_targets(*targets)
        if w_t is not None and tg is None:
            raise ValueError(
                "text_guidance_scale (3-branch mode) needs a reward-conditioned model; "
                "a baseline model uses guidance_scale alone"
            )
        items = [p for p in prompts for _ in range(per_prompt)]
        seeds = self._seeds(len(items), seed, generator)
        bs = _check_int("batch_size", c["batch_size"] if batch_size is None else batch_size)
        return CallPlan(items, seeds, steps, solver, (w, w_t, interval), shift, tg, bs)

    def _run(self, plan: CallPlan, negative_prompt, inputs: CallInputs, latent_out: bool, progress: bool):
        """(B, C, H, W) float32 on the CPU: the plan's images, batch after batch."""
        n, bs = len(plan.items), plan.batch_size
        # Advances per ODE step, so one big batch still shows movement.
        desc = f"sampling {n} images ({plan.solver}, {plan.steps} steps)"
        bar = progress_bar(progress, math.ceil(n / bs) * plan.steps, desc)
        out, was_training = [], self.model.training
        self.model.eval()  # temporarily: trainers sample from models they keep training
        try:
            for s in range(0, n, bs):
                x = self._sample(
                    plan.items[s : s + bs],
                    plan.seeds[s : s + bs],
                    plan.targets,
                    negative_prompt,
                    plan.guidance,
                    plan.steps,
                    plan.solver,
                    plan.shift,
                    None if bar is None else (lambda *_: bar.update(1)),
                    latent_out,
                    inputs.batch(s, s + bs),
                )
                out.append(x.float().cpu())
        finally:
            self.model.train(was_training)
            if bar is not None:
                bar.close()
        return torch.cat(out)

    def _sample(
        self, prompts, seeds, tg, negative_prompt, guidance, steps, solver, shift, callback, latent_out, inputs
    ):
        w, w_t, interval = guidance
        dev, dtype = self.device, next(self.model.parameters()).dtype
        # The ODE state stays fp32 (fp64 for an fp64 model) when the net runs in half precision:
        # 50 small updates would otherwise round away in bf16.
        state = torch.float64 if dtype == torch.float64 else torch.float32
        cfg, b = self.model.config, len(prompts)
        if inputs.noise is not None:
            x = inputs.noise.to(device=dev, dtype=state)
        else:
            x = randn_per_seed(seeds, (cfg.in_channels, cfg.image_size, cfg.image_size), device=dev, dtype=state)
        if inputs.text is not None:
            text, mask = (t.to(dev) for t in inputs.text)
        else:
            text, mask = self.text_encoder.encode(prompts, device=dev)
        s_pos, s_neg = tg.tensors(b, device=dev, dtype=dtype) if tg else (None, None)
        d_pos, d_neg = tg.drop_masks(b, device=dev) if tg else (None, None)
        if inputs.negative is not None:
            neg = Condition(*(t.to(dev) for t in inputs.negative))
        elif negative_prompt is None:
            neg = Condition.null(self.model, 1)
        else:
            neg = Condition(*self.text_encoder.encode([negative_prompt], device=dev))
        neg = Condition(neg.text.to(dtype), neg.text_mask)
        pos = Condition(text.to(dtype), mask, s_pos, d_pos)
        model = with_latent_carry(self.model)  # one carry per batch: a RIN's latents step to step
        if w_t is None:
            net = make_velocity_fn(model, pos, neg.expand(b).with_rewards(s_neg, d_neg), w)
        else:
            net = make_velocity_fn_3(model, Condition(text.to(dtype), mask), neg, s_pos, s_neg, w_t, w, d_pos, d_neg)
        if interval is not None:
            net = with_guidance_interval(net, make_velocity_fn(model, pos), interval)
        vfn = net if dtype == state else (lambda x_, t_: net(x_.to(dtype), t_.to(dtype)).to(state))
        with network_autocast(dev, self.config.get("autocast")):
            x = solve(solver, vfn, x, time_grid(steps, shift, device=dev, dtype=state), callback=callback)
        return x if latent_out else self.decode(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space samples -> images in [-1, 1]: identity for pixel models; for latent models
        undo the training normalisation (``latent_stats``, else the VAE's scaling/shift factors)."""
        if self.vae is None:
            return x
        stats, vc = self.config.get("latent_stats"), self.vae.config
        if stats:
            m, sd = (torch.tensor(stats[k], device=x.device, dtype=x.dtype).view(1, -1, 1, 1) for k in ("mean", "std"))
            z = x * sd + m
        else:
            z = x / getattr(vc, "scaling_factor", 1.0) + (getattr(vc, "shift_factor", None) or 0.0)
        p = next(self.vae.parameters())
        return self.vae.decode(z.to(p.device, p.dtype)).sample.to(x.dtype)

    # ------------------------------------------------------------------------------- modes
    def high_quality(self, prompt, **kw) -> RewardFlowPipelineOutput:
        """s+ all 1, s- all 0: the paper's default."""
        return self(prompt, reward_targets=T.high_quality(self.reward_keys), **kw)

    def isolate(self, key: str, prompt, anchor=None, **kw) -> RewardFlowPipelineOutput:
        """Guide along reward ``key`` only: s+_key = 1, s-_key = 0, the other rewards at ``anchor``
        ({key: level}, default 1) in both branches."""
        return self(prompt, reward_targets=T.isolate(self.reward_keys, key, anchor), **kw)

    def pairwise(self, a: str, b: str, t: float, prompt, anchor=None, **kw) -> RewardFlowPipelineOutput:
        """Trade reward a against b: t = 0 pushes fully toward a, t = 1 toward b; the other rewards
        at ``anchor`` (default 1) in both branches."""
        return self(prompt, reward_targets=T.pairwise(self.reward_keys, a, b, t, anchor), **kw)

    # ------------------------------------------------------------------------------- I/O
    def save_pretrained(self, directory: str | os.PathLike, copy_text_encoder: bool = False) -> Path:
        return save_pipeline(self, directory, copy_text_encoder)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike,
        device=None,
        dtype=None,
        allow_download: bool = False,
        text_encoder=None,
        variant: str | None = None,
        vae=None,
    ) -> RewardFlowPipeline:
        """Load a folder (or a hub id from the HF cache; downloads only with allow_download).

        Released MIRO checkpoints (config.json + model.safetensors + uncond_embedding.npy) load
        too, with ``variant`` naming a subfolder of the ablations repository; ``text_encoder`` /
        ``vae`` (a path, hub id or loaded object) override where their encoder and VAE come from.
        """
        return cls(*load_pipeline_parts(path_or_id, device, dtype, allow_download, text_encoder, variant, vae))

    @classmethod
    def from_checkpoint(
        cls, checkpoint_dir: str | os.PathLike, device=None, dtype=None, allow_download: bool = False, text_encoder=None
    ) -> RewardFlowPipeline:
        """A training checkpoint (step_*/ with model/ and train_config.json); bins come from
        the checkpoint folder if present, else from the run's data directory."""
        return cls(*load_checkpoint_parts(checkpoint_dir, device, dtype, allow_download, text_encoder))
