"""`vqa_score`: VQAScore with CLIP-FlanT5 (Lin et al. 2024), the probability that the model
answers "Yes" to ``Does this figure show "{caption}"? Please answer yes or no.``

The released CLIP-FlanT5 (``zhiqiulin/clip-flant5-xl``, ``-xxl``) is a FLAN-T5 whose encoder reads
the CLIP ViT-L/14-336 patch features of the image (second-to-last layer, CLS dropped) through a
2-layer GELU projector, spliced in at the ``<image>`` place of a chat prompt. Loaded here into
transformers' T5ForConditionalGeneration and CLIPVisionModel, as released:

- prompt: ``SYSTEM USER: <image>\\n{question} ASSISTANT: ``, each text piece tokenised on its own
  (so each ends with the tokenizer's end token), the image features between them;
- image: padded to a square with the CLIP mean colour, then CLIP preprocessing at 336 (PIL);
- score: exp(-mean cross-entropy) of the answer's tokens ("Yes" and its end token) over the
  tokenizer's vocabulary (the release trims FLAN-T5's 32,128 padded rows to the tokenizer's
  32,100), stored as is (a probability in [0, 1], as the MIRO annotations keep it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from rewardflow.rewards.backends.clip_common import (
    CLIP_MEAN,
    ClipRewardBase,
    PILPreprocessor,
    env_or,
    read_folder_weights,
    resolve_dir,
)
from rewardflow.rewards.registry import register_reward

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions."
)
QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
ANSWER = "Yes"
_T5_ALIASES = ("embed_tokens.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def prompt_pieces(caption: str) -> tuple[str, str]:
    """The chat prompt around the image: (before, after)."""
    return f"{SYSTEM} USER: ", "\n" + QUESTION.format(caption) + " ASSISTANT: "


def split_weights(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """-> (t5, projector, vision tower) state dicts; the projector is a Sequential (0, 2, ...)."""
    t5, proj, vision = {}, {}, {}
    for k, v in sd.items():
        if k.startswith("mm_projector."):
            proj[k[len("mm_projector.") :]] = v
        elif k.startswith("vision_tower.vision_tower."):
            vision[k[len("vision_tower.vision_tower.") :]] = v
        elif k == "embed_tokens.weight":
            continue  # the released class keeps a second name for the encoder's embedding
        else:
            t5[k] = v
    return t5, proj, vision


def build_projector(proj: dict, config: dict) -> torch.nn.Sequential:
    kind = config.get("mm_projector_type", "linear")
    m = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    depth = int(m.group(1)) if m else 1 if kind == "linear" else None
    if depth is None:
        raise ValueError(f"VQAScore: projector type {kind!r} is not supported (linear, mlpNx_gelu)")
    d_in, d = int(config["mm_hidden_size"]), int(config["d_model"])
    layers: list[torch.nn.Module] = [torch.nn.Linear(d_in, d)]
    for _ in range(depth - 1):
        layers += [torch.nn.GELU(), torch.nn.Linear(d, d)]
    seq = torch.nn.Sequential(*layers)
    seq.load_state_dict(proj, strict=True)
    return seq


class SquarePadPreprocessor(PILPreprocessor):
    """Pad to a square with the CLIP mean colour (as the release), then CLIP preprocessing."""

    def _one(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        s = max(h, w)
        canvas = np.empty((s, s, 3), dtype=np.uint8)
        canvas[:] = [int(c * 255) for c in CLIP_MEAN]
        top, left = (s - h) // 2, (s - w) // 2
        canvas[top : top + h, left : left + w] = image[..., :3]
        return super()._one(canvas)


@register_reward("vqa_score")
class VQAScore(ClipRewardBase):
    """P("Yes" | image, question) with CLIP-FlanT5."""

    version = "1"
    higher_is_better = True
    needs_caption = True
    batch_size = 8
    default_model = "zhiqiulin/clip-flant5-xl"
    default_processor = "google/flan-t5-xl"  # the tokenizer the release was trained with
    path_env = "REWARDFLOW_VQASCORE_MODEL"
    processor_env = "REWARDFLOW_VQASCORE_TOKENIZER"

    def __init__(self, *args, vision_tower=None, **kwargs):
        super().__init__(*args, **kwargs)
        # where the CLIP tower (or only its config, when the weights carry it) comes from
        self.vision_tower = env_or(vision_tower, "REWARDFLOW_VQASCORE_TOWER")

    def _load(self) -> None:
        from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

        d = resolve_dir(self.path, "VQAScore (CLIP-FlanT5)", self.allow_download)
        cfg = json.loads((Path(d) / "config.json").read_text())
        t5_sd, proj_sd, vision_sd = split_weights(read_folder_weights(Path(d), "VQAScore"))
        t5_fields = {
            k: v for k, v in cfg.items() if not k.startswith("mm_") and k not in ("model_type", "architectures")
        }
        t5_fields.setdefault("decoder_start_token_id", t5_fields.get("pad_token_id", 0))  # T5's convention
        self.t5 = T5ForConditionalGeneration(T5Config(**t5_fields))
        missing, unexpected = self.t5.load_state_dict(t5_sd, strict=False)
        if unexpected or [k for k in missing if k not in _T5_ALIASES]:
            raise ValueError(f"VQAScore weights do not fit FLAN-T5: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.projector = build_projector(proj_sd, cfg)
        self.vision = self._vision_model(cfg, vision_sd)
        self.select_layer = int(cfg.get("mm_vision_select_layer", -2))
        for m in (self.t5, self.projector, self.vision):
            m.to(self.device, self.dtype).eval().requires_grad_(False)
        tok = env_or(self.processor_path, self.processor_env, self.default_processor)
        tok_dir = resolve_dir(tok, "VQAScore tokenizer (FLAN-T5)", self.allow_download, must_contain=())
        self.tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        self.preprocess = SquarePadPreprocessor(self.vision.config.image_size)
        self.model = self.t5  # marks the backend as loaded

    def _vision_model(self, cfg: dict, vision_sd: dict):
        """The CLIP tower: its weights from the release when it carries them (its config from the
        tower's repo), else the tower's own weights (as the release's code loads it)."""
        from transformers import CLIPVisionConfig, CLIPVisionModel

        src = self.vision_tower or cfg.get("mm_vision_tower", "openai/clip-vit-large-patch14-336")
        vd = str(resolve_dir(src, "VQAScore vision tower (CLIP ViT-L/14-336)", self.allow_download))
        if not vision_sd:
            return CLIPVisionModel.from_pretrained(vd)
        model = CLIPVisionModel(CLIPVisionConfig.from_pretrained(vd))
        if not any(k.startswith("vision_model.") for k in model.state_dict()):
            # the release was saved by transformers 4, whose CLIPVisionModel nested a vision_model
            vision_sd = {k.removeprefix("vision_model."): v for k, v in vision_sd.items()}
        missing, unexpected = model.load_state_dict(vision_sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"VQAScore vision tower weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def _inputs(self, feats: torch.Tensor, captions) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, d) encoder input embeddings (text, image features, text; right-padded) + mask."""
        embed = self.t5.get_input_embeddings()
        rows = []
        for f, caption in zip(feats, captions):
            before, after = (
                torch.tensor(self.tokenizer(p).input_ids, device=self.device) for p in prompt_pieces(caption)
            )
            rows.append(torch.cat([embed(before), f.to(embed.weight.dtype), embed(after)]))
        n = max(r.shape[0] for r in rows)
        x = torch.zeros(len(rows), n, rows[0].shape[1], dtype=rows[0].dtype, device=self.device)
        mask = torch.zeros(len(rows), n, dtype=torch.bool, device=self.device)
        for i, r in enumerate(rows):
            x[i, : r.shape[0]], mask[i, : r.shape[0]] = r, True
        return x, mask

    @torch.no_grad()
    def _score(self, images, captions):
        self.ensure_loaded()
        px = self.preprocess(images, self.device, self.dtype)
        hidden = self.vision(pixel_values=px, output_hidden_states=True).hidden_states[self.select_layer]
        embeds, mask = self._inputs(self.projector(hidden[:, 1:]), captions)
        labels = torch.tensor(self.tokenizer([ANSWER] * len(captions)).input_ids, device=self.device)
        logits = self.t5(inputs_embeds=embeds, attention_mask=mask, labels=labels).logits.float()
        logits = logits[..., : len(self.tokenizer)]  # the release resizes its vocabulary to the tokenizer's
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)
        return torch.exp(-ce)
