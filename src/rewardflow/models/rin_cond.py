"""Conditioning of the RIN backbone: noise level, reward tokens, text registers and caption.

Every scalar (the noise level gamma and each reward value) goes through its own random-Fourier
embedder: cos(2 pi (f x + phase)) * sqrt(2) with f ~ N(0, 1) and phase ~ U(0, 1) drawn once and
kept as buffers, standardised over channels, then Linear-SiLU-Linear to the latent width. The
reward tokens (plus a learned position each), learned text registers and the projected caption
pass through a short transformer; the time token is put in front, giving the sequence the
latents cross-attend to:

    cond (B, 1 + N + R + L, D), cond_mask (B, 1 + N + R + L) bool

An unspecified reward (reward_drop) is a zero token before its position is added, as the
released MIRO models read a missing reward key.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import DenoiserConfig
from .rin_layers import TokenBlock


class ScalarEmbedder(nn.Module):
    """(B,) scalars -> (B, 4 * channels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels))
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels))
        self.fc1 = nn.Linear(channels, 4 * channels)
        self.fc2 = nn.Linear(4 * channels, 4 * channels)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        y = torch.cos(torch.outer(s.float(), self.freqs) + self.phases) * math.sqrt(2)
        y = ((y - y.mean(-1, keepdim=True)) / y.std(-1, keepdim=True)).to(s.dtype)
        return self.fc2(torch.nn.functional.silu(self.fc1(y)))


class RINCondition(nn.Module):
    def __init__(self, config: DenoiserConfig):
        super().__init__()
        c, d = config, config.hidden_size
        self.num_rewards = c.num_rewards
        self.time = ScalarEmbedder(d // 4)
        self.rewards = nn.ModuleList(ScalarEmbedder(d // 4) for _ in range(c.num_rewards))
        self.reward_pos = nn.Parameter(torch.zeros(c.num_rewards, d))
        self.registers = nn.Parameter(torch.zeros(c.rin_registers, d))
        for p in (self.reward_pos, self.registers):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
        self.text_proj = nn.Linear(c.text_dim, d)
        self.blocks = nn.ModuleList(
            TokenBlock(d, c.rin_cond_heads, 4, rms=False, swiglu=False, qk_norm=False, qkv_bias=True, layer_scale=0.1)
            for _ in range(c.rin_cond_layers)
        )
        null = torch.randn(c.null_text_tokens, c.text_dim) * 0.02
        if c.rin_null_text == "learned":
            self.null_text = nn.Parameter(null)
        else:  # a fixed negative caption (the released models' empty-prompt embedding), loaded with the weights
            self.register_buffer("null_text", null)

    def reward_tokens(self, rewards: torch.Tensor, reward_drop: torch.Tensor | None) -> torch.Tensor:
        """(B, N) in [0, 1] -> (B, N, D)."""
        tok = torch.stack([emb(rewards[:, i]) for i, emb in enumerate(self.rewards)], dim=1)
        if reward_drop is not None:
            tok = torch.where(reward_drop[..., None], torch.zeros_like(tok), tok)
        return tok + self.reward_pos.to(tok.dtype)

    def context(self, text, text_mask, rewards=None, reward_drop=None):
        """The part that does not depend on the noise level (samplers compute it once):
        text (B, L, D_text), text_mask (B, L) -> (seq (B, N + R + L, D), mask)."""
        b, dtype = text.shape[0], self.text_proj.weight.dtype
        parts = [self.registers.expand(b, -1, -1).to(dtype), self.text_proj(text.to(dtype))]
        if self.num_rewards:
            parts.insert(0, self.reward_tokens(rewards.to(dtype), reward_drop))
        seq = torch.cat([p.to(parts[-1].dtype) for p in parts], dim=1)
        fixed = seq.shape[1] - text.shape[1]
        mask = torch.cat([text_mask.new_ones(b, fixed), text_mask], dim=1)
        for blk in self.blocks:
            seq = blk(seq, mask=mask)
        return seq, mask

    def forward(self, gamma, context):
        """gamma (B,), context from ``context`` -> (time (B, D), cond (B, S, D), cond_mask (B, S))."""
        seq, mask = context
        time = self.time(gamma)
        cond = torch.cat([time[:, None].to(seq.dtype), seq], dim=1)
        return time, cond, torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
