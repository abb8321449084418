"""Rewards: the interface and registry, built-in ShapesWorld rewards, binning, the scoring job.

from rewardflow.rewards import get_reward, list_rewards, RewardBins
r = get_reward("sharpness")
scores = r.score(images_uint8_bhwc, captions)      # float32 tensor (B,)
"""

from rewardflow.data.binning import RewardBins
from rewardflow.rewards.base import Reward, to_uint8_hwc, uint8_to_float
from rewardflow.rewards.registry import get_reward, get_reward_class, list_rewards, register_reward

__all__ = [
    "Reward",
    "RewardBins",
    "get_reward",
    "get_reward_class",
    "list_rewards",
    "register_reward",
    "to_uint8_hwc",
    "uint8_to_float",
]
