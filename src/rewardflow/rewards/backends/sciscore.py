"""`sciscore_score`: SciScore, a CLIP-H/14 fine-tuned to prefer scientifically plausible images
(Science-T2I). Its release is a transformers CLIPModel with its own processor in the same repo;
it is scored as PickScore is: ``logit_scale.exp() * cos(image, text) / 100``, the value the
MIRO annotations store.
"""

from __future__ import annotations

from rewardflow.rewards.backends.pickscore import PickScore
from rewardflow.rewards.registry import register_reward


@register_reward("sciscore_score")
class SciScore(PickScore):
    """SciScore (logit_scale.exp() * cos / 100, PickScore's formula on other weights)."""

    version = "1"
    default_model = "Jialuo21/SciScore"
    default_processor = "Jialuo21/SciScore"
    path_env = "REWARDFLOW_SCISCORE_MODEL"
    processor_env = "REWARDFLOW_SCISCORE_PROCESSOR"
