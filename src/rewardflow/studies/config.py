"""DemoConfig: every setting of `rewardflow demo`, with the measured defaults and a tiny preset.

The defaults are sized for a 2-core laptop CPU and a <= 15 minute job (docs/DEMO.md has the
measurements behind each choice). `quick()` is the same pipeline at toy size for the smoke test.
Any field can be changed from the command line (`--set model_overrides.hidden_size=48`) or a
YAML file (`--config configs/demo.yaml`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    # --- training (identical for both models except the reward conditioning) -------------
    model_preset: str = "unet-demo"
    # unet-demo at full resolution (patch_size 1) and 16 base channels: the preset's 2x
    # pixel-unshuffle stem leaves a 2-pixel checkerboard that reads as noise to `cleanliness`
    # (docs/DEMO.md, "How the settings were chosen").
    model_overrides: dict[str, Any] = field(
        default_factory=lambda: {
            "patch_size": 1,
            "hidden_size": 16,
            "channel_mult": [1, 2, 4],
            "attn_resolutions": [8],
            "time_embed_dim": 128,
            "context_dim": 64,
            "num_heads": 4,
        }
    )
    steps: int = 2400  # 1400 learns the quality rewards; alignment control needs ~2400 (docs/INFERENCE.md)
    batch_size: int = 16
    lr: float = 1.5e-3
    warmup_steps: int = 100
    time_kind: str = "logit_normal"
    time_mean: float = 0.0
    time_std: float = 1.0
    text_dropout: float = 0.1
    # Rewards of a caption-dropped training row: keep | zero | null_token (training/config.py).
    text_dropout_rewards: str = "zero"
    # Per-reward probability of the learned null token in training: > 0 lets sampling leave a
    # reward unspecified (reward_targets={key: None}). 0, as the paper's released models.
    reward_dropout: float = 0.0
    ema_decay: float = 0.999
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
        need(0.0 <= self.reward_dropout <= 1.0, f"reward_dropout must be in [0, 1], got {self.reward_dropout}")
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

    # --- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section(self, *names: str) -> dict[str, Any]:
        d = self.to_dict()
        return {n: d[n] for n in names}

    @staticmethod
    def digest(d: Any) -> str:
        """A short stable hash of settings: a stage reruns when the settings behind it change."""
        from .stages import digest

        return digest(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemoConfig:
        return build(cls, d, noun="demo setting")

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
            for key, value in raw.items():
                set_dotted(cls, d, key, value, noun="demo setting")
        for item in overrides or []:
            key, value = parse_override(item)
            set_dotted(cls, d, key, value, noun="demo setting")
        return cls.from_dict(d)


def quick() -> DemoConfig:
    """The whole demo at toy size (a minute on a CPU): for smoke tests, not for looking at."""
    return DemoConfig(
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
