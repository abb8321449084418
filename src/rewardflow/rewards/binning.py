"""Reward binning lives in `rewardflow.data.binning` (the data layer turns scores into model
inputs with it); this module name stays importable for code written against it."""

from rewardflow.data.binning import *  # noqa: F403
