"""Save / load a denoiser as a diffusers-style folder: config.json + model.safetensors (no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..utils.atomic import atomic_write_json
from ..utils.tensorfile import save_safetensors
from .config import DenoiserConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "rewardflow.denoiser"
FORMAT_VERSION = 1
COMPILE_PREFIX = "_orig_mod."


def unwrap_model(model: nn.Module) -> nn.Module:
    """Peel torch.compile (`_orig_mod`) and DDP/FSDP-style (`module`) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
            continue
        return model


def strip_compile_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove every `_orig_mod.` that torch.compile inserts (also inside nested names)."""
    return {k.replace(COMPILE_PREFIX, ""): v for k, v in state_dict.items()}


def save_model(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write config.json (format, version, class, backbone, config fields) + model.safetensors."""
    from .. import __version__

    model = unwrap_model(model)
    config: DenoiserConfig = model.config
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Persistent entries only (fixed sincos tables are rebuilt); contiguous copies because
    # safetensors refuses views and shared storage.
    sd = strip_compile_prefix(model.state_dict())
    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    save_safetensors(sd, directory / WEIGHTS_NAME, meta)
    doc = {
        "_format": FORMAT_NAME,
        "_format_version": FORMAT_VERSION,
        "_class_name": type(model).__name__,
        "_rewardflow_version": __version__,
        **config.to_dict(),
    }
    atomic_write_json(directory / CONFIG_NAME, doc)
    return directory


def load_config(directory: str | os.PathLike) -> DenoiserConfig:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory not found: {directory}")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected {CONFIG_NAME} + {WEIGHTS_NAME} from save_pretrained)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    fmt = doc.get("_format", FORMAT_NAME)
    if fmt != FORMAT_NAME:
        raise ValueError(f"{path} has _format={fmt!r}, expected {FORMAT_NAME!r}")
    version = doc.get("_format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} has _format_version={version!r}; this rewardflow reads up to {FORMAT_VERSION}")
    try:
        return DenoiserConfig.from_dict(doc)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        sd = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from e
    return strip_compile_prefix(sd)


def check_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError listing missing / unexpected / mis-shaped tensors (naming `source`)."""
    want = model.state_dict()
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs config {tuple(want[k].shape)}"
        for k in sorted(set(want) & set(sd))
        if tuple(sd[k].shape) != tuple(want[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return

    def head(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

    parts = []
    if shapes:
        parts.append(f"shape mismatch for {head(shapes)}")
    if missing:
        parts.append(f"missing tensors {head(missing)}")
    if unexpected:
        parts.append(f"unexpected tensors {head(unexpected)}")
    raise ValueError(f"weights in {source} do not match the model config: " + "; ".join(parts))


def load_model(
    directory: str | os.PathLike, device: str | torch.device | None = None, dtype: torch.dtype | None = None
):
    """Rebuild the model from config.json and load model.safetensors strictly. Returns it in eval mode."""
    from .registry import build_model

    directory = Path(directory)
    config = load_config(directory)
    sd = read_weights(directory / WEIGHTS_NAME)
    model = build_model(config)
    check_state_dict(model, sd, str(directory / WEIGHTS_NAME))
    model.load_state_dict(sd, strict=True)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()
