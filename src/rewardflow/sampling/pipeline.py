"""RewardFlowPipeline: text + reward targets -> images, with multi-reward CFG.

Folder layout written by ``save_pretrained`` (and read by ``from_pretrained``)::

    model/                  denoiser, save_pretrained format (config.json + model.safetensors)
    text_encoder.json       {"model_id", "max_length"}: a reference, weights are NOT copied unless
                            save_pretrained(copy_text_encoder=True) puts them in text_encoder/
    bins.json               the reward bins the model was trained with (absent for a baseline)
    pipeline_config.json    reward keys, image shape, default sampling settings, run config,
                            latent_stats (per-channel mean/std the latents were normalised with)
    vae/                    optional, diffusers AutoencoderKL format (latent models)

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

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import targets as T
from .arguments import check_int as _check_int
from .arguments import check_interval as _check_interval
from .arguments import check_number as _check_number
from .guidance import Condition, make_velocity_fn, make_velocity_fn_3, with_guidance_interval
from .noise import randn_per_seed
from .solvers import SOLVERS, solve, time_grid

FORMAT, VERSION = "rewardflow.pipeline", 1
CONFIG_NAME, TEXT_NAME, BINS_NAME = "pipeline_config.json", "text_encoder.json", "bins.json"
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
DEFAULTS = dict(
    guidance_scale=7.0,
    text_guidance_scale=None,
    guidance_interval=None,
    num_inference_steps=50,
    solver="euler",
    shift=1.0,
    batch_size=64,
)


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


def _resolve_dir(path_or_id: str | os.PathLike, allow_download: bool) -> Path:
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        return p
    text = str(path_or_id)
    # A hub id is exactly "owner/name"; anything else can only have meant a local folder.
    if (
        Path(path_or_id).is_absolute()
        or text.startswith(".")
        or text.count("/") != 1
        or os.sep != "/"
        and os.sep in text
    ):
        raise FileNotFoundError(f"pipeline directory not found: {p}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path_or_id), local_files_only=not allow_download))
    except Exception as exc:  # hub errors are many classes; the message is what matters
        hint = "" if allow_download else " (not in the HF cache; downloads are off: pass allow_download=True)"
        raise FileNotFoundError(f"cannot resolve pipeline {str(path_or_id)!r}{hint}: {exc}") from None


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
        if seed is None:  # honours torch.manual_seed / a given generator; the seeds are returned
            seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        return [seed + i for i in range(n)]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
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
        progress: bool = True,
        batch_invariant: bool = False,
        guidance_interval=None,
    ) -> RewardFlowPipelineOutput:
        """Sample images; ``seed=int`` gives image i seed ``seed + i`` (prompt-major order), a list
        gives one seed per image. Returns images with the prompts, seeds and targets used.
        ``batch_invariant=True`` samples one image per network call (overriding ``batch_size``) so an
        image is bit-identical whatever else is in the request (see the module docstring).
        ``guidance_interval=(lo, hi)`` guides only while lo <= t <= hi (t = 1 is noise)."""
        c = self.config
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt list is empty: give at least one prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        steps = _check_int(
            "num_inference_steps", c["num_inference_steps"] if num_inference_steps is None else num_inference_steps
        )
        solver = solver or c["solver"]
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; expected one of {sorted(SOLVERS)}")
        w, w_t, interval = self.resolve_guidance(guidance_scale, text_guidance_scale, guidance_interval)
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
        _check_int("num_images_per_prompt", num_images_per_prompt)
        tg = self.resolve_targets(reward_targets, negative_reward_targets)
        if w_t is not None and tg is None:
            raise ValueError(
                "text_guidance_scale (3-branch mode) needs a reward-conditioned model; "
                "a baseline model uses guidance_scale alone"
            )
        items = [p for p in prompts for _ in range(num_images_per_prompt)]
        seeds = self._seeds(len(items), seed, generator)
        bs = _check_int("batch_size", c["batch_size"] if batch_size is None else batch_size)
        if batch_invariant:
            bs = 1

        bar = None
        if progress:  # advances per ODE step, so one big batch still shows movement
            from tqdm.auto import tqdm

            bar = tqdm(
                total=math.ceil(len(items) / bs) * steps,
                unit="step",
                desc=f"sampling {len(items)} images ({solver}, {steps} steps)",
            )
        out, was_training = [], self.model.training
        self.model.eval()  # temporarily: trainers sample from models they keep training
        try:
            for s in range(0, len(items), bs):
                x = self._sample(
                    items[s : s + bs],
                    seeds[s : s + bs],
                    tg,
                    negative_prompt,
                    (w, w_t, interval),
                    steps,
                    solver,
                    shift,
                    None if bar is None else (lambda *_: bar.update(1)),
                    output_type == "latent",
                )
                out.append(x.float().cpu())
        finally:
            self.model.train(was_training)
            if bar is not None:
                bar.close()
        settings = dict(
            negative_prompt=negative_prompt,
            guidance_scale=w,
            text_guidance_scale=w_t,
            guidance_interval=None if interval is None else list(interval),
            num_inference_steps=steps,
            solver=solver,
            shift=shift,
            batch_invariant=bool(batch_invariant),
        )
        return RewardFlowPipelineOutput(
            images=to_output_type(torch.cat(out), output_type),
            prompts=items,
            seeds=seeds,
            reward_targets=dict(tg.positive) if tg else {},
            negative_reward_targets=dict(tg.negative) if tg else {},
            settings=settings,
        )

    def _sample(self, prompts, seeds, tg, negative_prompt, guidance, steps, solver, shift, callback, latent_out):
        w, w_t, interval = guidance
        dev, dtype = self.device, next(self.model.parameters()).dtype
        # The ODE state stays fp32 (fp64 for an fp64 model) when the net runs in half precision:
        # 50 small updates would otherwise round away in bf16.
        state = torch.float64 if dtype == torch.float64 else torch.float32
        cfg, b = self.model.config, len(prompts)
        x = randn_per_seed(seeds, (cfg.in_channels, cfg.image_size, cfg.image_size), device=dev, dtype=state)
        text, mask = self.text_encoder.encode(prompts, device=dev)
        s_pos, s_neg = tg.tensors(b, device=dev, dtype=dtype) if tg else (None, None)
        d_pos, d_neg = tg.drop_masks(b, device=dev) if tg else (None, None)
        if negative_prompt is None:
            neg = Condition.null(self.model, 1)
        else:
            neg = Condition(*self.text_encoder.encode([negative_prompt], device=dev))
        neg = Condition(neg.text.to(dtype), neg.text_mask)
        pos = Condition(text.to(dtype), mask, s_pos, d_pos)
        if w_t is None:
            net = make_velocity_fn(self.model, pos, neg.expand(b).with_rewards(s_neg, d_neg), w)
        else:
            net = make_velocity_fn_3(
                self.model, Condition(text.to(dtype), mask), neg, s_pos, s_neg, w_t, w, d_pos, d_neg
            )
        if interval is not None:
            net = with_guidance_interval(net, make_velocity_fn(self.model, pos), interval)
        vfn = net if dtype == state else (lambda x_, t_: net(x_.to(dtype), t_.to(dtype)).to(state))
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
        from rewardflow.utils.atomic import atomic_write_json

        d = Path(directory)
        self.model.save_pretrained(d / "model")
        te = self.text_encoder
        ref = {"model_id": te.model_id, "max_length": te.max_length}
        if copy_text_encoder:
            te.model.save_pretrained(d / "text_encoder")
            te.tokenizer.save_pretrained(d / "text_encoder")
            ref = dict(ref, path="text_encoder")  # relative: the folder stays movable
        atomic_write_json(d / TEXT_NAME, ref)
        if self.bins is not None:
            self.bins.save(d / BINS_NAME)
        if self.vae is not None:
            self.vae.save_pretrained(d / "vae")
        cfg = self.model.config
        atomic_write_json(
            d / CONFIG_NAME,
            dict(
                _format=FORMAT,
                _format_version=VERSION,
                reward_keys=list(self.reward_keys),
                image_size=cfg.image_size,
                in_channels=cfg.in_channels,
                latent=self.vae is not None,
                **self.config,
            ),
        )
        return d

    @classmethod
    def from_pretrained(
        cls, path_or_id: str | os.PathLike, device=None, dtype=None, allow_download: bool = False, text_encoder=None
    ) -> RewardFlowPipeline:
        """Load a folder (or a hub id from the HF cache; downloads only with allow_download)."""
        from rewardflow.models.io import load_model

        d = _resolve_dir(path_or_id, allow_download)
        if not (d / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"{d} is not a rewardflow pipeline (no {CONFIG_NAME}); for a training "
                f"checkpoint use RewardFlowPipeline.from_checkpoint"
            )
        cfg = json.loads((d / CONFIG_NAME).read_text(encoding="utf-8"))
        if cfg.pop("_format", None) != FORMAT or int(cfg.pop("_format_version", 0)) > VERSION:
            raise ValueError(f"{d / CONFIG_NAME} is not a pipeline config this rewardflow can read")
        keys = cfg.pop("reward_keys")
        for k in ("image_size", "in_channels", "latent"):
            cfg.pop(k, None)
        model = load_model(d / "model", device=device, dtype=dtype)
        if text_encoder is None:
            ref = json.loads((d / TEXT_NAME).read_text(encoding="utf-8"))
            src = d / ref["path"] if ref.get("path") else ref["model_id"]
            text_encoder = _text_encoder(src, ref.get("max_length", 32), allow_download)
        vae = _vae(d / "vae", device) if (d / "vae").is_dir() else None
        return cls(model, text_encoder, _bins(d / BINS_NAME), keys, vae, cfg)

    @classmethod
    def from_checkpoint(
        cls, checkpoint_dir: str | os.PathLike, device=None, dtype=None, allow_download: bool = False, text_encoder=None
    ) -> RewardFlowPipeline:
        """A training checkpoint (step_*/ with model/ and train_config.json); bins come from
        the checkpoint folder if present, else from the run's data directory."""
        from rewardflow.models.io import load_model

        d = Path(checkpoint_dir)
        run = json.loads((d / "train_config.json").read_text(encoding="utf-8"))
        data = run.get("data", {})
        bins_path = d / BINS_NAME if (d / BINS_NAME).is_file() else Path(data.get("path") or d) / BINS_NAME
        model = load_model(d / "model", device=device, dtype=dtype)
        if model.config.num_rewards and not bins_path.is_file():
            raise FileNotFoundError(f"no {BINS_NAME} in {d} or the run's data dir {data.get('path')}")
        bins = _bins(bins_path) if model.config.num_rewards else None
        if text_encoder is None:  # the trainer builds TextEncoder with its default max_length
            from rewardflow.data.text import DEFAULT_MAX_LENGTH

            text_encoder = _text_encoder(data.get("text_encoder"), DEFAULT_MAX_LENGTH, allow_download)
        config, vae = dict(run_config=run), None
        if data.get("latents"):  # latent runs: the data dir holds the stats and names the VAE
            from rewardflow.data.latents import LatentStats

            stats = LatentStats.load(data["path"])
            config["latent_stats"] = {"mean": stats.mean, "std": stats.std, "vae": stats.vae}
            vae = _vae(stats.vae, device, allow_download) if stats.vae else None
        return cls(model, text_encoder, bins, None, vae, config)


def _text_encoder(src, max_length: int, allow_download: bool):
    from rewardflow.data.text import TextEncoder

    return TextEncoder(None if src is None else str(src), max_length=max_length, allow_download=allow_download)


def _vae(src, device, allow_download: bool = False):
    from rewardflow.data.latents import load_vae

    return load_vae(str(src), allow_download=allow_download, device=device or "cpu")


def _bins(path: Path):
    from rewardflow.data.binning import RewardBins

    return RewardBins.load(path) if path.is_file() else None
