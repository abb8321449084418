"""rewardflow.sampling: ODE solvers, multi-reward guidance, reward targets and per-image noise."""

from .guidance import (
    Condition,
    concat_conditions,
    guided_velocity,
    guided_velocity_3,
    make_velocity_fn,
    make_velocity_fn_3,
)
from .noise import randn_per_seed
from .solvers import SOLVERS, euler, heun, num_evaluations, solve, time_grid
from .targets import RewardTargets, custom, high_quality, isolate, pairwise

__all__ = [
    "Condition",
    "RewardTargets",
    "SOLVERS",
    "concat_conditions",
    "custom",
    "euler",
    "guided_velocity",
    "guided_velocity_3",
    "heun",
    "high_quality",
    "isolate",
    "make_velocity_fn",
    "make_velocity_fn_3",
    "num_evaluations",
    "pairwise",
    "randn_per_seed",
    "solve",
    "time_grid",
]
