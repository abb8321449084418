"""Text-image alignment scores: `clip_score` (jina-clip-v2, as MIRO trains on) and
`openai_clip_score` (OpenAI CLIP ViT-L/14, the usual evaluation CLIPScore).

jina-clip-v2 is CC-BY-NC-4.0 and its modelling code lives in the hub repo (``trust_remote_code``):
running it executes third-party code and binds the user to a non-commercial licence, so it only
loads when the caller explicitly passes ``trust_remote_code=True``.
"""

from __future__ import annotations

import numpy as np
import torch

from rewardflow.rewards.backends.clip_common import ClipRewardBase, env_or, resolve_dir
from rewardflow.rewards.base import to_pil
from rewardflow.rewards.registry import register_reward

JINA_REFUSAL = (
    "clip_score uses jina-clip-v2 (jinaai/jina-clip-v2), whose weights are licensed CC-BY-NC-4.0"
    " (non-commercial use only) and whose model code is custom code downloaded with the weights."
    " Loading it runs that code (transformers trust_remote_code). If you accept both, pass"
    " trust_remote_code=True (e.g. get_reward('clip_score', trust_remote_code=True), or set"
    " REWARDFLOW_TRUST_REMOTE_CODE=1 for `rewardflow score`). For a permissively licensed alignment"
    " score use 'openai_clip_score' (OpenAI CLIP ViT-L/14, MIT)."
)


@register_reward("openai_clip_score")
class OpenAIClipScore(ClipRewardBase):
    """CLIPScore with OpenAI CLIP ViT-L/14: max(100 * cos, 0) (evaluation only)."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 64
    default_model = "openai/clip-vit-large-patch14"
    path_env = "REWARDFLOW_OPENAI_CLIP"

    @torch.no_grad()
    def _score(self, images, captions):
        cos = (self.image_embeds(images) * self.text_embeds(captions)).sum(-1)
        return (100.0 * cos).clamp_min(0.0)


@register_reward("clip_score")
class JinaClipScore(ClipRewardBase):
    """jina-clip-v2 alignment (logit_scale.exp() * cos / 100); needs trust_remote_code=True."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 32
    default_model = "jinaai/jina-clip-v2"
    path_env = "REWARDFLOW_JINA_CLIP"

    def __init__(
        self,
        path=None,
        device=None,
        dtype=None,
        allow_download: bool = False,
        batch_size: int | None = None,
        trust_remote_code: bool | None = None,
    ):
        super().__init__(path, device, dtype, allow_download, batch_size)
        if trust_remote_code is None:
            trust_remote_code = env_or(None, "REWARDFLOW_TRUST_REMOTE_CODE", "0").lower() in ("1", "true", "yes")
        self.trust_remote_code = bool(trust_remote_code)
        if not self.trust_remote_code:
            # Refuse at construction: a scoring job should fail before it reads any shard.
            raise PermissionError(JINA_REFUSAL)

    def _load(self) -> None:
        from transformers import AutoModel

        d = resolve_dir(self.path, "clip_score (jina-clip-v2)", self.allow_download)
        model = AutoModel.from_pretrained(str(d), trust_remote_code=True, dtype=self.dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def _score(self, images, captions):
        self.ensure_loaded()
        # jina's own encoders do their preprocessing/tokenisation (its processor is remote code too)
        img = torch.as_tensor(np.asarray(self.model.encode_image(to_pil(images)))).float()
        txt = torch.as_tensor(np.asarray(self.model.encode_text(list(captions)))).float()
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return self.logit_scale() * (img * txt).sum(-1) / 100.0
