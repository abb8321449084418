"""`image_reward_score`: ImageReward v1.0 (BLIP ViT-L + a BERT that cross-attends to the image,
then an MLP on the [CLS] state), loaded from the released ``ImageReward.pt`` + ``med_config.json``
into transformers' own BLIP classes by a key map.

score = (mlp(cls) - 0.16717362830052426) / 1.0333394966054072, as the release normalises it;
stored (score + 2) / 4, as the MIRO annotations keep it (about [0, 1]). Preprocessing as the
release: shortest side to 224 (PIL bicubic), centre crop, CLIP mean / std; captions as BERT
(uncased) tokens padded / truncated to 35.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from rewardflow.rewards.backends.clip_common import (
    ClipRewardBase,
    PILPreprocessor,
    env_or,
    load_state_dict,
    resolve_dir,
)
from rewardflow.rewards.registry import register_reward

MEAN, STD = 0.16717362830052426, 1.0333394966054072
MAX_TOKENS = 35
FILES = ("ImageReward.pt", "med_config.json")
# Heads of BLIP's pre-training that ImageReward's checkpoint carries but its score never uses.
UNUSED = re.compile(r"^blip\.(vision_proj|text_proj|itm_head)\.|^blip\.text_encoder\.embeddings\.position_ids$")
_VISION_RULES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
]


def split_checkpoint(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """ImageReward.pt -> (vision, text, head) state dicts in transformers' BLIP / our names."""
    vision, text, head = {}, {}, {}
    for key, value in sd.items():
        if key.startswith("blip.visual_encoder."):
            new = key[len("blip.visual_encoder.") :]
            for pattern, repl in _VISION_RULES:
                new = re.sub(pattern, repl, new)
            vision[new] = value
        elif key.startswith("blip.text_encoder.") and not UNUSED.search(key):
            text[key[len("blip.text_encoder.") :]] = value
        elif key.startswith("mlp.layers."):
            head[key[len("mlp.") :]] = value
        elif not UNUSED.search(key):
            raise ValueError(
                f"ImageReward checkpoint: unexpected tensor {key!r} (not blip.visual_encoder / text_encoder / mlp)"
            )
    return vision, text, head


def vision_config(vision: dict[str, torch.Tensor], heads: int | None):
    """A BlipVisionConfig read off the tensor shapes (BLIP's ViTs use 64-wide heads)."""
    from transformers import BlipVisionConfig

    width = vision["embeddings.class_embedding"].shape[-1]
    patch = vision["embeddings.patch_embedding.weight"].shape[-1]
    tokens = vision["embeddings.position_embedding"].shape[1] - 1
    layers = 1 + max(int(k.split(".")[2]) for k in vision if k.startswith("encoder.layers."))
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=heads or max(1, width // 64),
        image_size=int(round(tokens**0.5)) * patch,
        patch_size=patch,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )


def text_config(med_config: dict, vision_width: int):
    from transformers import BlipTextConfig

    c = med_config
    return BlipTextConfig(
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        encoder_hidden_size=vision_width,
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        max_position_embeddings=c["max_position_embeddings"],
        layer_norm_eps=c.get("layer_norm_eps", 1e-12),
        hidden_act=c.get("hidden_act", "gelu"),
        pad_token_id=c.get("pad_token_id", 0),
        bos_token_id=None,
        sep_token_id=None,
        is_decoder=True,  # builds the cross-attention layers; called with is_decoder=False (bidirectional)
    )


def _strict(module: torch.nn.Module, sd: dict, what: str) -> None:
    from rewardflow.models.io import check_state_dict  # names missing / unexpected / mis-shaped tensors

    check_state_dict(module, sd, f"ImageReward checkpoint ({what})")
    module.load_state_dict(sd, strict=True)


def build_head(head: dict) -> torch.nn.Sequential:
    """The release's MLP: Linear layers at Sequential indices 0, 2, 4, 6, 7 (dropouts between)."""
    idx = sorted({int(k.split(".")[1]) for k in head})
    layers = {i: torch.nn.Linear(*head[f"layers.{i}.weight"].shape[::-1]) for i in idx}
    seq = torch.nn.Sequential(*[layers.get(i, torch.nn.Identity()) for i in range(max(idx) + 1)])
    _strict(seq, {k[len("layers.") :]: v for k, v in head.items()}, "MLP head")
    return seq


@register_reward("image_reward_score")
class ImageReward(ClipRewardBase):
    """ImageReward v1.0, stored as (score + 2) / 4."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 16
    default_model = "THUDM/ImageReward"
    default_processor = "google-bert/bert-base-uncased"  # the tokenizer of ImageReward's BLIP
    path_env = "REWARDFLOW_IMAGEREWARD_MODEL"
    processor_env = "REWARDFLOW_IMAGEREWARD_TOKENIZER"

    def __init__(self, *args, vit_heads: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.vit_heads = vit_heads

    def _load(self) -> None:
        from transformers import AutoTokenizer, BlipTextModel, BlipVisionModel

        d = resolve_dir(self.path, "ImageReward", self.allow_download, must_contain=FILES)
        vision_sd, text_sd, head_sd = split_checkpoint(load_state_dict(Path(d) / FILES[0]))
        vcfg = vision_config(vision_sd, self.vit_heads)
        med = json.loads((Path(d) / FILES[1]).read_text())
        self.vision, self.text = BlipVisionModel(vcfg), BlipTextModel(text_config(med, vcfg.hidden_size), False)
        _strict(self.vision, vision_sd, "BLIP vision encoder")
        _strict(self.text, text_sd, "BERT text encoder")
        self.head = build_head(head_sd)
        for m in (self.vision, self.text, self.head):
            m.to(self.device, self.dtype).eval().requires_grad_(False)
        tok = env_or(self.processor_path, self.processor_env, self.default_processor)
        tok_dir = resolve_dir(tok, "ImageReward tokenizer (BERT uncased)", self.allow_download, must_contain=())
        self.tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        self.preprocess = PILPreprocessor(vcfg.image_size)
        self.model = self.vision  # marks the backend as loaded

    @torch.no_grad()
    def raw_scores(self, images, captions) -> torch.Tensor:
        """The release's normalised score (B,), before the (score + 2) / 4 of the annotations."""
        self.ensure_loaded()
        return self.score_pixels(self.preprocess(images, self.device, self.dtype), captions)

    @torch.no_grad()
    def score_pixels(self, px: torch.Tensor, captions) -> torch.Tensor:
        """The release's score of preprocessed pixels (B, 3, 224, 224) (normalised as CLIP)."""
        self.ensure_loaded()
        img = self.vision(pixel_values=px.to(self.device, self.dtype)).last_hidden_state
        tok = self.tokenizer(
            list(captions), padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        out = self.text(
            input_ids=tok["input_ids"].to(self.device),
            attention_mask=tok["attention_mask"].to(self.device),
            encoder_hidden_states=img,
            encoder_attention_mask=torch.ones(img.shape[:2], dtype=torch.long, device=self.device),
            is_decoder=False,
        ).last_hidden_state
        r = self.head(out[:, 0].float().to(self.dtype)).float()[:, 0]
        return (r - MEAN) / STD

    def _score(self, images, captions):
        return (self.raw_scores(images, captions) + 2) / 4
