"""Training checkpoints: atomic directories of safetensors + JSON (never pickle).

Layout of ``out_dir/checkpoints/step_0000100/``::

    model/                    EMA weights in save_pretrained format (config.json + model.safetensors)
    live.safetensors          the live (optimised) weights
    optimizer.safetensors     optimizer state tensors  }  together: optimizer.state_dict()
    optimizer.json            param groups + scalars    }
    trainer_state.json        step, images seen, skipped steps, scheduler, scaler, EMA counters,
                              per-rank RNG states and data positions, world size
    train_config.json         the run config (compared on resume)
    bins.json                 reward bin edges of the run's keys (reward-conditioned runs with data)

A checkpoint is built under ``.tmp-*`` and renamed into place, so a directory named ``step_*``
is always complete; a kill mid-write leaves only a temp dir that the next start removes.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from rewardflow.utils.tensorfile import canonicalize_safetensors

__all__ = [
    "CKPT_RE",
    "checkpoint_problem",
    "checkpoints_root",
    "clean_temp",
    "latest_checkpoint",
    "list_checkpoints",
    "newest_valid_checkpoint",
    "load_checkpoint",
    "load_optimizer_state",
    "rng_state",
    "save_checkpoint",
    "save_optimizer_state",
    "set_rng_state",
]

CKPT_RE = re.compile(r"^step_(\d+)$")
FORMAT_VERSION = 1


def checkpoints_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    root = checkpoints_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def safetensors_problem(path: Path) -> str | None:
    """Why the safetensors file at `path` cannot be read in full; None when it can."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or 8 + n > size:
                return f"its header runs past the end of the file ({size} bytes)"
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable ({exc})"
    if 8 + n + end != size:
        return f"truncated: {size} bytes where its header needs {8 + n + end}"
    return None


CHECKPOINT_FILES = (
    "model/model.safetensors",
    "live.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "trainer_state.json",
    "train_config.json",
)


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint folder `path` cannot be resumed from (missing or damaged file); None if it can."""
    missing = [n for n in CHECKPOINT_FILES if not (path / n).is_file()]
    if missing:
        return f"missing {missing}"
    for name in CHECKPOINT_FILES:
        if name.endswith(".safetensors"):
            why = safetensors_problem(path / name)
        else:
            try:
                json.loads((path / name).read_text())
                why = None
            except (OSError, ValueError) as exc:
                why = f"unreadable ({exc})"
        if why:
            return f"{name}: {why}"
    return None


def newest_valid_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint that verifies, warning about each newer one it passes over.

    None when there is no checkpoint at all; an error when there are some and none verifies,
    since starting from scratch would silently throw the run away.
    """
    found = list_checkpoints(out_dir)
    problems = []
    for _, path in reversed(found):
        why = checkpoint_problem(path)
        if why is None:
            return path
        warnings.warn(f"skipping damaged checkpoint {path}: {why}; trying the one before it", stacklevel=2)
        problems.append(f"{path.name}: {why}")
    if found:
        raise ValueError(
            f"no checkpoint in {checkpoints_root(out_dir)} can be resumed from ({'; '.join(problems)}). "
            "Restore a good copy, or move the folder away to start the run over."
        )
    return None


def clean_temp(out_dir: str | os.PathLike) -> None:
    root = checkpoints_root(out_dir)
    if root.is_dir():
        for p in root.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)


# --- RNG ---------------------------------------------------------------------------------


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain JSON (python, numpy, torch CPU and current CUDA device)."""
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = _b64(torch.cuda.get_rng_state())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_unb64(state["cuda"]))


# --- optimizer state as safetensors + JSON ---------------------------------------------------


def save_optimizer_state(sd: dict[str, Any], directory: Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    meta = {"param_groups": sd["param_groups"], "scalars": scalars}
    (directory / "optimizer.json").write_text(json.dumps(meta, indent=1))


def load_optimizer_state(directory: Path) -> dict[str, Any]:
    meta = json.loads((directory / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in load_file(str(directory / "optimizer.safetensors")).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = tensor
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = meta["param_groups"]
    for g in groups:  # JSON turned tuples into lists; torch compares betas etc. as given
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


# --- whole checkpoints ----------------------------------------------------------------------


def _save_pretrained(model: nn.Module, directory: Path) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory)
    else:  # a bare nn.Module (tests, custom models): weights only
        directory.mkdir(parents=True, exist_ok=True)
        save_model(model, str(directory / "model.safetensors"))
        canonicalize_safetensors(directory / "model.safetensors")


def save_checkpoint(
    out_dir: str | os.PathLike,
    step: int,
    *,
    ema_model: nn.Module,
    live_model: nn.Module,
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    config: dict[str, Any],
    keep_last: int,
    bins: Any = None,
    extra_json: dict[str, dict] | None = None,
) -> Path:
    """Write one checkpoint atomically, then delete all but the newest `keep_last`. Rank 0 only.
    `extra_json`: {file name: JSON object} written beside the weights (the pipeline files)."""
    root = checkpoints_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _save_pretrained(ema_model, tmp / "model")
    save_model(live_model, str(tmp / "live.safetensors"))
    canonicalize_safetensors(tmp / "live.safetensors")
    save_optimizer_state(optimizer_state, tmp)
    (tmp / "train_config.json").write_text(json.dumps(config, indent=2))
    if bins is not None:  # the edges travel with the weights (a checkpoint is a pipeline folder)
        bins.save(tmp / "bins.json")
    for name, doc in (extra_json or {}).items():
        (tmp / name).write_text(json.dumps(doc, indent=2))
    # Written last: list_checkpoints only trusts directories that have it.
    state = dict(trainer_state, format_version=FORMAT_VERSION)
    with open(tmp / "trainer_state.json", "w") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():  # same step saved again (e.g. final save right after a resume)
        old = root / f".tmp-old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for _, path in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path: str | os.PathLike, *, ema_model: nn.Module, live_model: nn.Module) -> dict[str, Any]:
    """Load weights into both models in place; return trainer state, config and optimizer state."""
    path = Path(path)
    why = checkpoint_problem(path)
    if why:
        raise ValueError(f"checkpoint {path} cannot be resumed from: {why}")
    load_model(live_model, str(path / "live.safetensors"), strict=True)
    load_model(ema_model, str(path / "model" / "model.safetensors"), strict=True)
    return {
        "trainer_state": json.loads((path / "trainer_state.json").read_text()),
        "config": json.loads((path / "train_config.json").read_text()),
        "optimizer": load_optimizer_state(path),
    }


def pipeline_files(config, model_config) -> dict[str, dict]:
    """What makes a checkpoint a pipeline folder too (RewardFlowPipeline.from_pretrained reads
    it): the sampling config with the run's settings, and the text encoder's reference."""
    from rewardflow.data.text import DEFAULT_MAX_LENGTH
    from rewardflow.sampling.pipeline_io import CONFIG_NAME, TEXT_NAME, pipeline_config_doc

    settings: dict[str, Any] = {"run_config": config.to_dict()}
    latent = False
    if config.data.latents:  # the data dir holds the normalisation and names the VAE
        from rewardflow.data.latents import LatentStats

        stats = LatentStats.load(config.data.path)
        settings["latent_stats"] = {"mean": stats.mean, "std": stats.std, "vae": stats.vae}
        latent = bool(stats.vae)
    text = {"model_id": config.data.text_encoder, "max_length": DEFAULT_MAX_LENGTH}  # the trainer's encoder
    return {CONFIG_NAME: pipeline_config_doc(model_config, latent, settings), TEXT_NAME: text}
