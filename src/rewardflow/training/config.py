"""TrainConfig: the typed run configuration, loaded from YAML plus dotted `key=value` overrides.

The config is saved as JSON with every checkpoint and compared on resume, because a silently
changed setting (the official MIRO code's reward-dropout default is the cautionary tale) makes
a resumed run a different experiment.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardflow.flow import TimeSamplerConfig
from rewardflow.utils.typed_config import build, flatten, get_dotted, parse_override, set_dotted

MODES = ("baseline", "single", "miro")
TEXT_DROPOUT_REWARDS = ("keep", "zero", "null_token")
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "lamb")
SCHEDULES = ("cosine", "linear", "constant")

# Settings that change how a run is observed or paced, not what it computes: they may differ
# on resume without --allow-change.
OPERATIONAL_KEYS = (
    "out_dir",
    "log_every",
    "progress",
    "tensorboard",
    "data.workers",
    "checkpoint.every",
    "checkpoint.keep_last",
    "sample.every",
    "eval.every",
)


@dataclass
class ModelSection:
    preset: str = "dit-tiny"  # a name known to rewardflow.models presets
    overrides: dict[str, Any] = field(default_factory=dict)  # DenoiserConfig fields to change
    init_from: str | None = None  # a save_pretrained directory to fine-tune from


@dataclass
class DataSection:
    path: str | None = None  # directory of shards + score Parquet + bins.json
    mode: str = "miro"  # baseline (no rewards) | single (one reward) | miro (all rewards)
    reward_keys: list[str] = field(default_factory=list)  # empty in miro mode -> every key in bins.json
    image_size: int = 32
    batch_size: int = 64  # GLOBAL images per optimizer step (all ranks x accumulation)
    workers: int = 2
    shuffle: bool = True
    in_memory: bool = False  # decode the whole dataset once (small sets such as ShapesWorld)
    latents: bool = False  # shards hold precomputed latents instead of images
    text_encoder: str | None = None  # None -> the library default (offline all-MiniLM-L6-v2)
    text_cache: str | None = None  # directory for cached caption embeddings
    # NaN / inf reward scores: "error" stops training and names them; "neutral" feeds them as
    # 0.5, the middle of the reward range (for a few failed scores in a large dataset).
    nonfinite_rewards: str = "error"


@dataclass
class OptimSection:
    optimizer: str = "adamw"  # adamw | lamb
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    min_lr_ratio: float = 0.0  # floor of the decay, as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping (norm is still logged)
    grad_accumulation: int = 1


@dataclass
class EMASection:
    decay: float = 0.999
    # Ramp the decay as min(decay, (1 + n) / (10 + n)) so the average is not dominated by the
    # random initialisation in short runs.
    warmup: bool = True


@dataclass
class CheckpointSection:
    every: int = 1000  # steps; 0 -> only at the end
    keep_last: int = 3


@dataclass
class SampleSection:
    every: int = 0  # steps between sample grids; 0 disables
    prompts: list[str] = field(default_factory=list)  # empty -> a built-in ShapesWorld prompt set
    num_steps: int = 20
    guidance_scale: float = 3.0
    solver: str = "euler"
    seed: int = 0


@dataclass
class EvalSection:
    every: int = 0  # steps between reward evaluations; 0 disables
    rewards: list[str] = field(default_factory=list)  # empty -> the run's reward keys (built-in ones)
    prompts: list[str] = field(default_factory=list)  # empty -> a built-in fixed prompt set
    num_prompts: int = 64
    num_steps: int = 20
    guidance_scale: float = 3.0
    batch_size: int = 64
    seed: int = 1234
    at_start: bool = True  # evaluate step 0 too, so the curve has its starting point


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    time: TimeSamplerConfig = field(default_factory=TimeSamplerConfig)
    text_dropout: float = 0.1  # probability of swapping a caption for the learned null text
    reward_dropout: float = 0.0  # per-reward probability of the learned null reward token
    # What a caption-dropped row conditions on: "keep" its true rewards, "zero" every reward at
    # the lowest bin (the official MIRO code), or "null_token" every reward's learned null token.
    text_dropout_rewards: str = "zero"
    ema: EMASection = field(default_factory=EMASection)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; weights, optimizer and EMA stay fp32)
    compile: bool = False
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True  # used when the tensorboard package is installed
    sample: SampleSection = field(default_factory=SampleSection)
    eval: EvalSection = field(default_factory=EvalSection)
    seed: int = 0
    max_steps: int = 10000
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"invalid training config: {msg}")

        d, o = self.data, self.optim
        need(d.mode in MODES, f"data.mode must be one of {MODES}, got {d.mode!r}")
        if d.mode == "single":
            need(
                len(d.reward_keys) == 1,
                f"data.mode=single needs exactly one data.reward_keys entry, got {d.reward_keys}",
            )
        if d.mode == "baseline":
            need(
                not d.reward_keys, f"data.mode=baseline trains without rewards; remove data.reward_keys {d.reward_keys}"
            )
        need(len(set(d.reward_keys)) == len(d.reward_keys), f"duplicate data.reward_keys {d.reward_keys}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(o.optimizer in OPTIMIZERS, f"optim.optimizer must be one of {OPTIMIZERS}, got {o.optimizer!r}")
        need(o.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {o.schedule!r}")
        need(
            len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
            f"optim.betas must be two numbers in [0, 1), got {o.betas}",
        )
        need(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
        need(o.grad_accumulation >= 1, "optim.grad_accumulation must be >= 1")
        need(o.warmup_steps >= 0 and o.grad_clip >= 0, "optim.warmup_steps and optim.grad_clip must be >= 0")
        need(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio must be in [0, 1]")
        need(0 <= self.text_dropout <= 1, f"text_dropout must be in [0, 1], got {self.text_dropout}")
        need(0 <= self.reward_dropout <= 1, f"reward_dropout must be in [0, 1], got {self.reward_dropout}")
        need(
            self.data.nonfinite_rewards in ("error", "neutral"),
            f"data.nonfinite_rewards must be 'error' or 'neutral', got {self.data.nonfinite_rewards!r}",
        )
        need(
            self.text_dropout_rewards in TEXT_DROPOUT_REWARDS,
            f"text_dropout_rewards must be one of {TEXT_DROPOUT_REWARDS}, got {self.text_dropout_rewards!r}",
        )
        need(0 <= self.ema.decay < 1, f"ema.decay must be in [0, 1), got {self.ema.decay}")
        need(d.batch_size >= 1 and self.max_steps >= 0, "data.batch_size must be >= 1 and max_steps >= 0")
        need(
            d.batch_size % o.grad_accumulation == 0,
            f"data.batch_size {d.batch_size} is not divisible by optim.grad_accumulation {o.grad_accumulation}",
        )
        need(self.checkpoint.keep_last >= 1, "checkpoint.keep_last must be >= 1")
        for name in ("log_every", "checkpoint.every", "sample.every", "eval.every"):
            need(get_dotted(self, name) >= 0, f"{name} must be >= 0")

    # --- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return build(cls, d)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
        """YAML (or JSON) file, then `key=value` overrides (dotted keys, YAML-typed values)."""
        raw: dict[str, Any] = {}
        if path is not None:
            text = Path(path).read_text()
            raw = yaml.safe_load(text) or {}
            if not isinstance(raw, dict):
                raise ValueError(f"{path}: a training config must be a mapping at the top level")
        for item in overrides or []:
            key, value = parse_override(item)
            set_dotted(cls, raw, key, value)
        return cls.from_dict(raw)


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old, new)} for every setting that differs (missing -> '<absent>')."""
    a, b = flatten(old), flatten(new)
    return {
        k: (a.get(k, "<absent>"), b.get(k, "<absent>"))
        for k in sorted(set(a) | set(b))
        if a.get(k, "<absent>") != b.get(k, "<absent>")
    }


# Fields added after checkpoints were first written, with the behaviour those checkpoints had.
LEGACY_DEFAULTS: dict[str, Any] = {"text_dropout_rewards": "keep", "data.nonfinite_rewards": "error"}


def check_resume_config(
    saved: dict[str, Any], current: dict[str, Any], allow: list[str] | tuple[str, ...] = ()
) -> None:
    """Raise if the run config changed since the checkpoint, naming each field and both values.

    `allow` lists dotted keys (or section prefixes like `optim`, or `*`) permitted to change.
    """
    allowed = tuple(OPERATIONAL_KEYS) + tuple(allow)
    saved = {**LEGACY_DEFAULTS, **flatten(saved)}  # checkpoints from before a field existed ran its old behaviour

    def ok(key: str) -> bool:
        return "*" in allowed or any(key == a or key.startswith(a + ".") for a in allowed)

    bad = {k: v for k, v in config_diff(saved, current).items() if not ok(k)}
    if bad:
        lines = "\n".join(f"  {k}: checkpoint has {v[0]!r}, now {v[1]!r}" for k, v in bad.items())
        raise ValueError(
            "the config differs from the one saved in the checkpoint being resumed:\n"
            f"{lines}\nRestore those values, start a new out_dir, or pass "
            + " ".join(f"--allow-change {k}" for k in bad)
            + " to continue with the new values."
        )


# --- typed construction ----------------------------------------------------------------------
