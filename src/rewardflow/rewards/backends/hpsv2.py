"""`hpsv2_score`: Human Preference Score v2.1 (open_clip ViT-H/14 fine-tuned on HPD v2).

The release is one torch file ``{'state_dict': ...}`` in open_clip naming; it is converted to a
transformers CLIPModel on load (openclip_convert.py) so open_clip is not needed. Tokenizer and
image preprocessing are the LAION CLIP-H ones (same BPE vocab and CLIP normalisation as open_clip).
Stored value: cosine(image, text), as HPS v2 reports it (typically 0.2-0.35).
"""

from __future__ import annotations

import torch

from rewardflow.rewards.backends.clip_common import (
    ClipRewardBase,
    env_or,
    has_tokenizer,
    load_state_dict,
    resolve_dir,
    resolve_file,
)
from rewardflow.rewards.backends.openclip_convert import clip_from_openclip
from rewardflow.rewards.registry import register_reward


@register_reward("hpsv2_score")
class HPSv2Score(ClipRewardBase):
    """HPS v2.1 human-preference score (cosine of open_clip ViT-H/14 embeddings)."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 32
    default_model = "xswu/HPSv2/HPS_v2.1_compressed.pt"
    path_env = "REWARDFLOW_HPSV2_CKPT"
    default_processor = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"

    def __init__(
        self,
        path=None,
        device=None,
        dtype=None,
        allow_download: bool = False,
        batch_size: int | None = None,
        processor_path=None,
        vision_heads: int | None = None,
        text_heads: int | None = None,
        hidden_act: str = "gelu",
    ):
        super().__init__(
            path,
            device,
            dtype,
            allow_download,
            batch_size,
            env_or(processor_path, "REWARDFLOW_HPSV2_PROCESSOR", self.default_processor),
        )
        # open_clip ViT-H-14 uses exact GELU and 16 heads in both towers (inferred when None)
        self.arch = dict(vision_heads=vision_heads, text_heads=text_heads, hidden_act=hidden_act)

    def _load(self) -> None:
        from transformers import AutoTokenizer

        f = resolve_file(self.path, "hpsv2_score checkpoint", self.allow_download)
        pd = resolve_dir(
            self.processor_path, "hpsv2_score processor (CLIP-H tokenizer)", self.allow_download, must_contain=()
        )
        if not has_tokenizer(pd):
            raise FileNotFoundError(
                f"hpsv2_score: no CLIP tokenizer in {pd}; pass processor_path=<dir> of"
                f" {self.default_processor} (tokenizer + preprocessor_config.json)"
            )
        model = clip_from_openclip(load_state_dict(f), device=self.device, dtype=self.dtype, **self.arch)
        self._set_model(model, pd, AutoTokenizer.from_pretrained(str(pd)))

    @torch.no_grad()
    def _score(self, images, captions):
        return (self.image_embeds(images) * self.text_embeds(captions)).sum(-1)
