"""A tiny ImageReward release written tensor by tensor under the release's own names (BLIP's
ViT and med BERT, the MLP head, the unused pre-training projections) + its med_config.json.
Used by the backend tests and by tools/crosscheck_image_reward.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch


@dataclass
class Sizes:
    vw: int = 64  # vision width (one 64-wide head per 64 channels, as BLIP's ViTs)
    vl: int = 2  # vision layers
    tokens: int = 4  # image patches (image side = patch 16 * sqrt(tokens))
    tw: int = 32  # text width
    tl: int = 2  # text layers
    th: int = 2  # text heads
    head: list = field(default_factory=lambda: [32, 24, 16, 8, 4, 1])  # the release: 768-1024-128-64-16-1
    proj: int = 16  # BLIP's unused contrastive projections (256 in the release)


def _w(g, *shape, scale=0.1):
    return torch.randn(*shape, generator=g) * scale


def _ln(sd, p, n, g):
    sd[p + "weight"], sd[p + "bias"] = 1 + _w(g, n), _w(g, n)


def _vision(sd, g, z: Sizes):
    p, vw = "blip.visual_encoder.", z.vw
    sd[p + "cls_token"], sd[p + "pos_embed"] = _w(g, 1, 1, vw), _w(g, 1, z.tokens + 1, vw)
    sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"] = _w(g, vw, 3, 16, 16, scale=0.02), _w(g, vw)
    for i in range(z.vl):
        b = f"{p}blocks.{i}."
        _ln(sd, b + "norm1.", vw, g)
        _ln(sd, b + "norm2.", vw, g)
        for name, (o, n) in {"attn.qkv": (3 * vw, vw), "attn.proj": (vw, vw), "mlp.fc1": (2 * vw, vw)}.items():
            sd[f"{b}{name}.weight"], sd[f"{b}{name}.bias"] = _w(g, o, n), _w(g, o)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = _w(g, vw, 2 * vw), _w(g, vw)
    _ln(sd, p + "norm.", vw, g)


def _text(sd, g, vocab, z: Sizes):
    p, tw = "blip.text_encoder.", z.tw
    sd[p + "embeddings.word_embeddings.weight"] = _w(g, vocab, tw)
    sd[p + "embeddings.position_embeddings.weight"] = _w(g, 40, tw)
    sd[p + "embeddings.position_ids"] = torch.arange(40)[None]
    _ln(sd, p + "embeddings.LayerNorm.", tw, g)
    for i in range(z.tl):
        b = f"{p}encoder.layer.{i}."
        for att, kv in (("attention", tw), ("crossattention", z.vw)):
            for name, n in (("query", tw), ("key", kv), ("value", kv)):
                sd[f"{b}{att}.self.{name}.weight"], sd[f"{b}{att}.self.{name}.bias"] = _w(g, tw, n), _w(g, tw)
            sd[f"{b}{att}.output.dense.weight"], sd[f"{b}{att}.output.dense.bias"] = _w(g, tw, tw), _w(g, tw)
            _ln(sd, f"{b}{att}.output.LayerNorm.", tw, g)
        sd[b + "intermediate.dense.weight"], sd[b + "intermediate.dense.bias"] = _w(g, 2 * tw, tw), _w(g, 2 * tw)
        sd[b + "output.dense.weight"], sd[b + "output.dense.bias"] = _w(g, tw, 2 * tw), _w(g, tw)
        _ln(sd, b + "output.LayerNorm.", tw, g)


def write_release(d, vocab, seed=0, z: Sizes | None = None):
    """ImageReward.pt + med_config.json as the release lays them out; returns the tensors."""
    z = z or Sizes()
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _vision(sd, g, z)
    _text(sd, g, vocab, z)
    for name, width in (("vision_proj", z.vw), ("text_proj", z.tw)):  # unused by the score
        sd[f"blip.{name}.weight"], sd[f"blip.{name}.bias"] = _w(g, z.proj, width), _w(g, z.proj)
    for idx, (a, b) in zip([0, 2, 4, 6, 7], zip(z.head[:-1], z.head[1:])):
        sd[f"mlp.layers.{idx}.weight"], sd[f"mlp.layers.{idx}.bias"] = _w(g, b, a, scale=0.5 / a**0.25), _w(g, b)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(sd, d / "ImageReward.pt")
    med = dict(vocab_size=vocab, hidden_size=z.tw, intermediate_size=2 * z.tw, num_hidden_layers=z.tl)
    med.update(num_attention_heads=z.th, max_position_embeddings=40, layer_norm_eps=1e-12, hidden_act="gelu")
    med.update(encoder_width=z.vw, add_cross_attention=True, model_type="bert", hidden_dropout_prob=0.0)
    med.update(attention_probs_dropout_prob=0.0, pad_token_id=0, type_vocab_size=2, initializer_range=0.02)
    (d / "med_config.json").write_text(json.dumps(med))
    return sd
