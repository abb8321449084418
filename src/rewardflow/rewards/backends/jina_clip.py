"""jina-clip-v2 from its released folder (config.json, model.safetensors, tokenizer files,
preprocessor_config.json) into our own towers: no remote code runs.

Tensor names: ``vision_model.*`` load as they are, ``text_model.transformer.roberta.*`` load into
the text tower after the default task's LoRA adapter is folded in, and ``logit_scale`` is the
CLIP temperature. Every tensor of the file must be consumed and every parameter filled; a
mismatch names the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from rewardflow.rewards.backends.clip_common import CLIP_MEAN, CLIP_STD, PILPreprocessor, read_folder_weights
from rewardflow.rewards.backends.jina_text import JinaTextTower, XlmrConfig, lora_task_index, merge_lora
from rewardflow.rewards.backends.jina_vision import EvaConfig, EvaVisionTower

TEXT_PREFIX = "text_model.transformer.roberta."
LAYOUT = (
    "expected the folder of jinaai/jina-clip-v2 (config.json, model.safetensors, tokenizer.json,"
    " preprocessor_config.json; e.g. `hf download jinaai/jina-clip-v2 --local-dir DIR`)"
)
MAX_TOKENS = 512  # what the release's encode_text truncates to


class JinaClip(nn.Module):
    def __init__(self, vision: EvaConfig, text: XlmrConfig):
        super().__init__()
        self.vision_model = EvaVisionTower(vision)
        self.text_model = JinaTextTower(text)
        self.logit_scale = nn.Parameter(torch.zeros(()))


def read_config(d: Path) -> dict:
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("add_projections"):
        raise ValueError(f"{d}/config.json: add_projections=true is not a jina-clip-v2 layout; not supported")
    if "vision_config" not in cfg or "text_config" not in cfg:
        raise ValueError(f"{d}/config.json has no vision_config / text_config: not a jina-clip release; {LAYOUT}")
    return cfg


def convert_state_dict(sd: dict[str, torch.Tensor], text_config: dict) -> dict[str, torch.Tensor]:
    """Release names -> JinaClip names; the text tower's LoRA folded in. Tensors outside the
    two towers and logit_scale are kept so that the strict check reports them."""
    text = {k[len(TEXT_PREFIX) :]: v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}
    kw = text_config.get("hf_model_config_kwargs") or {}
    scale = float(kw.get("lora_alpha", 1)) / float(kw.get("lora_rank", 1))
    out = {k: v for k, v in sd.items() if not k.startswith(TEXT_PREFIX)}
    out.update({"text_model." + k: v for k, v in merge_lora(text, lora_task_index(text_config), scale).items()})
    return out


def load_jina_clip(d: Path, device: torch.device, dtype: torch.dtype) -> JinaClip:
    from rewardflow.models.io import check_state_dict

    d = Path(d)
    cfg = read_config(d)
    model = JinaClip(EvaConfig.from_release(cfg["vision_config"]), XlmrConfig.from_release(cfg["text_config"]))
    if not any(d.glob("*.safetensors")):
        raise FileNotFoundError(f"clip_score (jina-clip-v2): no *.safetensors weights in {d}; {LAYOUT}")
    sd = convert_state_dict(read_folder_weights(d, "clip_score (jina-clip-v2)"), cfg["text_config"])
    check_state_dict(model, sd, f"{d} (jina-clip-v2 layout)")
    model.load_state_dict(sd)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_tokenizer(d: Path):
    """The release's XLM-R tokenizer (tokenizer.json); its class is named in tokenizer_config.json,
    loaded directly so that no auto class consults the remote-code config."""
    from transformers import XLMRobertaTokenizerFast

    if not (d / "tokenizer.json").exists():
        raise FileNotFoundError(f"clip_score (jina-clip-v2): no tokenizer.json in {d}; {LAYOUT}")
    return XLMRobertaTokenizerFast.from_pretrained(str(d))


def image_preprocessor(d: Path, image_size: int) -> PILPreprocessor:
    """preprocessor_config.json of the release: shortest side to `size` (PIL bicubic), centre
    crop, CLIP mean / std."""
    f = d / "preprocessor_config.json"
    cfg = json.loads(f.read_text()) if f.exists() else {}
    if cfg.get("resize_mode", "shortest") != "shortest" or cfg.get("interpolation", "bicubic") != "bicubic":
        raise ValueError(f"{f}: only resize_mode 'shortest' with bicubic interpolation is supported, got {cfg}")
    size = int(cfg.get("size", image_size))
    if size != image_size:
        raise ValueError(f"{f}: size {size} differs from the vision tower's image_size {image_size}")
    return PILPreprocessor(size, cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD))
