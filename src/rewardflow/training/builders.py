"""Turn a TrainConfig into the objects a run needs: reward keys, data, model, callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .callbacks import Callback, RewardEvalCallback, SampleGridCallback, default_prompts
from .config import TrainConfig
from .distributed import DataContext

__all__ = ["build_data", "build_model", "build_text_encoder", "default_callbacks", "resolve_reward_keys", "run_bins"]


def _bins_keys(config: TrainConfig) -> list[str]:
    if not config.data.path:
        return []
    path = Path(config.data.path) / "bins.json"
    if not path.is_file():
        raise FileNotFoundError(f"data.mode=miro with no data.reward_keys needs {path} to list the rewards")
    from rewardflow.data.binning import RewardBins

    return list(RewardBins.load(path).keys)


def resolve_reward_keys(config: TrainConfig, model: nn.Module | None = None, data: Any = None) -> list[str]:
    """The ordered reward keys of the run: explicit config, else the model's, else the data's bins."""
    d = config.data
    if d.mode == "baseline":
        return []
    if d.reward_keys:
        return list(d.reward_keys)
    keys = getattr(getattr(model, "config", None), "reward_keys", None)
    if keys:
        return list(keys)
    keys = getattr(data, "reward_keys", None)
    if keys:
        return list(keys)
    return _bins_keys(config)


_TEXT_ENCODERS: dict[tuple, Any] = {}


def build_text_encoder(config: TrainConfig):
    """One encoder per process and settings (the data, sample grids and evaluation share it)."""
    from rewardflow.data.text import TextEncoder

    d = config.data
    key = (d.text_encoder, d.text_cache)
    if key not in _TEXT_ENCODERS:
        cache = Path(d.text_cache) / "text_cache.safetensors" if d.text_cache else None
        _TEXT_ENCODERS[key] = TextEncoder(d.text_encoder, cache_path=cache)
    return _TEXT_ENCODERS[key]


def build_data(config: TrainConfig, ctx: DataContext):
    from rewardflow.data.datasets import ShardDataset

    d = config.data
    if not d.path:
        raise ValueError("data.path is not set: point it at a directory of shards (+ scores and bins.json)")
    keys = ctx.reward_keys or resolve_reward_keys(config)
    return ShardDataset(
        d.path,
        keys,
        batch_size=ctx.per_device_batch,
        text_encoder=build_text_encoder(config),
        image_size=d.image_size,
        latents=d.latents,
        seed=config.seed,
        shuffle=d.shuffle,
        rank=ctx.rank,
        world_size=ctx.world_size,
        num_workers=d.workers,
        in_memory=d.in_memory,
        nonfinite_rewards=d.nonfinite_rewards,
    )


def build_model(config: TrainConfig, reward_keys: list[str], data: Any = None) -> nn.Module:
    from rewardflow.models import build_model as build
    from rewardflow.models import load_model, model_config_from_preset

    m = config.model
    if m.init_from:
        model = load_model(m.init_from)
        if list(model.config.reward_keys) != list(reward_keys):
            raise ValueError(
                f"model.init_from {m.init_from} is conditioned on {list(model.config.reward_keys)}, "
                f"the run on {reward_keys}"
            )
        return model.train()
    overrides = dict(m.overrides)
    overrides.setdefault("image_size", config.data.image_size)
    enc = getattr(data, "text_encoder", None)
    if enc is not None and getattr(enc, "dim", None):
        overrides.setdefault("text_dim", int(enc.dim))
    model = build(model_config_from_preset(m.preset, reward_keys=tuple(reward_keys), **overrides))
    return model.train()


def run_bins(config: TrainConfig, reward_keys: list[str]):
    """The bins restricted to the run's keys (what a checkpoint ships), or None."""
    if not reward_keys or not config.data.path:
        return None
    path = Path(config.data.path) / "bins.json"
    if not path.is_file():
        return None
    from rewardflow.data.binning import RewardBins

    b = RewardBins.load(path)
    return RewardBins(
        keys=list(reward_keys),
        edges={k: b.edges[k] for k in reward_keys},
        num_bins=b.num_bins,
        method=b.method,
        meta=dict(b.meta),
    )


def default_callbacks(config: TrainConfig, reward_keys: list[str]) -> list[Callback]:
    s, e = config.sample, config.eval
    if not (s.every or e.every):
        return []
    enc = build_text_encoder(config)
    cbs: list[Callback] = []
    if s.every:
        prompts = s.prompts or default_prompts(16, seed=s.seed)
        cbs.append(SampleGridCallback(enc, prompts, s.every, s.num_steps, s.guidance_scale, s.solver, s.seed))
    if e.every:
        from rewardflow.rewards import list_rewards
        from rewardflow.utils.plugins import SHAPES_REWARDS, load_object

        builtin = load_object(SHAPES_REWARDS).BUILTIN_REWARDS

        registered = set(list_rewards())
        # Fallback for a baseline: the cheap built-in rewards, never the model backends, which
        # need weights on disk (and one needs a licence opt-in).
        names = e.rewards or [k for k in reward_keys if k in registered] or list(builtin)
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise ValueError(f"eval.rewards {unknown} are not registered rewards; known: {sorted(registered)}")
        prompts = e.prompts or default_prompts(e.num_prompts, seed=e.seed)
        cbs.append(
            RewardEvalCallback(enc, prompts, names, e.every, e.num_steps, e.guidance_scale, e.seed, e.batch_size)
        )
    return cbs
