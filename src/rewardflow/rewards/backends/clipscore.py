"""Text-image alignment scores: `clip_score` (jina-clip-v2, as MIRO trains on) and
`openai_clip_score` (OpenAI CLIP ViT-L/14, the usual evaluation CLIPScore).

jina-clip-v2's weights are CC-BY-NC-4.0, so `clip_score` loads only when the caller accepts that
licence. It then runs our own implementation of the model (rewards.backends.jina_clip) on the
released files; the release's own modelling code is hub remote code and runs only on an explicit
``trust_remote_code=True``.
"""

from __future__ import annotations

import numpy as np
import torch

from rewardflow.rewards.backends import jina_clip
from rewardflow.rewards.backends.clip_common import ClipRewardBase, env_or, resolve_dir
from rewardflow.rewards.base import to_pil
from rewardflow.rewards.registry import register_reward
from rewardflow.utils.errors import LicenseNotAccepted

JINA_REFUSAL = (
    "clip_score uses jina-clip-v2 (jinaai/jina-clip-v2), whose weights are licensed CC-BY-NC-4.0"
    " (non-commercial use only). If you accept that licence, pass accept_license=True (e.g."
    " get_reward('clip_score', accept_license=True), or set REWARDFLOW_ACCEPT_JINA_LICENSE=1 for"
    " `rewardflow score`); rewardflow then runs its own implementation of the model on the released"
    " files. To run the release's own code from the hub instead, pass trust_remote_code=True (or"
    " REWARDFLOW_TRUST_REMOTE_CODE=1). For a permissively licensed alignment score use"
    " 'openai_clip_score' (OpenAI CLIP ViT-L/14, MIT)."
)


def _env_flag(name: str) -> bool:
    return env_or(None, name, "0").lower() in ("1", "true", "yes")


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
    """jina-clip-v2 alignment, logit_scale.exp() * cos / 100 (licence opt-in: accept_license).

    Our implementation runs on the released files; ``trust_remote_code=True`` runs the release's
    own code from the hub instead (the licence must be accepted either way)."""

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
        accept_license: bool | None = None,
        trust_remote_code: bool | None = None,
    ):
        super().__init__(path, device, dtype, allow_download, batch_size)
        self.trust_remote_code = bool(
            _env_flag("REWARDFLOW_TRUST_REMOTE_CODE") if trust_remote_code is None else trust_remote_code
        )
        if not (_env_flag("REWARDFLOW_ACCEPT_JINA_LICENSE") if accept_license is None else accept_license):
            # Refuse at construction: a scoring job should fail before it reads any shard.
            raise LicenseNotAccepted(JINA_REFUSAL)
        self.prefix, self.truncate_dim = "", None  # from the config; the release's own code applies its own

    def _load(self) -> None:
        d = resolve_dir(self.path, "clip_score (jina-clip-v2)", self.allow_download, ("config.json",))
        if self.trust_remote_code:
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(str(d), trust_remote_code=True, dtype=self.dtype)
            self.model = self.model.to(self.device).eval().requires_grad_(False)
            return
        cfg = jina_clip.read_config(d)  # the small files first: a bad folder fails before the weights load
        self.tokenizer = jina_clip.load_tokenizer(d, cfg)
        self.preprocess = jina_clip.image_preprocessor(d, cfg["vision_config"]["image_size"])
        self.prefix, self.truncate_dim = jina_clip.text_prefix(cfg), cfg.get("truncate_dim")
        self.model = jina_clip.load_jina_clip(d, self.device, self.dtype, cfg)

    def _unit(self, e) -> torch.Tensor:
        e = (e if isinstance(e, torch.Tensor) else torch.as_tensor(np.asarray(e))).float()
        if self.truncate_dim:  # Matryoshka: the release cuts, then normalises
            e = e[:, : self.truncate_dim]
        return e / e.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def image_embeds(self, images) -> torch.Tensor:
        """L2-normalised float32 image embeddings (B, 1024)."""
        self.ensure_loaded()
        if self.trust_remote_code:  # the release's encoder preprocesses itself
            return self._unit(self.model.encode_image(to_pil(images)))
        return self._unit(self.model.vision_model(self.preprocess(images, self.device, self.dtype)))

    @torch.no_grad()
    def text_embeds(self, captions) -> torch.Tensor:
        """L2-normalised float32 text embeddings (B, 1024); captions cut at 512 tokens."""
        self.ensure_loaded()
        if self.trust_remote_code:
            return self._unit(self.model.encode_text(list(captions)))
        texts = [self.prefix + c for c in captions]
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=jina_clip.MAX_TOKENS)
        return self._unit(self.model.text_model(torch.as_tensor(tok["input_ids"], device=self.device)))

    def embeddings(self, images, captions) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image_embeds(images), self.text_embeds(captions)

    @torch.no_grad()
    def _score(self, images, captions):
        cos = (self.image_embeds(images) * self.text_embeds(captions)).sum(-1).cpu()
        return self.logit_scale() * cos / 100.0
