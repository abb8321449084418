"""`pick_a_score_score`: PickScore_v1, a CLIP-H/14 fine-tuned on Pick-a-Pic preferences.

The checkpoint is a plain transformers CLIPModel; its processor (tokenizer + image settings)
lives in the LAION CLIP-H repo, as in the PickScore release. Stored value:
``logit_scale.exp() * cos(image, text) / 100`` (PickScore's logit, scaled to about [0, 0.3]).
"""

from __future__ import annotations

import torch

from rewardflow.rewards.backends.clip_common import ClipRewardBase
from rewardflow.rewards.registry import register_reward


@register_reward("pick_a_score_score")
class PickScore(ClipRewardBase):
    """PickScore_v1 preference score (logit_scale.exp() * cos / 100)."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 32
    default_model = "yuvalkirstain/PickScore_v1"
    default_processor = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    path_env = "REWARDFLOW_PICKSCORE_MODEL"
    processor_env = "REWARDFLOW_PICKSCORE_PROCESSOR"

    @torch.no_grad()
    def _score(self, images, captions):
        cos = (self.image_embeds(images) * self.text_embeds(captions)).sum(-1)
        return self.logit_scale() * cos / 100.0
