"""Token blocks of the RIN backbone: pre-norm attention + feed-forward residual blocks.

Written to compute the same function as the released MIRO network (so its weights load by a
key map), which fixes a few choices that differ from our DiT blocks: an RMSNorm that normalises
in fp32, LayerNorm (with affine) on queries and keys per head, a SwiGLU whose hidden width is
rounded up to a multiple of 256, and an un-normalised key/value source in cross-attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SDPA


class FP32RMSNorm(nn.Module):
    """RMS norm computed in fp32 and cast back: bf16 autocast would otherwise lose the variance."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


class SwiGLU(nn.Module):
    """x -> fc2(a * silu(g)) with (a, g) = fc1(x) split in halves; hidden = ceil256(mult * dim * 2/3)."""

    def __init__(self, dim: int, mult: float, bias: bool = True):
        super().__init__()
        hidden = int(int(mult * dim) * 2 / 3)
        hidden += -hidden % 256
        self.fc1 = nn.Linear(dim, 2 * hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(a * F.silu(g))


class GeluMLP(nn.Module):
    def __init__(self, dim: int, mult: float, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * mult), bias=bias)
        self.fc2 = nn.Linear(int(dim * mult), dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TokenAttention(nn.Module):
    """Multi-head attention of `inner` width; self-attention uses one fused qkv projection."""

    def __init__(self, dim_q: int, dim_kv: int | None, inner: int, heads: int, qkv_bias: bool, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.is_self = dim_kv is None
        if self.is_self:
            self.qkv = nn.Linear(dim_q, 3 * inner, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim_q, inner, bias=qkv_bias)
            self.kv = nn.Linear(dim_kv, 2 * inner, bias=qkv_bias)
        self.out = nn.Linear(inner, dim_q)
        self.q_norm = nn.LayerNorm(inner // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(inner // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.core = SDPA()  # a module, so FLOP counting (models.flops) sees the attention shapes

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """x (B, Lq, dim_q); ctx (B, Lk, dim_kv) or None; mask (B, Lk) bool, True = attend."""
        if self.is_self:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q = self.q(x)
            k, v = self.kv(ctx).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, H, L, d)
        q, k = self.q_norm(q), self.k_norm(k)
        attn_mask = None if mask is None else mask[:, None, None, :]
        o = self.core(q, k, v, attn_mask=attn_mask)
        return self.out(o.transpose(1, 2).flatten(2))


class TokenBlock(nn.Module):
    """x + ls1 * attn(norm1(x), ctx) then x + ls2 * ffn(norm2(x)). ctx_dim=None: self-attention.

    Cross-attention reads the context un-normalised (the context is some other stream's
    residual, already normalised where it was produced or not at all, as in the released model).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp: float,
        ctx_dim: int | None = None,
        *,
        rms: bool = True,
        swiglu: bool = True,
        qk_norm: bool = True,
        qkv_bias: bool = False,
        layer_scale: float | None = None,
    ):
        super().__init__()
        inner = dim if ctx_dim is None else min(dim, ctx_dim)
        norm = FP32RMSNorm if rms else (lambda d: nn.LayerNorm(d, eps=1e-6))
        self.norm1 = norm(dim)
        self.attn = TokenAttention(dim, ctx_dim, inner, heads, qkv_bias, qk_norm)
        self.norm2 = norm(dim)
        self.ffn = SwiGLU(dim, mlp) if swiglu else GeluMLP(dim, mlp)
        if layer_scale is not None:
            self.ls1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.ls2 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        else:
            self.ls1 = self.ls2 = None

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        a = self.attn(self.norm1(x), ctx, mask)
        x = x + (a if self.ls1 is None else self.ls1 * a)
        f = self.ffn(self.norm2(x))
        return x + (f if self.ls2 is None else self.ls2 * f)
