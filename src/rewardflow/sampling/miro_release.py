"""Released MIRO checkpoints (``nicolas-dufour/miro``, ``nicolas-dufour/miro-ablations``) read as
pipeline parts: our RIN with the converted weights, the FLAN-T5 text encoder, the SDXL VAE.

The text encoder and VAE are not in the released folder. They are found, in order, as the
``text_encoder`` / ``vae`` arguments, a ``text_encoder/`` / ``vae/`` subfolder beside the weights,
or the hub ids the config names (``google/flan-t5-xl``, ``stabilityai/sdxl-vae``) in the Hugging
Face cache; nothing is downloaded unless allow_download.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rewardflow.models import miro_official as official

DEFAULT_TEXT_ENCODER, DEFAULT_VAE = "google/flan-t5-xl", "stabilityai/sdxl-vae"


def is_release(d: Path) -> bool:
    """A folder in the released layout: config.json with a ``network`` section."""
    path = d / "config.json"
    if not path.is_file():
        return False
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(cfg, dict) and isinstance(cfg.get("network"), dict)


def check_files(d: Path) -> None:
    missing = [n for n in official.OFFICIAL_FILES if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d} is not a complete released MIRO checkpoint: missing {', '.join(missing)} "
            f"(expected {', '.join(official.OFFICIAL_FILES)}, the layout of nicolas-dufour/miro)"
        )


def load_uncond(path: Path, width: int) -> torch.Tensor:
    """The fixed negative caption (L0, D) from uncond_embedding.npy."""
    arr = np.load(path, allow_pickle=False).astype(np.float32)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{path} holds shape {arr.shape}; the network reads (tokens, {width}) text embeddings")
    return torch.from_numpy(arr)


def load_release_model(d: Path, device=None, dtype=None):
    """(RIN in eval mode, config.json as a dict, raw tensors) of a released folder."""
    from rewardflow.models.io import check_state_dict, read_weights
    from rewardflow.models.registry import build_model

    check_files(d)
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    width = int(cfg["network"]["label_dim"])
    uncond = load_uncond(d / "uncond_embedding.npy", width)
    config = official.denoiser_config(cfg, uncond.shape[0])
    raw = read_weights(d / "model.safetensors")
    sd = official.convert_state_dict(raw, config)
    sd["cond.null_text"] = uncond
    model = build_model(config)
    check_state_dict(model, sd, f"{d / 'model.safetensors'} (released layout, config {d / 'config.json'})")
    model.load_state_dict(sd, strict=True)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval(), cfg, raw


def _download_hint(what: str, repo: str, arg: str) -> str:
    return (
        f"the released model needs its {what} {repo!r}, which is not in the Hugging Face cache. "
        f"Download it once with `hf download {repo}` (or pass allow_download=True / --allow-download), "
        f"or give a local copy with {arg}"
    )


def _source(given, local: Path, repo: str):
    if given is not None:
        return given
    return local if local.is_dir() else repo


def release_text_encoder(d: Path, cfg: dict, given, allow_download: bool):
    from rewardflow.data.text import TextEncoder

    if given is not None and not isinstance(given, (str, Path)):
        return given  # a ready TextEncoder
    src = _source(given, d / "text_encoder", cfg.get("text_encoder_repo") or DEFAULT_TEXT_ENCODER)
    try:
        return TextEncoder(str(src), max_length=int(cfg.get("max_text_len", 77)), allow_download=allow_download)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{_download_hint('text encoder', str(src), 'text_encoder=PATH')} ({exc})") from None


def release_vae(d: Path, cfg: dict, given, device, allow_download: bool):
    """(AutoencoderKL, where it came from: a path or hub id, None for a given object)."""
    from rewardflow.data.latents import load_vae

    if given is not None and not isinstance(given, (str, Path)):
        return given, None  # a ready AutoencoderKL
    src = _source(given, d / "vae", cfg.get("vae_repo") or DEFAULT_VAE)
    try:
        return load_vae(str(src), allow_download=allow_download, device=device or "cpu"), str(src)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{_download_hint('VAE', str(src), 'vae=PATH')} ({exc})") from None


def load_release_parts(d: Path, device=None, dtype=None, allow_download=False, text_encoder=None, vae=None):
    """(model, text_encoder, bins=None, reward_keys, vae, pipeline config) of a released folder."""
    model, cfg, raw = load_release_model(d, device, dtype)
    te = release_text_encoder(d, cfg, text_encoder, allow_download)
    if te.dim != model.config.text_dim:
        raise ValueError(
            f"text encoder {te.model_id!r} gives {te.dim}-d tokens; the network reads {model.config.text_dim}"
        )
    vae_model, vae_src = release_vae(d, cfg, vae, device, allow_download)
    config = official.sampler_defaults(cfg)
    config["autocast"] = "bfloat16"  # on CUDA, as the authors' sampler runs the network
    stats = official.latent_stats(raw)
    if stats is not None:
        config["latent_stats"] = dict(stats, vae=vae_src)
    config["run_config"] = {"reward_dropout": model.config.extra.get("coherence_dropout", 0.0)}
    config["release"] = {"source": str(d), "max_text_len": int(cfg.get("max_text_len", 77))}
    return model, te, None, list(model.config.reward_keys), vae_model, config
