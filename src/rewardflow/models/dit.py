"""DiT backbone: patchify -> blocks (adaLN-Zero self-attn, cross-attn to text+reward tokens, MLP)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention
from .base import DenoiserModel
from .config import DenoiserConfig
from .registry import register_backbone


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2D sin/cos embedding: half the channels encode rows, half columns."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    def enc(pos: torch.Tensor) -> torch.Tensor:
        args = pos.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)

    return torch.cat([enc(yy), enc(xx)], dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ctx_dim: int, cond_dim: int, mlp_ratio: float, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, qk_norm=qk_norm)
        # Cross-attention is an ungated residual (as PixArt): with adaLN-Zero gates at 0, a gated
        # cross-attention would hide text and rewards from the network until the gates grow.
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = Attention(dim, heads, context_dim=ctx_dim, qk_norm=qk_norm)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))

    def forward(self, x, c, ctx, ctx_mask):
        """x (B, T, dim); c (B, cond_dim); ctx (B, S, ctx_dim); ctx_mask (B, S)."""
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c)[:, None].chunk(6, dim=-1)  # each (B, 1, dim)
        x = x + g1 * self.attn(modulate(self.norm1(x), sh1, sc1))
        x = x + self.cross(self.norm2(x), ctx, ctx_mask)
        x = x + g2 * self.mlp(modulate(self.norm3(x), sh2, sc2))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, cond_dim: int, patch: int, out_ch: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
        self.linear = nn.Linear(dim, patch * patch * out_ch)

    def forward(self, x, c):
        shift, scale = self.ada(c)[:, None].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, T, p*p*C)


@register_backbone("dit")
class DiT(DenoiserModel):
    backbone_name = "dit"

    def __init__(self, config: DenoiserConfig):
        super().__init__(config)
        c = config
        w, p = c.hidden_size, c.patch_size
        self.grid = c.image_size // p
        self.patch = nn.Conv2d(c.in_channels, w, kernel_size=p, stride=p)
        n_tok = self.grid * self.grid
        if c.pos_embed == "learned":
            self.pos_embed = nn.Parameter(sincos_pos_embed_2d(w, self.grid)[None].clone())
        else:
            # Fixed and recomputed on build: not part of the checkpoint.
            self.register_buffer("pos_embed", sincos_pos_embed_2d(w, self.grid)[None], persistent=False)
        assert self.pos_embed.shape == (1, n_tok, w)
        self.blocks = nn.ModuleList(
            DiTBlock(w, c.num_heads, c.ctx_dim, c.cond_dim, c.mlp_ratio, c.qk_norm) for _ in range(c.depth)
        )
        self.final = FinalLayer(w, c.cond_dim, p, c.out_ch)
        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.patch.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch.bias)
        for lin in (self.cond.time.mlp[0], self.cond.time.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        # adaLN-Zero: every residual branch gated shut and the output layer zero, so the network
        # starts as the identity on its residual stream and predicts v = 0.
        for blk in self.blocks:
            nn.init.zeros_(blk.ada[1].weight)
            nn.init.zeros_(blk.ada[1].bias)
        for lin in (self.final.ada[1], self.final.linear):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p*p*C) -> (B, C, H, W)."""
        b, p, g, ch = x.shape[0], self.config.patch_size, self.grid, self.config.out_ch
        x = x.view(b, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, ch, g * p, g * p)

    def backbone_forward(self, x, cond, ctx, ctx_mask):
        x = x.to(self.patch.weight.dtype)
        h = self.patch(x).flatten(2).transpose(1, 2)  # (B, T, W)
        h = h + self.pos_embed.to(h.dtype)
        for blk in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(blk, h, cond, ctx, ctx_mask, use_reentrant=False)
            else:
                h = blk(h, cond, ctx, ctx_mask)
        return self.unpatchify(self.final(h, cond))
