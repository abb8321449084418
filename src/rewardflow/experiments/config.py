"""Settings of `rewardflow experiment paper`.

The world, model, optimiser, schedule and sampler are the demo's (`rewardflow.demo.DemoConfig`),
so the experiment inherits the settings the demo measured to learn shapes on a CPU; the fields
here only add what the paper's extra figures need. `--set key=value` routes each key to whichever
of the two dataclasses owns it.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardflow.utils.typed_config import build, parse_override, set_dotted


@dataclass
class PaperConfig:
    single_reward_models: bool = True  # one model per built-in reward (reward-hacking radar)
    tts_per_category: int = 4  # test-time scaling prompts per GenEval category
    tts_max_n: int = 32
    sweep_reward: str = "colorfulness"  # the quality reward dialled in the target sweep
    sweep_levels: list[float] = field(default_factory=lambda: [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])
    sweep_per_category: int = 8
    speedup_final_window: int = 1  # 1 = the paper's definition (baseline's last evaluation)
    # MIRO evaluated a second time (curves, speedup, GenEval-style table) at these s+ targets,
    # unnamed rewards 1: the paper's tuned vector (its aesthetic = 0.625). Empty: all-1 only.
    tuned_targets: dict[str, float] = field(default_factory=dict)

    def validate(self, rewards: list[str]) -> None:
        if self.sweep_reward not in rewards:
            raise ValueError(f"sweep_reward {self.sweep_reward!r} is not one of the rewards {rewards}")
        if self.tts_max_n < 1 or self.tts_per_category < 1 or self.sweep_per_category < 1:
            raise ValueError("tts_max_n, tts_per_category and sweep_per_category must be >= 1")
        if not all(0.0 <= v <= 1.0 for v in self.sweep_levels) or not self.sweep_levels:
            raise ValueError("sweep_levels must be a non-empty list in [0, 1]")
        if not isinstance(self.tuned_targets, dict):
            raise ValueError(f"tuned_targets must be a mapping like {{colorfulness: 0.5}}, got {self.tuned_targets!r}")
        bad = [k for k in self.tuned_targets if k not in rewards]
        if bad:
            raise ValueError(f"tuned_targets: unknown reward(s) {bad}; the rewards are {rewards}")
        if not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in self.tuned_targets.values()):
            raise ValueError(f"tuned_targets values must be numbers in [0, 1], got {self.tuned_targets}")


def quick_paper() -> PaperConfig:
    return PaperConfig(tts_per_category=1, tts_max_n=4, sweep_levels=[0.0, 1.0], sweep_per_category=1)


def load_configs(path: str | Path | None, sets: list[str], quick: bool):
    """(DemoConfig, PaperConfig) from defaults (or the quick presets), a YAML file holding keys of
    either, and `key=value` overrides, each routed to the dataclass that owns it (the same typed
    dialect as the training config)."""
    from rewardflow.demo import DemoConfig
    from rewardflow.demo import quick as demo_quick
    from rewardflow.studies.config import overlay

    raw: dict[str, Any] = {}
    if path is not None:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: an experiment config must be a mapping")
    paper_raw = dataclasses.asdict(quick_paper() if quick else PaperConfig())
    demo_raw, demo_sets = {}, []
    for key, value in raw.items():
        _check_known(key)
        if key in PAPER_KEYS:
            set_dotted(PaperConfig, paper_raw, key, value, noun="experiment setting")
        else:
            demo_raw[key] = value
    for item in sets:
        key, value = parse_override(item)
        _check_known(key.split(".")[0])
        if key.split(".")[0] in PAPER_KEYS:
            set_dotted(PaperConfig, paper_raw, key, value, noun="experiment setting")
        else:
            demo_sets.append(item)
    base = demo_quick() if quick else DemoConfig()
    if demo_raw:
        base = DemoConfig.from_dict(overlay(base.to_dict(), demo_raw))
    demo = DemoConfig.load(None, demo_sets, base=base)
    if "eval_every" not in raw and not any(s.split("=", 1)[0].strip() == "eval_every" for s in demo_sets):
        # Speedup interpolates between evaluations: ~12 points per curve instead of the demo's 6.
        demo.eval_every = max(1, demo.steps // 12)
    paper = build(PaperConfig, paper_raw, noun="experiment setting")
    paper.validate(list(demo.rewards))
    return demo, paper


PAPER_KEYS = frozenset(f.name for f in dataclasses.fields(PaperConfig))


def _check_known(key: str) -> None:
    """A key neither config has: say so with the nearest name of either."""
    from rewardflow.demo import DemoConfig
    from rewardflow.studies.config import TRAIN_ALIASES

    names = sorted(PAPER_KEYS | {f.name for f in dataclasses.fields(DemoConfig)} | set(TRAIN_ALIASES))
    if key in names:
        return
    near = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"unknown demo setting or experiment setting {key!r}.{hint} Valid: {', '.join(names)}")
