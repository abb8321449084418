"""open_clip CLIP state dict <-> transformers ``CLIPModel``, without importing open_clip.

open_clip (and the HPS v2 checkpoints built on it) keeps torch ``nn.MultiheadAttention`` style
fused q/k/v projections and stores the output projections as ``x @ proj`` matrices; transformers
uses separate q/k/v Linears and ``Linear`` projections (the transpose). Everything else is a
rename. Only the architecture knobs that cannot be read off tensor shapes (head counts, the MLP
activation) need to be given; defaults follow open_clip's model configs.
"""

from __future__ import annotations

import re

import torch

# Vision towers whose head width is not 64 in open_clip's configs (ViT-H/g/bigG): width -> heads.
_VISION_HEADS = {1280: 16, 1408: 16, 1664: 16}
_BLOCK_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
_IGNORED = re.compile(r"(^|\.)attn_mask$")  # a causal-mask buffer older open_clip saved


def _num_blocks(sd: dict, prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    idx = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    if not idx:
        raise ValueError(f"open_clip state dict has no '{prefix}N.' blocks")
    return max(idx) + 1


def openclip_config(sd: dict, vision_heads: int | None = None, text_heads: int | None = None, hidden_act: str = "gelu"):
    """A ``CLIPConfig`` for the tower sizes found in an open_clip state dict."""
    from transformers import CLIPConfig

    conv = sd["visual.conv1.weight"]
    vw, patch = conv.shape[0], conv.shape[-1]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    vocab, tw = sd["token_embedding.weight"].shape
    vision = dict(
        hidden_size=vw,
        patch_size=patch,
        image_size=grid * patch,
        num_hidden_layers=_num_blocks(sd, "visual.transformer.resblocks."),
        intermediate_size=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_attention_heads=vision_heads or _VISION_HEADS.get(vw, max(1, vw // 64)),
        hidden_act=hidden_act,
    )
    # open_clip pools text at argmax(token id): the end-of-text token is the largest id in the vocab.
    text = dict(
        hidden_size=tw,
        vocab_size=vocab,
        max_position_embeddings=sd["positional_embedding"].shape[0],
        num_hidden_layers=_num_blocks(sd, "transformer.resblocks."),
        intermediate_size=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_attention_heads=text_heads or max(1, tw // 64),
        hidden_act=hidden_act,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=sd["visual.proj"].shape[1])


def _convert_blocks(sd: dict, src: str, dst: str, out: dict, used: set) -> None:
    for k, v in sd.items():
        if not k.startswith(src):
            continue
        n, rest = k[len(src) :].split(".", 1)
        base = f"{dst}{n}."
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = rest.rsplit("_", 1)[1]
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"{base}self_attn.{name}.{kind}"] = part.clone()
            used.add(k)
            continue
        for a, b in _BLOCK_RENAMES.items():
            if rest.startswith(a + "."):
                out[base + b + rest[len(a) :]] = v
                used.add(k)
                break


def openclip_to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename/split an open_clip CLIP state dict into transformers ``CLIPModel`` keys."""
    out: dict[str, torch.Tensor] = {}
    direct = {
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "logit_scale": "logit_scale",
    }
    for ln_src, ln_dst in (
        ("visual.ln_pre", "vision_model.pre_layrnorm"),
        ("visual.ln_post", "vision_model.post_layernorm"),
        ("ln_final", "text_model.final_layer_norm"),
    ):
        for p in ("weight", "bias"):
            direct[f"{ln_src}.{p}"] = f"{ln_dst}.{p}"
    used = set()
    for a, b in direct.items():
        out[b] = sd[a]
        used.add(a)
    # x @ proj in open_clip == Linear with weight proj.T in transformers
    out["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    out["text_projection.weight"] = sd["text_projection"].t().contiguous()
    used |= {"visual.proj", "text_projection"}
    _convert_blocks(sd, "visual.transformer.resblocks.", "vision_model.encoder.layers.", out, used)
    _convert_blocks(sd, "transformer.resblocks.", "text_model.encoder.layers.", out, used)
    left = sorted(k for k in sd if k not in used and not _IGNORED.search(k))
    if left:
        raise ValueError(f"open_clip keys this converter does not understand (a different architecture?): {left[:8]}")
    return out


def hf_to_openclip_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping (export a transformers CLIPModel in open_clip naming)."""
    inv = {}
    for k, v in sd.items():
        m = re.match(r"(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$", k)
        if m:
            src = (
                ("visual.transformer.resblocks." if m.group(1) == "vision" else "transformer.resblocks.")
                + m.group(2)
                + "."
            )
            rest = m.group(3)
            q = re.match(r"self_attn\.q_proj\.(weight|bias)$", rest)
            if q:
                pre = k[: -len(rest)]
                inv[f"{src}attn.in_proj_{q.group(1)}"] = torch.cat(
                    [sd[f"{pre}self_attn.{p}_proj.{q.group(1)}"] for p in "qkv"], dim=0
                )
            elif not re.match(r"self_attn\.[kv]_proj\.", rest):
                for a, b in _BLOCK_RENAMES.items():
                    if rest.startswith(b + "."):
                        inv[src + a + rest[len(b) :]] = v
            continue
        inv[k] = v
    fwd_names = {
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
    }
    for ln_dst, ln_src in (
        ("visual.ln_pre", "vision_model.pre_layrnorm"),
        ("visual.ln_post", "vision_model.post_layernorm"),
        ("ln_final", "text_model.final_layer_norm"),
    ):
        for p in ("weight", "bias"):
            fwd_names[f"{ln_src}.{p}"] = f"{ln_dst}.{p}"
    out = {fwd_names.get(k, k): v for k, v in inv.items() if not k.endswith("position_ids")}
    out["visual.proj"] = out.pop("visual_projection.weight").t().contiguous()
    out["text_projection"] = out.pop("text_projection.weight").t().contiguous()
    return out


def clip_from_openclip(sd: dict, vision_heads=None, text_heads=None, hidden_act="gelu", device=None, dtype=None):
    """Build a transformers ``CLIPModel`` holding an open_clip state dict's weights."""
    from transformers import CLIPModel

    hf = openclip_to_hf_state_dict(sd)  # first: an unknown architecture fails on its keys, not a shape
    config = openclip_config(sd, vision_heads, text_heads, hidden_act)
    with torch.device(device or "cpu"):  # initialise straight on the target device (ViT-H: 1B params)
        model = CLIPModel(config)
    model.load_state_dict(hf, strict=True)
    return model.to(dtype=dtype or torch.float32).eval()
