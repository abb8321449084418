"""The released MIRO checkpoints' format, read into our RIN: config mapping and key conversion.

A released folder holds ``config.json`` (sections network / preconditioning / postprocessing /
scheduler / sampler_defaults ...), ``model.safetensors`` (tensors prefixed ``network.``,
``preconditioning.``, ``data_preprocessing.``, ``postprocessing.``) and ``uncond_embedding.npy``
(the empty prompt's FLAN-T5 embedding, the fixed negative caption).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .config import DenoiserConfig

OFFICIAL_FILES = ("config.json", "model.safetensors", "uncond_embedding.npy")
REWARD_SUFFIX = "_coherence"

# (pattern, replacement) applied in order to a key with its "network." prefix removed.
_NETWORK_RULES = [
    (r"^patch_extractor\.", "patch_in."),
    (r"^data_pos_embedding$", "data_pos"),
    (r"^data_ln\.", "data_norm."),
    (r"^map_tokens_to_patches\.0\.", "out_norm."),
    (r"^map_tokens_to_patches\.1\.", "out_proj."),
    (r"^time_embedder\.", "cond.time."),
    (r"^coherence_positional_embedding$", "cond.reward_pos"),
    (r"^text_registers$", "cond.registers"),
    (r"^map_text_tokens\.", "cond.text_proj."),
    (r"^transformers_blocks\.", "cond.blocks."),
    (r"^ln_previous_1\.", "self_cond.norm_in."),
    (r"^linear_previous\.", "self_cond.mlp."),
    (r"^ln_previous_2\.", "self_cond.norm_out."),
    (r"^rin_blocks\.(\d+)\.retrieve_cond\.", r"blocks.\1.cond_read."),
    (r"^rin_blocks\.(\d+)\.retriever_ca\.", r"blocks.\1.read."),
    (r"^rin_blocks\.(\d+)\.processer_sa\.", r"blocks.\1.layers."),
    (r"^rin_blocks\.(\d+)\.writer_ca\.", r"blocks.\1.write."),
    # inside embedders and blocks
    (r"\.encode_time\.", "."),
    (r"\.map_time_input\.", ".fc1."),
    (r"\.map_time_output\.", ".fc2."),
    (r"\.initial_to_ln\.|\.initial_ln\.", ".norm1."),
    (r"\.middle_ln\.", ".norm2."),
    (r"\.(?:ca|sa)\.", ".attn."),
    (r"\.(?:linear_1|linear_packed)\.", ".fc1."),
    (r"\.(?:linear_2|linear_out)\.", ".fc2."),
    (r"\.layer_scale_1$", ".ls1"),
    (r"\.layer_scale_2$", ".ls2"),
]
# Constant all-True bool tensors the released network stores as parameters; they carry nothing.
_CONSTANT_MASKS = re.compile(r"(^|\.)(attention_mask_dummy|registers_coherence_mask|cond_mask)$")


def denoiser_config(cfg: dict[str, Any], uncond_tokens: int) -> DenoiserConfig:
    """Our RIN config equivalent to a released ``config.json``; raises on what we cannot express."""
    net, pre = cfg["network"], cfg.get("preconditioning", {})
    keys = [str(k) for k in net.get("coherence_keys") or cfg.get("coherence_keys") or []]
    unsupported = {
        k: net[k] for k in ("compute_dropout", "rw_stochastic_depth", "compute_stochastic_depth") if net.get(k)
    }
    if unsupported:
        raise ValueError(f"released config uses training-only options rewardflow's RIN lacks: {unsupported}")
    if int(pre.get("logvar_mlp_layers", 0)):
        raise ValueError("released config has logvar_mlp_layers > 0, which rewardflow's RIN does not build")
    norm = pre.get("do_normalization", True)
    concat = bool(net.get("concat_cond_token_to_latents", True))
    size = int(net["data_size"])
    return DenoiserConfig(
        backbone="rin",
        image_size=size,
        in_channels=int(net["num_input_channels"]),
        text_dim=int(net["label_dim"]),
        reward_keys=tuple(keys),
        hidden_size=int(net["latents_dim"]),
        num_heads=int(net.get("compute_heads", 16)),
        mlp_ratio=float(net.get("latent_mlp_multiplier", 4)),
        patch_size=int(net["patch_size"]),
        null_text_tokens=int(uncond_tokens),
        reward_null=True,
        rin_blocks=int(net["num_blocks"]),
        rin_layers=int(net["num_processing_layers"]),
        rin_latents=int(net["num_latents"]),
        rin_data_dim=int(net["data_dim"]),
        rin_rw_heads=int(net.get("read_write_heads", 16)),
        rin_data_mlp=float(net.get("data_mlp_multiplier", 4)),
        rin_registers=int(net.get("num_text_registers", 16)),
        rin_cond_heads=16,
        rin_cond_layers=2,
        rin_cond_block=bool(net.get("use_cond_rin_block", False)),
        rin_concat_cond=concat,
        rin_cond_tokens=int(net.get("num_cond_tokens", 0)) if concat else 0,
        rin_self_cond=0.9 if net.get("use_self_conditioning", False) else 0.0,
        rin_sigma_data=float(pre.get("sigma_data", 0.5)) if norm in (True, "noise_driven") else 0.0,
        rin_logvar_channels=int(pre.get("logvar_channels", 128)) if pre.get("do_gradnorm_reweighting", True) else 0,
        rin_null_text="fixed",
        extra={"source": "miro-t2i release", "coherence_dropout": float(net.get("coherence_dropout", 0.0))},
    )


def _network_key(key: str, reward_index: dict[str, int]) -> str:
    m = re.match(r"^coherence_embedder\.(.+?)\.(encode_time|map_time_input|map_time_output)\.(.+)$", key)
    if m:
        name = m.group(1)
        if name not in reward_index:
            raise ValueError(f"released weights embed a reward {name!r} that config.json does not list")
        key = f"cond.rewards.{reward_index[name]}.{m.group(2)}.{m.group(3)}"
    for pattern, repl in _NETWORK_RULES:
        key = re.sub(pattern, repl, key)
    return key


def convert_state_dict(sd: dict[str, torch.Tensor], config: DenoiserConfig) -> dict[str, torch.Tensor]:
    """Released tensors -> our RIN's state dict (null_text excepted: it comes from the .npy).

    The normalisation buffers of the data pre/post-processing are not network weights and are
    left out (``latent_stats`` reads them); the constant True masks are checked and dropped.
    """
    reward_index = {k + REWARD_SUFFIX: i for i, k in enumerate(config.reward_keys)}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        prefix, _, rest = key.partition(".")
        if prefix in ("data_preprocessing", "postprocessing"):
            continue
        if _CONSTANT_MASKS.search(rest):
            if value.dtype != torch.bool or not bool(value.all()):
                raise ValueError(f"{key}: expected a constant all-True mask, got {value.dtype} {tuple(value.shape)}")
            continue
        if prefix == "network":
            new = _network_key(rest, reward_index)
        elif prefix == "preconditioning" and rest.startswith("logvar_proj."):
            new = re.sub(r"^logvar_proj\.0\.", "logvar.", rest)
            new = re.sub(r"^logvar_proj\.1\.", "logvar.fc.", new)
        else:
            raise ValueError(f"unexpected tensor {key!r} in released weights (not network / preconditioning)")
        out[new] = value.float() if value.is_floating_point() else value
    return out


def latent_stats(sd: dict[str, torch.Tensor]) -> dict[str, list[float]] | None:
    """Per-channel mean/std such that latent = x * std + mean, from the post-processing buffers
    (the released normalisation is x = latent * scale + bias)."""
    scale, bias = sd.get("postprocessing.scale"), sd.get("postprocessing.bias")
    if scale is None or bias is None:
        return None
    scale, bias = scale.double().flatten(), bias.double().flatten()
    return {"mean": (-bias / scale).tolist(), "std": (1 / scale).tolist()}


def sampler_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """Our pipeline defaults from the released ``sampler_defaults`` and scheduler.

    The released schedule's shift s acts on gamma = 1 - t only when s > 1 and equals our 1 / s."""
    d = cfg.get("sampler_defaults") or {}
    shift = float((cfg.get("scheduler") or {}).get("shift", 1.0))
    return {
        "guidance_scale": float(d.get("guidance_scale", 7.0)),
        "num_inference_steps": int(d.get("num_steps", 50)),
        "solver": "euler",
        "shift": 1.0 / shift if shift > 1 else 1.0,
    }
