"""rewardflow.models: denoiser backbones (DiT, conv U-Net) behind one contract.

    model(x_t, t, text, text_mask, rewards=None, reward_drop=None) -> v   # v has x_t's shape

See docs/ARCHITECTURE.md for shapes. Build with `build_model(config)` or from a preset with
`build_model(model_config_from_preset("dit-tiny", reward_keys=(...)))`; save with
`model.save_pretrained(dir)`, load with `load_model(dir)` / `DenoiserModel.from_pretrained(dir)`.
"""

from .base import DenoiserModel
from .config import DenoiserConfig
from .dit import DiT
from .flops import FlopReport, count_module_flops, count_parameters, forward_flops
from .io import load_model, save_model, strip_compile_prefix, unwrap_model
from .presets import PRESETS, available_presets, model_config_from_preset
from .registry import available_backbones, build_model, register_backbone
from .unet import UNet

__all__ = [
    "DenoiserConfig",
    "DenoiserModel",
    "DiT",
    "UNet",
    "PRESETS",
    "available_presets",
    "model_config_from_preset",
    "build_model",
    "register_backbone",
    "available_backbones",
    "load_model",
    "save_model",
    "strip_compile_prefix",
    "unwrap_model",
    "count_parameters",
    "forward_flops",
    "count_module_flops",
    "FlopReport",
]
