"""rewardflow.flow: the flow-matching path, training-time distributions and loss (pure maths)."""

from .loss import flow_matching_loss
from .paths import expand_time, interpolate, target_velocity
from .time_sampling import TIME_KINDS, TimeSamplerConfig, sample_time, shift_time

__all__ = [
    "TIME_KINDS",
    "TimeSamplerConfig",
    "expand_time",
    "flow_matching_loss",
    "interpolate",
    "sample_time",
    "shift_time",
    "target_velocity",
]
