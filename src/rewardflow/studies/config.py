"""DemoConfig: every setting of a study (`rewardflow demo`, `rewardflow experiment paper`), with
the measured defaults and a tiny preset.

The training settings are a TrainConfig, embedded as `train`: the configuration every model of
the study starts from, before the study fills in its data folder, reward mode and keys, image
size, output folder, seed and checkpoint cadence. The demo's short names for the settings it
tunes (`steps`, `lr`, `batch_size`, `model_overrides`, ...) are read-only views of it, and on the
command line or in a YAML file they name the same settings (`--set steps=600` is
`--set train.max_steps=600`).

The defaults are sized for a 2-core laptop CPU and a <= 15 minute job (docs/DEMO.md has the
measurements behind each choice). `quick()` is the same pipeline at toy size for the smoke test.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardflow.training.config import TrainConfig
from rewardflow.utils.typed_config import build, parse_override, set_dotted

REWARDS = ("shapes_alignment", "sharpness", "cleanliness", "colorfulness")


@dataclass
class DemoConfig:
    # --- world and data ------------------------------------------------------------------
    shapes_preset: str = "easy"  # 1-2 large objects: learnable in minutes (shapes/config.py)
    shapes_overrides: dict[str, Any] = field(default_factory=dict)  # ShapesConfig fields
    num_images: int = 5000
    data_workers: int = 2  # processes for generation and scoring (one shard per task)
    shard_size: int = 500
    rewards: list[str] = field(default_factory=lambda: list(REWARDS))
    num_bins: int = 64
    # --- training (identical for every model except the reward conditioning) -------------
    train: TrainConfig = field(default_factory=lambda: demo_training())
    eval_every: int = 200  # steps between points of the training curves
    eval_prompts: int = 36  # images per curve point (6 per GenEval category)
    eval_steps: int = 12  # Euler steps when sampling for the curves
    # --- sampling and evaluation ------------------------------------------------------------
    guidance: float = 3.0  # CFG scale of every final sample (text + rewards contrast)
    sample_steps: int = 20
    geneval_per_category: int = 24  # GenEval-style table: images per category and model
    grid_prompts: int = 12
    grid_seeds: int = 4
    control_reward: str = "colorfulness"  # graded response; cleanliness saturates (docs/DEMO.md)
    control_levels: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    control_images: int = 36
    # Guidance sweep on held-out prompts, which picks each model's saved default: one scale on
    # text and rewards together for both models, and (text, reward) scale pairs for MIRO.
    sweep_scales: list[float] = field(default_factory=lambda: [0.0, 1.0, 1.5, 2.0, 3.0, 5.0])
    # A reward scale below 1 pulls the sample toward s- (measured: noise sigma ~11 at 0.5), so the
    # pairs start at 1. Few candidates on many images: the choice is less at the mercy of noise.
    sweep_text_scales: list[float] = field(default_factory=lambda: [3.0])
    sweep_reward_scales: list[float] = field(default_factory=lambda: [1.0, 2.0])
    sweep_intervals: list[list[float]] = field(default_factory=list)  # [lo, hi]: guidance only while lo <= t <= hi
    sweep_images: int = 96
    sample_batch: int = 64
    threads: int = 0  # torch threads; 0 = chosen at start (all cores only on an idle machine when clearly faster)
    parallel_train: bool = True  # on >= 2 cores (unless threads=1): train both models at once, one process each
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"invalid demo config: {msg}")

        need(self.num_images >= 1 and self.steps >= 1, "num_images and steps must be >= 1")
        need(
            self.control_reward in self.rewards,
            f"control_reward {self.control_reward!r} is not in rewards {self.rewards}",
        )
        need(all(0.0 <= v <= 1.0 for v in self.control_levels), "control_levels must lie in [0, 1]")
        need(len(self.control_levels) >= 2, "control_levels needs at least two levels")
        need(self.eval_every >= 0 and self.eval_prompts >= 1, "eval_every must be >= 0 and eval_prompts >= 1")
        need(len(self.sweep_scales) >= 1, "sweep_scales needs at least one scale")
        need(
            all(len(iv) == 2 and 0.0 <= iv[0] < iv[1] <= 1.0 for iv in self.sweep_intervals),
            f"sweep_intervals must be [lo, hi] pairs with 0 <= lo < hi <= 1, got {self.sweep_intervals}",
        )
        need(
            min(self.sweep_scales + self.sweep_text_scales + self.sweep_reward_scales) >= 0.0,
            "sweep_scales, sweep_text_scales and sweep_reward_scales must be >= 0",
        )

    # --- the demo's short names for the training settings it tunes (read-only) ---------------
    steps = property(lambda self: self.train.max_steps)
    batch_size = property(lambda self: self.train.data.batch_size)
    lr = property(lambda self: self.train.optim.lr)
    warmup_steps = property(lambda self: self.train.optim.warmup_steps)
    model_preset = property(lambda self: self.train.model.preset)
    model_overrides = property(lambda self: self.train.model.overrides)
    text_dropout = property(lambda self: self.train.text_dropout)
    text_dropout_rewards = property(lambda self: self.train.text_dropout_rewards)
    reward_dropout = property(lambda self: self.train.reward_dropout)
    ema_decay = property(lambda self: self.train.ema.decay)

    def replace(self, **changes) -> DemoConfig:
        """A copy with `changes`, short names allowed (`cfg.replace(steps=600, sample_steps=8)`)."""
        d = self.to_dict()
        for key, value in changes.items():
            set_dotted(type(self), d, TRAIN_ALIASES.get(key, key), value, noun="demo setting")
        return type(self).from_dict(d)

    # --- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section(self, *names: str) -> dict[str, Any]:
        d = self.to_dict()
        return {n: d[n] for n in names}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemoConfig:
        """From `to_dict`'s form; short names (`steps`, ...) and a partial `train` mapping are
        laid over the defaults."""
        for key in d:
            _check_name(key)
        full = overlay(cls().to_dict(), {k: v for k, v in d.items() if k not in TRAIN_ALIASES})
        for key, value in d.items():
            if key in TRAIN_ALIASES:
                set_dotted(cls, full, TRAIN_ALIASES[key], value, noun="demo setting")
        return build(cls, full, noun="demo setting")

    @classmethod
    def load(
        cls, path: str | Path | None = None, overrides: list[str] | None = None, base: DemoConfig | None = None
    ) -> DemoConfig:
        """`base` (default settings), then the YAML file, then `key=value` overrides (dotted keys
        reach into the *_overrides mappings): the same dialect as the training config."""
        d = (base or cls()).to_dict()
        if path is not None:
            raw = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(raw, dict):
                raise ValueError(f"{path}: a demo config must be a mapping")
            d = cls.from_dict(overlay(d, raw)).to_dict()
        for item in overrides or []:
            key, value = parse_override(item)
            head, dot, rest = key.partition(".")
            _check_name(head)
            set_dotted(cls, d, TRAIN_ALIASES.get(head, head) + dot + rest, value, noun="demo setting")
        return cls.from_dict(d)


def quick() -> DemoConfig:
    """The whole demo at toy size (a minute on a CPU): for smoke tests, not for looking at."""
    return DemoConfig().replace(
        num_images=96,
        shard_size=48,
        data_workers=1,
        num_bins=8,
        model_preset="unet-tiny",
        steps=4,
        batch_size=8,
        warmup_steps=1,
        eval_every=2,
        eval_prompts=6,
        eval_steps=2,
        sample_steps=2,
        geneval_per_category=2,
        grid_prompts=3,
        grid_seeds=2,
        control_levels=[0.0, 0.5, 1.0],
        control_images=4,
        sweep_scales=[0.0, 3.0],
        sweep_text_scales=[1.0],
        sweep_reward_scales=[1.0],
        sweep_images=6,
        sample_batch=16,
    )


def demo_training() -> TrainConfig:
    """The training every study model starts from: measured on ShapesWorld for a 2-core CPU."""
    return TrainConfig.from_dict(
        dict(
            # unet-demo at full resolution (patch_size 1) and 16 base channels: the preset's 2x
            # pixel-unshuffle stem leaves a 2-pixel checkerboard that reads as noise to
            # `cleanliness` (docs/DEMO.md, "How the settings were chosen").
            model=dict(
                preset="unet-demo",
                overrides=dict(
                    patch_size=1,
                    hidden_size=16,
                    channel_mult=[1, 2, 4],
                    attn_resolutions=[8],
                    time_embed_dim=128,
                    context_dim=64,
                    num_heads=4,
                ),
            ),
            data=dict(batch_size=16, workers=0, in_memory=True, shuffle=True),
            optim=dict(
                optimizer="adamw",
                lr=1.5e-3,
                betas=[0.9, 0.99],
                weight_decay=0.0,
                warmup_steps=100,
                schedule="cosine",
                min_lr_ratio=0.1,
                grad_clip=1.0,
            ),
            time=dict(kind="logit_normal", mean=0.0, std=1.0, shift=1.0),
            text_dropout=0.1,
            # Rewards of a caption-dropped row: every reward at 0, the unconditional model the
            # negative guidance branch uses (docs/INFERENCE.md).
            text_dropout_rewards="zero",
            # > 0 lets sampling leave a reward unspecified; 0, as the paper's released models.
            reward_dropout=0.0,
            ema=dict(decay=0.999, warmup=True),
            max_steps=2400,  # 1400 learns the quality rewards; alignment control needs ~2400
            tensorboard=False,
            sample=dict(every=0),
            eval=dict(every=0, at_start=True),
        )
    )


# The short names of the demo's training settings, and the TrainConfig key each one is.
TRAIN_ALIASES = {
    "steps": "train.max_steps",
    "batch_size": "train.data.batch_size",
    "lr": "train.optim.lr",
    "warmup_steps": "train.optim.warmup_steps",
    "model_preset": "train.model.preset",
    "model_overrides": "train.model.overrides",
    "time_kind": "train.time.kind",
    "time_mean": "train.time.mean",
    "time_std": "train.time.std",
    "text_dropout": "train.text_dropout",
    "text_dropout_rewards": "train.text_dropout_rewards",
    "reward_dropout": "train.reward_dropout",
    "ema_decay": "train.ema.decay",
}


def _check_name(key: str) -> None:
    """A top-level name that is neither a setting nor a short name: say so, with the nearest."""
    names = [f.name for f in dataclasses.fields(DemoConfig)] + list(TRAIN_ALIASES)
    if key in names:
        return
    near = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"unknown demo setting {key!r}.{hint} Valid: {', '.join(names)}")


def overlay(base: dict, patch: dict) -> dict:
    """`patch` laid over `base` in place, mappings merged key by key (a YAML file may name only
    the settings it changes)."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k not in ("overrides", "shapes_overrides"):
            overlay(base[k], v)
        else:
            base[k] = v
    return base
