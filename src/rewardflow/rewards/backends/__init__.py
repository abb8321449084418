"""Real reward-model backends (CLIP family through `transformers`), registered on import.

Importing this package is cheap: each backend imports transformers and loads weights only on
its first `score` call. See docs/REWARD_BACKENDS.md for keys, weights and stored values.
"""

from rewardflow.rewards.backends import (  # noqa: F401  (registers)
    aesthetic,
    clipscore,
    hpsv2,
    image_reward,
    pickscore,
    sciscore,
    vqascore,
)
