"""jina-clip-v2's image tower, an EVA02 ViT, written here so that the released weights load
without running the hub's remote code.

Module and parameter names follow the release (``vision_model.*`` in its model.safetensors), so the
file loads by name with a strict check. What differs from a plain ViT:
- q / k / v are separate bias-free projections with learned q and v biases (no k bias);
- 2-D rotary embedding on the patch tokens (not the class token): the first half of each head
  carries the row, the second half the column, in interleaved pairs, with positions rescaled to
  the pretraining grid (``intp_freq``: t = k * pt_len / grid);
- a LayerNorm inside attention before the output projection and inside the SwiGLU before its
  output projection (sub-LN);
- the class token after the final norm is the embedding (no projection head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


@dataclass(frozen=True)
class EvaConfig:
    image_size: int = 512
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    head_width: int = 64
    mlp_ratio: float = 2.6667
    pt_hw_seq_len: int = 16
    intp_freq: bool = True

    # The variants of the EVA code that this module implements; any other value in a config.json
    # would silently change the maths, so it is refused by name.
    _REQUIRED = {
        "rope_embeddings": True,
        "naive_swiglu": True,
        "subln": True,
        "post_norm": False,
        "qkv_bias": True,
        "ls_init_value": None,
        "proj_type": None,
    }

    @classmethod
    def from_release(cls, vc: dict) -> EvaConfig:
        bad = {k: vc.get(k, want) for k, want in cls._REQUIRED.items() if vc.get(k, want) != want}
        if vc.get("embed_dim", vc.get("width")) != vc.get("width", cls.width):
            bad["embed_dim"] = vc.get("embed_dim")
        if bad:
            raise ValueError(
                f"jina-clip vision_config has settings this implementation does not cover: {bad}"
                f" (supported: {cls._REQUIRED} and embed_dim == width)."
            )
        keys = ("image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio", "pt_hw_seq_len", "intp_freq")
        return cls(**{k: vc[k] for k in keys if k in vc})

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def hidden(self) -> int:
        return int(self.width * self.mlp_ratio)  # the release truncates: 1024 * 2.6667 -> 2730


def rope_tables(grid: int, pt_len: int, intp: bool, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin tables (grid*grid, head_dim) in fp32 for patch p = row * grid + col."""
    half = head_dim // 2
    inv = 1.0 / 10000 ** (torch.arange(0, half, 2).float()[: half // 2] / half)  # (half/2,)
    pos = torch.arange(grid, dtype=torch.float32)
    if intp:
        pos = pos / grid * pt_len
    ang = (pos[:, None] * inv[None]).repeat_interleave(2, dim=-1)  # (grid, half): pairs share an angle
    rows = ang[:, None, :].expand(grid, grid, half)
    cols = ang[None, :, :].expand(grid, grid, half)
    full = torch.cat([rows, cols], dim=-1).reshape(grid * grid, head_dim)
    return full.cos(), full.sin()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(a, b) -> (-b, a) for each interleaved pair of the last dimension."""
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-b, a), dim=-1).flatten(-2)


class EvaAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.inner_attn_ln = nn.LayerNorm(width, eps=EPS)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # n = 1 class token + grid**2 patches

        def heads(t):
            return t.view(b, n, self.heads, -1).transpose(1, 2)  # (B, H, N, Dh)

        q = heads(F.linear(x, self.q_proj.weight, self.q_bias))
        k = heads(self.k_proj(x))
        v = heads(F.linear(x, self.v_proj.weight, self.v_bias))

        def rope(t):  # fp32 tables; the result returns to the activations' dtype
            p = t[:, :, 1:]
            p = (p * cos + rotate_pairs(p) * sin).to(t.dtype)
            return torch.cat([t[:, :, :1], p], dim=2)

        o = F.scaled_dot_product_attention(rope(q), rope(k), v)
        return self.proj(self.inner_attn_ln(o.transpose(1, 2).reshape(b, n, c)))


class EvaSwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(width, hidden)  # gate (SiLU)
        self.w2 = nn.Linear(width, hidden)
        self.ffn_ln = nn.LayerNorm(hidden, eps=EPS)
        self.w3 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.ffn_ln(F.silu(self.w1(x)) * self.w2(x)))


class EvaBlock(nn.Module):
    def __init__(self, cfg: EvaConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=EPS)
        self.attn = EvaAttention(cfg.width, cfg.width // cfg.head_width)
        self.norm2 = nn.LayerNorm(cfg.width, eps=EPS)
        self.mlp = EvaSwiGLU(cfg.width, cfg.hidden)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: EvaConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)


class EvaVisionTower(nn.Module):
    """(B, 3, S, S) normalised pixels -> (B, width) class-token embedding (not normalised)."""

    def __init__(self, cfg: EvaConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = _PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, cfg.width))
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width, eps=EPS)
        # Not in the release's state dict: derived from the config, kept in fp32 on any device.
        self.register_buffer("rope_cos", None, persistent=False)
        self.register_buffer("rope_sin", None, persistent=False)
        self._set_rope()

    def _set_rope(self) -> None:
        cos, sin = rope_tables(self.cfg.grid, self.cfg.pt_hw_seq_len, self.cfg.intp_freq, self.cfg.head_width)
        device = self.pos_embed.device
        self.rope_cos, self.rope_sin = cos.to(device), sin.to(device)

    def _apply(self, fn, recurse=True):
        # .to(bf16) must move the rope tables but not round them (angles up to 16 rad lose their
        # low bits in bf16); a model built on the meta device gets real tables when it lands.
        out = super()._apply(fn, recurse)
        self._set_rope()
        return out

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        s = self.cfg.image_size
        if pixels.shape[-2:] != (s, s):
            raise ValueError(f"jina-clip vision tower expects {s}x{s} pixels, got {tuple(pixels.shape[-2:])}")
        x = self.patch_embed.proj(pixels.to(self.pos_embed.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x, self.rope_cos, self.rope_sin)
        return self.norm(x)[:, 0]
