"""Shared plumbing of the CLIP-family reward backends: locating weights, loading, preprocessing.

Weights come from a local directory/file or a hub id resolved through the Hugging Face cache.
Nothing is downloaded unless the caller passes ``allow_download=True``: training and scoring
machines are usually offline, and a silent multi-GB download inside a scoring job is worse than
a clear error telling the user what to fetch where.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from rewardflow.rewards.base import Reward

# OpenAI CLIP normalisation; every CLIP checkpoint used here (OpenAI, LAION, PickScore) ships it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def pick_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype, device: torch.device) -> torch.dtype:
    """None -> bf16 on CUDA (halves memory, scores move by ~1e-3), fp32 elsewhere."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
    }
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(names)} or a torch.dtype, got {dtype!r}") from None


def _get_hint(what: str, hub_id: str | None, filename: str | None = None) -> str:
    if not hub_id:
        return ""
    cmd = f"huggingface-cli download {hub_id}" + (f" {filename}" if filename else "") + " --local-dir DIR"
    return (
        f" To get it: on a machine with internet run `{cmd}`, copy DIR here and pass its path"
        f" (or pass allow_download=True where the hub is reachable)."
    )


def resolve_dir(
    spec: str | os.PathLike, what: str, allow_download: bool = False, must_contain: tuple[str, ...] = ("config.json",)
) -> Path:
    """Local directory or hub id -> local directory holding `must_contain`."""
    spec_s = os.path.expanduser(str(spec))
    p = Path(spec_s)
    if p.is_dir():
        missing = [f for f in must_contain if not (p / f).exists()]
        if missing:
            raise FileNotFoundError(
                f"{what}: directory {p} lacks {missing}; expected a transformers"
                f" save (save_pretrained / hub snapshot) with {list(must_contain)}."
            )
        return p
    if p.exists() or spec_s.startswith((".", "/", "~")) or spec_s.count("/") != 1:
        raise FileNotFoundError(
            f"{what}: directory {spec_s!r} not found; expected a transformers model"
            f" directory with {list(must_contain)} or a hub id like 'owner/name'."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec_s, local_files_only=not allow_download))
    except Exception as exc:
        if allow_download:
            raise FileNotFoundError(f"{what}: could not download hub repo {spec_s!r}: {exc}") from exc
        raise FileNotFoundError(
            f"{what}: hub repo {spec_s!r} is not in the Hugging Face cache"
            f" (HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) and"
            f" allow_download=False.{_get_hint(what, spec_s)}"
        ) from exc


def resolve_file(spec: str | os.PathLike, what: str, allow_download: bool = False) -> Path:
    """Local file, or 'owner/name/path/in/repo.pth' on the hub (through the cache) -> local file."""
    spec_s = os.path.expanduser(str(spec))
    p = Path(spec_s)
    if p.is_file():
        return p
    parts = spec_s.split("/")
    if p.exists() or spec_s.startswith((".", "/", "~")) or len(parts) < 3:
        raise FileNotFoundError(
            f"{what}: weight file {spec_s!r} not found; pass the path of the"
            f" checkpoint file or 'owner/name/filename' for a hub file."
        )
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=not allow_download))
    except Exception as exc:
        if allow_download:
            raise FileNotFoundError(f"{what}: could not download {filename} from {repo}: {exc}") from exc
        raise FileNotFoundError(
            f"{what}: hub file {filename!r} of {repo!r} is not in the Hugging Face cache"
            f" and allow_download=False.{_get_hint(what, repo, filename)}"
        ) from exc


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file or a torch pickle of tensors (weights_only: no code runs on load)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "module"):  # training checkpoints nest the weights
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    if sd and all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def read_folder_weights(d: Path, what: str) -> dict[str, torch.Tensor]:
    """Every tensor of a transformers folder (single file or sharded; safetensors or torch)."""
    files = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"{what}: no *.safetensors or pytorch_model*.bin weights in {d}")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(load_state_dict(f))
    return sd


def env_or(value, env: str, default=None):
    """An explicit argument wins, then the environment variable (how `rewardflow score`, which
    only forwards `device`, is pointed at local weights), then the default."""
    return value if value is not None else os.environ.get(env) or default


class ClipImagePreprocessor:
    """CLIP preprocessing in torch (on the scoring device): shortest side -> `size` bicubic,
    center crop, scale to [0, 1], normalise. Parameters come from ``preprocessor_config.json``
    so that a checkpoint with a different resolution or mean/std is handled as it was trained."""

    def __init__(self, size: int = 224, crop: int = 224, mean=CLIP_MEAN, std=CLIP_STD):
        self.size, self.crop = int(size), int(crop)
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    @classmethod
    def from_dir(cls, d: Path, image_size: int | None = None) -> ClipImagePreprocessor:
        f = Path(d) / "preprocessor_config.json"
        if not f.exists():
            s = image_size or 224
            return cls(s, s)
        cfg = json.loads(f.read_text())

        def _edge(v, default):
            if isinstance(v, dict):
                return v.get("shortest_edge") or v.get("height") or default
            return v or default

        size = _edge(cfg.get("size"), image_size or 224)
        crop = _edge(cfg.get("crop_size"), size)
        return cls(size, crop, cfg.get("image_mean", CLIP_MEAN), cfg.get("image_std", CLIP_STD))

    def key(self) -> tuple:
        """What the output depends on besides the images (two rewards share embeddings only if equal)."""
        return (self.size, self.crop, tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))

    def __call__(self, images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        s = self.size / min(h, w)
        nh, nw = max(self.size, int(h * s)), max(self.size, int(w * s))
        if (nh, nw) != (h, w):
            # antialias matches PIL's bicubic on downscaling; clamp as PIL does on uint8 output
            x = torch.nn.functional.interpolate(
                x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False
            ).clamp(0, 255)
        top, left = max(0, (nh - self.crop) // 2), max(0, (nw - self.crop) // 2)
        x = x[..., top : top + self.crop, left : left + self.crop] / 255.0
        x = (x - self.mean.to(device)) / self.std.to(device)
        return x.to(dtype)


def _cpu_share() -> int:
    """CPU cores available to this process, split among the ranks a launcher started on this
    node (torchrun sets OMP_NUM_THREADS=1 per rank, so torch's own count would say 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


class PILPreprocessor:
    """The release's own preprocessing, reproduced exactly: PIL bicubic resize of the shortest
    side to ``size`` (the other side truncated, as torchvision computes it), centre crop,
    [0, 1], CLIP mean / std. (`ClipImagePreprocessor` resizes in torch, ~1/255 away;
    ImageReward's score moved by up to 0.5 % end to end that way on noise images.)"""

    def __init__(self, size: int = 224, mean=CLIP_MEAN, std=CLIP_STD, threads: int | None = None):
        self.size = int(size)
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.threads = threads  # None: this process's share of the CPU cores (PIL's resize releases the GIL)

    def _one(self, image: np.ndarray) -> torch.Tensor:
        from PIL import Image

        im, s = Image.fromarray(np.ascontiguousarray(image)).convert("RGB"), self.size
        w, h = im.size
        nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        im = im.resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
        im = im.crop((left, top, left + s, top + s))
        return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).float().div(255)

    def __call__(self, images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        # Per image on the CPU, as the releases do; on a GPU this would otherwise bound a
        # scoring job's throughput, so the images of a batch are resized in parallel threads.
        n = min(len(images), self.threads or _cpu_share(), 16)
        if n > 1:
            with ThreadPoolExecutor(n) as pool:
                parts = list(pool.map(self._one, images))
        else:
            parts = [self._one(im) for im in images]
        x = (torch.stack(parts) - self.mean) / self.std
        return x.to(device, dtype)


def has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer.json").exists() or (d / "vocab.json").exists()


def _features(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipRewardBase(Reward):
    """Common init and lazy loading for rewards built on a transformers ``CLIPModel``."""

    input_format = "uint8"
    batch_size = 32
    default_model: str = ""
    default_processor: str | None = None
    # Environment variables naming the model / processor when the caller names none.
    path_env: str | None = None
    processor_env: str | None = None

    def __init__(
        self,
        path=None,
        device=None,
        dtype=None,
        allow_download: bool = False,
        batch_size: int | None = None,
        processor_path=None,
    ):
        dev = pick_device(device)
        super().__init__(batch_size=batch_size, device=dev)
        self.dtype = pick_dtype(dtype, dev)
        self.path = (env_or(path, self.path_env) if self.path_env else path) or self.default_model
        self.processor_path = env_or(processor_path, self.processor_env) if self.processor_env else processor_path
        self.allow_download = allow_download
        self.model = None

    def _load_clip(self, model_spec, processor_spec=None, what: str = "CLIP model"):
        from transformers import AutoTokenizer

        from rewardflow.rewards.backends.shared import shared_clip

        d = resolve_dir(model_spec, what, self.allow_download)
        if processor_spec is None and not has_tokenizer(d):
            processor_spec = self.default_processor  # e.g. PickScore ships weights only
        pd = (
            resolve_dir(processor_spec, f"{what} processor", self.allow_download, must_contain=())
            if processor_spec
            else d
        )
        if self.needs_caption and not has_tokenizer(pd):
            raise FileNotFoundError(
                f"{what}: no tokenizer (tokenizer.json or vocab.json + merges.txt) in {pd};"
                " pass processor_path=<dir of the matching CLIP tokenizer>"
            )
        self.shared = shared_clip(d, self.dtype, self.device)  # one copy for every reward on these weights
        self._set_model(self.shared.model, pd, AutoTokenizer.from_pretrained(str(pd)) if self.needs_caption else None)

    def _set_model(self, model, processor_dir, tokenizer) -> None:
        self.model = model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.preprocess = ClipImagePreprocessor.from_dir(processor_dir, model.config.vision_config.image_size)

    def ensure_loaded(self) -> None:
        if self.model is None:
            self._load()

    def _load(self) -> None:
        self._load_clip(self.path, self.processor_path)

    @torch.no_grad()
    def image_embeds(self, images: np.ndarray) -> torch.Tensor:
        """L2-normalised float32 image embeddings (B, D); computed once per batch for all the
        rewards that share these CLIP weights (see rewards.backends.shared)."""
        self.ensure_loaded()
        shared = getattr(self, "shared", None)
        if shared is None:
            return self._image_embeds(images)
        return shared.image_embeds(images, self.preprocess.key(), lambda: self._image_embeds(images))

    def _image_embeds(self, images: np.ndarray) -> torch.Tensor:
        px = self.preprocess(images, self.device, self.dtype)
        e = _features(self.model.get_image_features(pixel_values=px)).float()
        return e / e.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def text_embeds(self, captions: list[str]) -> torch.Tensor:
        """L2-normalised float32 text embeddings (B, D); long captions are truncated to the context."""
        self.ensure_loaded()
        n_ctx = self.model.config.text_config.max_position_embeddings
        tok = self.tokenizer(list(captions), padding=True, truncation=True, max_length=n_ctx, return_tensors="pt")
        e = _features(
            self.model.get_text_features(
                input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device)
            )
        ).float()
        return e / e.norm(dim=-1, keepdim=True)

    def logit_scale(self) -> float:
        """exp(logit_scale), from the value saved in the checkpoint where it could be read (the
        model's copy may have been rounded to bf16)."""
        self.ensure_loaded()
        saved = getattr(getattr(self, "shared", None), "logit_scale", None)
        raw = saved if saved is not None else float(self.model.logit_scale.detach().double())
        return math.exp(raw)
