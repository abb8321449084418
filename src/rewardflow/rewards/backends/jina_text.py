"""jina-clip-v2's text tower (the jina-embeddings-v3 XLM-RoBERTa), written here so that the
released weights load without running the hub's remote code.

What differs from transformers' XLM-RoBERTa:
- no absolute positions: rotary embedding on q and k over the whole head, in split halves
  (GPT-NeoX style), positions from 0;
- a fused q/k/v projection (``mixer.Wqkv``); post-LayerNorm blocks; exact-erf GELU MLP;
- the feature is the mean of the last hidden states over the non-padding tokens;
- the release stores its weights as LoRA parametrisations (``parametrizations.weight.original``
  plus per-task ``lora_A`` / ``lora_B``) and applies the default task's adapter on every text
  forward, so `merge_lora` folds that adapter into plain weights once at load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# jina-embeddings-v3's config.json: the release's text config only overrides these (the
# official loader reads them from the hub at every load).
V3_DEFAULTS = {
    "vocab_size": 250002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-5,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "rotary_emb_base": 20000.0,
    "hidden_act": "gelu",
    "lora_rank": 4,
    "lora_alpha": 1,
}


@dataclass(frozen=True)
class XlmrConfig:
    vocab_size: int = 250002
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    layer_norm_eps: float = 1e-5
    type_vocab_size: int = 1
    pad_token_id: int = 1
    rotary_emb_base: float = 20000.0

    @classmethod
    def from_release(cls, text_config: dict) -> XlmrConfig:
        kw = {**V3_DEFAULTS, **(text_config.get("hf_model_config_kwargs") or {})}
        bad = {}
        if kw.get("position_embedding_type", "rotary") != "rotary":
            bad["position_embedding_type"] = kw["position_embedding_type"]
        if kw.get("hidden_act") != "gelu":
            bad["hidden_act"] = kw["hidden_act"]
        if kw.get("rotary_emb_interleaved", False):
            bad["rotary_emb_interleaved"] = True
        if text_config.get("pooler_type", "mean_pooler") != "mean_pooler":
            bad["pooler_type"] = text_config["pooler_type"]
        if text_config.get("proj_type") is not None:
            bad["proj_type"] = text_config["proj_type"]
        if bad:
            raise ValueError(
                f"jina-clip text_config has settings this implementation does not cover: {bad}"
                " (supported: rotary positions in split halves, exact GELU, mean pooling, no projection)."
            )
        return cls(**{k: kw[k] for k in cls.__dataclass_fields__})


def lora_task_index(text_config: dict) -> int | None:
    """Index of the adapter the release applies by default (None when it has no adapters)."""
    kw = text_config.get("hf_model_config_kwargs") or {}
    tasks, task = kw.get("lora_adaptations"), text_config.get("default_lora_task")
    if not tasks or task is None:
        return None
    if task not in tasks:
        raise ValueError(f"jina-clip default_lora_task {task!r} is not one of lora_adaptations {tasks}")
    return tasks.index(task)


def merge_lora(
    sd: dict[str, torch.Tensor], task: int | None, scale: float, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Fold adapter `task` into every parametrised weight: linear W + B[t] @ A[t], embedding
    E + A[t] @ B[t] (each times alpha / rank), in fp32, chunked over rows (the word table is
    250k x 1024), each result cast to `dtype` at once (peak memory: one fp32 weight). Returns
    plain ``.weight`` names; a LoRA factor without its weight, or the reverse, is an error."""
    tag = ".parametrizations.weight."
    out = {k: v.to(dtype) for k, v in sd.items() if tag not in k}
    factors = {k for k in sd if tag in k and not k.endswith(tag + "original")}
    for k in [k for k in sd if k.endswith(tag + "original")]:
        base = k[: -len(tag + "original")]
        names = (f"{base}{tag}0.lora_A", f"{base}{tag}0.lora_B")
        if not all(n in sd for n in names):
            raise ValueError(f"jina-clip weights: {k} has no matching {tag}0.lora_A / lora_B")
        factors -= set(names)
        out[base + ".weight"] = _fold(base, sd[k], sd[names[0]], sd[names[1]], task, scale).to(dtype)
    if factors:
        raise ValueError(f"jina-clip weights: LoRA factors without a weight: {sorted(factors)[:5]}")
    return out


def _fold(base: str, w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, task: int | None, scale: float):
    w = w.float().clone()
    if task is None:
        return w
    a, b = a[task].float(), b[task].float()
    embedding = base.rsplit(".", 1)[-1].endswith("_embeddings")  # A (rows, r), B (r, dim)
    left, right = (a, b) if embedding else (b, a)  # linear: B (out, r), A (r, in)
    if (left.shape[0], right.shape[1]) != tuple(w.shape) or left.shape[1] != right.shape[0]:
        raise ValueError(f"jina-clip weights: LoRA factors of {base} do not fit its {tuple(w.shape)} weight")
    for i in range(0, w.shape[0], 65536):
        w[i : i + 65536] += scale * (left[i : i + 65536] @ right)
    return w


def rotary_tables(n: int, dim: int, base: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos / sin (n, dim) for positions 0..n-1, the two halves sharing frequencies."""
    inv = 1.0 / base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    ang = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def rotate_halves(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class _Mixer(nn.Module):
    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.out_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x, cos, sin, key_ok):
        b, n, c = x.shape
        q, k, v = self.Wqkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # each (B, H, L, Dh)
        q, k = ((t.float() * cos + rotate_halves(t.float()) * sin).to(v.dtype) for t in (q, k))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok[:, None, None, :])
        return self.out_proj(o.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.mixer = _Mixer(cfg)
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = _Mlp(cfg)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x, cos, sin, key_ok):
        x = self.norm1(x + self.mixer(x, cos, sin, key_ok))
        return self.norm2(x + self.mlp(x))


class _Embeddings(nn.Module):
    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)


class _Encoder(nn.Module):
    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_hidden_layers))


class JinaTextTower(nn.Module):
    """(B, L) token ids, right-padded with `pad_token_id` -> (B, hidden) mean-pooled feature."""

    def __init__(self, cfg: XlmrConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = _Embeddings(cfg)
        self.emb_ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = _Encoder(cfg)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != self.cfg.pad_token_id  # the release derives the mask from the ids, not the tokenizer
        emb = self.embeddings
        x = emb.word_embeddings(ids) + emb.token_type_embeddings.weight[0]  # token type is always 0
        x = self.emb_ln(x)
        head_dim = self.cfg.hidden_size // self.cfg.num_attention_heads
        cos, sin = rotary_tables(ids.shape[1], head_dim, self.cfg.rotary_emb_base, ids.device)
        for layer in self.encoder.layers:
            x = layer(x, cos, sin, keep)
        m = keep.unsqueeze(-1).float()  # fp32: a bf16 sum would round token counts above 256
        return (x.float() * m).sum(1) / m.sum(1)
