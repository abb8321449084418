"""Named model sizes. `model_config_from_preset(name, **overrides)` -> DenoiserConfig.

Pixel-space presets (32x32 RGB, 384-d MiniLM text) serve ShapesWorld on CPU; latent presets
(32x32x4 = a 256x256 image through the SD/SDXL VAE, 2048-d FLAN-T5-XL text) serve paper scale.
Reward fields (num_rewards / reward_keys) are left at 0 and set by the caller from its bins.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import DenoiserConfig

_PIXEL = dict(image_size=32, in_channels=3, text_dim=384)
_LATENT = dict(image_size=32, in_channels=4, text_dim=2048)

PRESETS: dict[str, dict[str, Any]] = {
    # CPU unit tests: a forward is a few milliseconds.
    "dit-tiny": dict(backbone="dit", **_PIXEL, hidden_size=32, depth=2, num_heads=2, patch_size=4, null_text_tokens=2),
    "unet-tiny": dict(
        backbone="unet",
        **_PIXEL,
        hidden_size=8,
        channel_mult=(1, 2),
        attn_resolutions=(16,),
        num_heads=2,
        num_groups=4,
        time_embed_dim=32,
        context_dim=16,
        null_text_tokens=2,
    ),
    # CPU demo (32x32 RGB). The U-Net runs behind a 2x pixel-unshuffle stem (16/8/4 feature maps):
    # the full-resolution level would cost ~60% of the FLOPs (patch_size=1 override restores it).
    # dit-demo is a DiT of about the same size and FLOPs, for comparison.
    "unet-demo": dict(
        backbone="unet",
        **_PIXEL,
        patch_size=2,
        hidden_size=40,
        channel_mult=(1, 2, 2),
        attn_resolutions=(8, 4),
        num_res_blocks=1,
        num_heads=4,
        num_groups=8,
        time_embed_dim=160,
        context_dim=80,
    ),
    "dit-demo": dict(backbone="dit", **_PIXEL, hidden_size=128, depth=6, num_heads=4, patch_size=4),
    # Latent-space DiTs, widths/depths/heads as DiT-S and DiT-B (our blocks add cross-attention).
    "dit-small": dict(backbone="dit", **_LATENT, hidden_size=384, depth=12, num_heads=6, patch_size=2),
    "dit-base": dict(backbone="dit", **_LATENT, hidden_size=768, depth=12, num_heads=12, patch_size=2),
    # Paper scale (MIRO: 360M parameters, 256x256, FLAN-T5-XL). Per block: 4w^2 self-attn + 4w^2 cross
    # + 8w^2 MLP + 6w^2 adaLN = 22w^2, so width 1024 reaches ~350M at depth 15.
    "dit-350m": dict(backbone="dit", **_LATENT, hidden_size=1024, depth=15, num_heads=16, patch_size=2, qk_norm=True),
    # RIN (the released MIRO models' backbone). rin-tiny is CPU-test sized; rin-miro is our reading of
    # the released configuration (4 blocks x 4 latent layers, 256 latents x 1024, 7 reward keys set by
    # the caller); a released checkpoint's own config.json always takes precedence when it loads.
    "rin-tiny": dict(
        backbone="rin",
        **_PIXEL,
        hidden_size=32,
        num_heads=2,
        patch_size=4,
        rin_blocks=2,
        rin_layers=1,
        rin_latents=16,
        rin_data_dim=16,
        rin_rw_heads=2,
        rin_registers=2,
        rin_cond_heads=2,
        rin_cond_layers=1,
        null_text_tokens=2,
        reward_null=True,
    ),
    "rin-miro": dict(
        backbone="rin",
        **_LATENT,
        hidden_size=1024,
        num_heads=16,
        patch_size=2,
        rin_blocks=4,
        rin_layers=4,
        rin_latents=256,
        rin_data_dim=256,
        rin_rw_heads=16,
        rin_registers=16,
        rin_cond_heads=16,
        rin_logvar_channels=128,
        null_text_tokens=1,
        reward_null=True,
    ),
}


def available_presets() -> list[str]:
    return sorted(PRESETS)


def model_config_from_preset(name: str, **overrides: Any) -> DenoiserConfig:
    """The preset's config with `overrides` applied (e.g. reward_keys=(...), image_size=64)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {available_presets()}")
    fields = dict(PRESETS[name])
    if "reward_keys" in overrides and "num_rewards" not in overrides:
        overrides["num_rewards"] = len(tuple(overrides["reward_keys"]))
    names = {f.name for f in dataclasses.fields(DenoiserConfig)}
    unknown = sorted(k for k in overrides if k not in names)
    if unknown:
        raise ValueError(
            f"unknown DenoiserConfig field(s) {unknown} overriding preset {name!r}; valid: {sorted(names)}"
        )
    fields.update(overrides)
    return DenoiserConfig(**fields)
