"""rewardflow.sampling: ODE solvers, multi-reward guidance, reward targets and per-image noise."""

from .guidance import (
    Condition,
    concat_conditions,
    guided_velocity,
    guided_velocity_3,
    make_velocity_fn,
    make_velocity_fn_3,
)
from .solvers import SOLVERS, euler, heun, num_evaluations, solve, time_grid

__all__ = [
    "Condition",
    "SOLVERS",
    "concat_conditions",
    "euler",
    "guided_velocity",
    "guided_velocity_3",
    "heun",
    "make_velocity_fn",
    "make_velocity_fn_3",
    "num_evaluations",
    "solve",
    "time_grid",
]
