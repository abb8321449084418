"""Reading and writing pipeline folders (the layout is in rewardflow.sampling.pipeline's
docstring), hub ids resolved through the HF cache, and training checkpoints read as pipelines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT, VERSION = "rewardflow.pipeline", 1
CONFIG_NAME, TEXT_NAME, BINS_NAME = "pipeline_config.json", "text_encoder.json", "bins.json"


def resolve_dir(path_or_id: str | os.PathLike, allow_download: bool) -> Path:
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


def save_pipeline(pipe, directory: str | os.PathLike, copy_text_encoder: bool = False) -> Path:
    from rewardflow.utils.atomic import atomic_write_json

    d = Path(directory)
    pipe.model.save_pretrained(d / "model")
    te = pipe.text_encoder
    ref = {"model_id": te.model_id, "max_length": te.max_length}
    if copy_text_encoder:
        te.model.save_pretrained(d / "text_encoder")
        te.tokenizer.save_pretrained(d / "text_encoder")
        ref = dict(ref, path="text_encoder")  # relative: the folder stays movable
    atomic_write_json(d / TEXT_NAME, ref)
    if pipe.bins is not None:
        pipe.bins.save(d / BINS_NAME)
    if pipe.vae is not None:
        pipe.vae.save_pretrained(d / "vae")
    atomic_write_json(d / CONFIG_NAME, pipeline_config_doc(pipe.model.config, pipe.vae is not None, pipe.config))
    return d


def pipeline_config_doc(model_config, latent: bool, config: dict) -> dict:
    """The pipeline_config.json of a folder holding a model with `model_config`."""
    return dict(
        _format=FORMAT,
        _format_version=VERSION,
        reward_keys=list(model_config.reward_keys),
        image_size=model_config.image_size,
        in_channels=model_config.in_channels,
        latent=latent,
        **config,
    )


def _variant_dir(d: Path, variant: str | None) -> Path:
    if not variant:
        return d
    sub = d / variant
    if not sub.is_dir():
        have = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise FileNotFoundError(f"no variant {variant!r} in {d}; its subfolders: {have}")
    return sub


def load_pipeline_parts(
    path_or_id, device=None, dtype=None, allow_download: bool = False, text_encoder=None, variant=None, vae=None
):
    """(model, text_encoder, bins, reward_keys, vae, config) of a pipeline folder or hub id
    (ours, or a released MIRO checkpoint; ``variant`` picks a subfolder as the released ablations
    repository lays them out)."""
    from rewardflow.models.io import load_model

    from .miro_release import is_release, load_release_parts

    d = _variant_dir(resolve_dir(path_or_id, allow_download), variant)
    if not (d / CONFIG_NAME).is_file() and is_release(d):
        return load_release_parts(d, device, dtype, allow_download, text_encoder, vae)
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
    if isinstance(vae, (str, os.PathLike)):  # else a loaded AutoencoderKL, or None: the folder's
        vae = _vae(vae, device, allow_download)
    elif vae is None and (d / "vae").is_dir():
        vae = _vae(d / "vae", device)
    elif vae is None and (latent_vae := (cfg.get("latent_stats") or {}).get("vae")):  # a checkpoint names its VAE
        vae = _vae(latent_vae, device, allow_download)
    return model, text_encoder, _bins(d / BINS_NAME), keys, vae, cfg


def load_checkpoint_parts(checkpoint_dir, device=None, dtype=None, allow_download: bool = False, text_encoder=None):
    """The same parts from a training checkpoint. Checkpoints are pipeline folders (the trainer
    writes pipeline_config.json and text_encoder.json beside model/ and bins.json); one written
    before that is read from its train_config.json, bins from the checkpoint folder if present,
    else from the run's data directory."""
    from rewardflow.models.io import load_model

    d = Path(checkpoint_dir)
    if (d / CONFIG_NAME).is_file():
        return load_pipeline_parts(d, device, dtype, allow_download, text_encoder)
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
    config: dict[str, Any] = dict(run_config=run)
    vae = None
    if data.get("latents"):  # latent runs: the data dir holds the stats and names the VAE
        from rewardflow.data.latents import LatentStats

        stats = LatentStats.load(data["path"])
        config["latent_stats"] = {"mean": stats.mean, "std": stats.std, "vae": stats.vae}
        vae = _vae(stats.vae, device, allow_download) if stats.vae else None
    return model, text_encoder, bins, None, vae, config


def _text_encoder(src, max_length: int, allow_download: bool):
    from rewardflow.data.text import TextEncoder

    return TextEncoder(None if src is None else str(src), max_length=max_length, allow_download=allow_download)


def _vae(src, device, allow_download: bool = False):
    from rewardflow.data.latents import load_vae

    return load_vae(str(src), allow_download=allow_download, device=device or "cpu")


def _bins(path: Path):
    from rewardflow.data.binning import RewardBins

    return RewardBins.load(path) if path.is_file() else None
