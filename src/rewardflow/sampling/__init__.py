"""rewardflow.sampling: ODE solvers, multi-reward guidance, reward targets and per-image noise."""

from .solvers import SOLVERS, euler, heun, num_evaluations, solve, time_grid

__all__ = ["SOLVERS", "euler", "heun", "num_evaluations", "solve", "time_grid"]
