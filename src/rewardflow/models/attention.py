"""Multi-head attention on torch's scaled_dot_product_attention, shared by DiT and U-Net."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SDPA(nn.Module):
    """Parameter-free wrapper so forward hooks (flops.py) can see attention's q/k/v shapes."""

    def forward(self, q, k, v, attn_mask=None):  # q (B, H, Lq, d), k/v (B, H, Lk, d)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


class HeadRMSNorm(nn.Module):
    """RMS norm over the head dim; the weight follows the input dtype so bf16 autocast stays fused."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


class Attention(nn.Module):
    """Self-attention (context=None) or cross-attention to `context` with a key padding mask."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.is_cross = context_dim is not None
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim if context_dim is not None else dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        # QK-norm (RMS over head dim) keeps attention logits bounded in long bf16 runs.
        self.q_norm = HeadRMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.core = SDPA()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """x (B, Lq, dim); context (B, Lk, context_dim); mask (B, Lk) bool, True = attend."""
        b, lq, dim = x.shape
        src = x if context is None else context
        lk = src.shape[1]
        q = self.q(x).view(b, lq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(src).view(b, lk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        attn_mask = None
        valid = None
        if mask is not None:
            # A row with no real key would softmax over -inf only (NaN). Let such rows attend to
            # everything, then zero their output: "no context" contributes nothing.
            valid = mask.any(dim=1)  # (B,)
            attn_mask = (mask | ~valid[:, None])[:, None, None, :]  # (B, 1, 1, Lk)
        out = self.core(q, k, v, attn_mask=attn_mask)  # (B, H, Lq, d)
        out = out.transpose(1, 2).reshape(b, lq, dim)
        out = self.proj(out)
        if valid is not None:
            out = out * valid[:, None, None].to(out.dtype)
        return out
