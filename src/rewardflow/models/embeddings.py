"""Conditioning embeddings shared by every backbone: timestep, reward tokens, text projection.

`ConditionEncoder` turns (t, text, text_mask, rewards, reward_drop) into the two things a
backbone consumes:
  cond    (B, cond_dim)     -- adaLN / adaptive-norm vector: t-embedding + pooled reward tokens
  context (B, L + N, ctx)   -- cross-attention tokens: projected text then one token per reward
  ctx_mask (B, L + N) bool  -- True = attend (reward tokens are always real)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DenoiserConfig


def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) t in [0, 1] -> (B, dim) sin/cos features (fp32).

    t is scaled by 1000 so the classic DiT frequency range (tuned for integer steps) still
    separates nearby flow times.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def reward_fourier(values: torch.Tensor, dim: int, max_freq: float) -> torch.Tensor:
    """(..., ) values in [0, 1] -> (..., dim) Fourier features (fp32).

    Angular frequencies are pi * f with f geometric in [1, max_freq]. The lowest is a HALF cycle
    over [0, 1], so the map is injective on [0, 1] (integer full cycles would make 0 and 1 alias);
    the highest resolves neighbouring bins (B = 64 -> spacing 1/63).
    """
    n = dim // 2
    f = torch.exp(torch.linspace(0.0, math.log(max_freq), n, device=values.device, dtype=torch.float32))
    args = values.float()[..., None] * (math.pi * f)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """t (B,) -> (B, dim): sinusoid -> MLP, as DiT."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_sinusoid(t, self.freq_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class RewardEmbedder(nn.Module):
    """rewards (B, N) in [0, 1] -> tokens (B, N, dim), one token per reward.

    A shared MLP reads the Fourier features of each value; the learned per-reward position
    embedding tells the network WHICH reward a token carries. reward_drop swaps a token for a
    learned per-reward null.
    """

    def __init__(self, num_rewards: int, dim: int, fourier_dim: int, max_freq: float, with_null: bool):
        super().__init__()
        self.num_rewards, self.fourier_dim, self.max_freq = num_rewards, fourier_dim, max_freq
        self.mlp = nn.Sequential(nn.Linear(fourier_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.pos = nn.Parameter(torch.randn(num_rewards, dim) * 0.02)
        self.null = nn.Parameter(torch.randn(num_rewards, dim) * 0.02) if with_null else None

    def forward(self, rewards: torch.Tensor, reward_drop: torch.Tensor | None = None) -> torch.Tensor:
        feats = reward_fourier(rewards, self.fourier_dim, self.max_freq)  # (B, N, F)
        tok = self.mlp(feats.to(self.mlp[0].weight.dtype)) + self.pos.to(self.mlp[0].weight.dtype)
        if self.null is not None:
            # Always route through torch.where (an all-False mask when no drop is asked) so the
            # null parameters are in every graph: DDP then needs no find_unused_parameters.
            if reward_drop is None:
                reward_drop = torch.zeros(rewards.shape, dtype=torch.bool, device=rewards.device)
            tok = torch.where(reward_drop[..., None], self.null.to(tok.dtype)[None], tok)
        return tok


class TextProjector(nn.Module):
    """text (B, L, D_text) -> (B, L, dim): Linear-GELU-Linear (a caption MLP as PixArt)."""

    def __init__(self, text_dim: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.mlp(text.to(self.mlp[0].weight.dtype))


class ConditionEncoder(nn.Module):
    """All conditioning for a backbone; see module docstring for the outputs."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        c = config
        self.time = TimestepEmbedder(c.cond_dim)
        self.text = TextProjector(c.text_dim, c.ctx_dim)
        # Null text lives in the text ENCODER's space (B, L0, D_text) so it can replace a caption
        # before projection, exactly like a real (empty) caption would.
        self.null_text = nn.Parameter(torch.randn(c.null_text_tokens, c.text_dim) * 0.02)
        if c.num_rewards > 0:
            self.rewards = RewardEmbedder(
                c.num_rewards, c.ctx_dim, c.reward_fourier_dim, c.reward_max_freq, c.reward_null
            )
            # The adaLN vector reads the tokens CONCATENATED, not averaged: a mean of
            # mlp(fourier(s_k)) + pos_k depends only on the multiset of values, so the network
            # could not tell which reward holds which target (measured: dialling any one reward
            # gave the same images). (N * ctx) -> cond.
            self.reward_pool = nn.Linear(c.num_rewards * c.ctx_dim, c.cond_dim)
        else:
            self.rewards = None
            self.reward_pool = None

    def forward(self, t, text, text_mask, rewards=None, reward_drop=None):
        cond = self.time(t)  # (B, cond_dim)
        ctx = self.text(text)  # (B, L, ctx)
        mask = text_mask
        if self.rewards is not None:
            rtok = self.rewards(rewards, reward_drop).to(ctx.dtype)  # (B, N, ctx)
            cond = cond + self.reward_pool(rtok.flatten(1)).to(cond.dtype)
            ctx = torch.cat([ctx, rtok], dim=1)
            ones = torch.ones(rtok.shape[:2], dtype=torch.bool, device=mask.device)
            mask = torch.cat([mask, ones], dim=1)
        return cond, ctx, mask
