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
from rewardflow.rewards.backends.jina_text import V3_DEFAULTS, JinaTextTower, XlmrConfig, lora_task_index, merge_lora
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
    if cfg.get("model_type") != "jina_clip" or "vision_config" not in cfg or "text_config" not in cfg:
        raise ValueError(f"{d}/config.json is not a jina-clip config (model_type {cfg.get('model_type')!r}); {LAYOUT}")
    if cfg.get("add_projections"):
        raise ValueError(f"{d}/config.json: add_projections=true is not a jina-clip-v2 layout; not supported")
    return cfg


def text_prefix(cfg: dict) -> str:
    """The instruction the release prepends to every caption (none for jina-clip-v2)."""
    tc = cfg["text_config"]
    task = tc.get("default_instruction_task")
    if task is None:
        return ""
    instructions = (tc.get("hf_model_config_kwargs") or {}).get("task_instructions") or {}
    if task not in instructions:
        raise ValueError(f"jina-clip default_instruction_task {task!r} has no entry in task_instructions")
    return instructions[task]


def convert_state_dict(
    sd: dict[str, torch.Tensor], text_config: dict, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Release names -> JinaClip names, in `dtype`; the text tower's LoRA folded in. Tensors
    outside the two towers and logit_scale are kept so that the strict check reports them."""
    text = {k[len(TEXT_PREFIX) :]: v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}
    kw = {**V3_DEFAULTS, **(text_config.get("hf_model_config_kwargs") or {})}
    scale = float(kw["lora_alpha"]) / float(kw["lora_rank"])
    out = {k: v.to(dtype) for k, v in sd.items() if not k.startswith(TEXT_PREFIX)}
    merged = merge_lora(text, lora_task_index(text_config), scale, dtype)
    out.update({"text_model." + k: v for k, v in merged.items()})
    return out


def load_jina_clip(d: Path, device: torch.device, dtype: torch.dtype, cfg: dict | None = None) -> JinaClip:
    """Built on the meta device and filled by assignment: the weights are held once, in `dtype`.
    ``cfg``: the folder's config.json if the caller has read it already."""
    from rewardflow.models.io import check_state_dict

    d = Path(d)
    cfg = cfg or read_config(d)
    if not any(d.glob("*.safetensors")):
        raise FileNotFoundError(f"clip_score (jina-clip-v2): no *.safetensors weights in {d}; {LAYOUT}")
    with torch.device("meta"):
        model = JinaClip(EvaConfig.from_release(cfg["vision_config"]), XlmrConfig.from_release(cfg["text_config"]))
    sd = convert_state_dict(read_folder_weights(d, "clip_score (jina-clip-v2)"), cfg["text_config"], dtype)
    check_state_dict(model, sd, f"{d} (jina-clip-v2 layout)")
    model.load_state_dict(sd, assign=True)
    model.vision_model._set_rope()  # derived buffers: off the meta device before any move
    return model.to(device).eval().requires_grad_(False)


def load_tokenizer(d: Path, cfg: dict):
    """The release's XLM-R tokenizer (tokenizer.json); its class is named in tokenizer_config.json,
    loaded directly so that no auto class consults the remote-code config."""
    from transformers import XLMRobertaTokenizerFast

    if not (d / "tokenizer.json").exists():
        raise FileNotFoundError(f"clip_score (jina-clip-v2): no tokenizer.json in {d}; {LAYOUT}")
    tok = XLMRobertaTokenizerFast.from_pretrained(str(d))
    pad_token_id = XlmrConfig.from_release(cfg["text_config"]).pad_token_id
    if tok.pad_token_id != pad_token_id:  # the text tower finds padding by this id
        raise ValueError(f"{d}: the tokenizer pads with id {tok.pad_token_id}, the text config expects {pad_token_id}")
    return tok


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
