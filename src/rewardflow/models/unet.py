"""Small conv U-Net backbone, same contract as DiT.

Conditioning: the adaLN-style vector (t-embedding + pooled reward tokens) scales/shifts the second
GroupNorm of every ResBlock; text and reward tokens enter through cross-attention only at the low
resolutions in config.attn_resolutions (and in the middle block), where attention is cheap.
Convolutions carry locality, which is why this learns small images far faster than a DiT on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .base import DenoiserModel
from .config import DenoiserConfig
from .registry import register_backbone


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * cout))
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6, affine=False)  # affine comes from cond
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # residual branch starts closed
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, c):
        """x (B, cin, H, W); c (B, cond_dim) -> (B, cout, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(c)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class AttnBlock(nn.Module):
    """Self-attention over pixels, then cross-attention to [text; reward] tokens."""

    def __init__(self, ch: int, heads: int, ctx_dim: int, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(ch, eps=1e-6)
        self.attn = Attention(ch, heads, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(ch, eps=1e-6)
        self.cross = Attention(ch, heads, context_dim=ctx_dim, qk_norm=qk_norm)

    def forward(self, x, ctx, ctx_mask):
        b, ch, hh, ww = x.shape
        tok = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        tok = tok + self.attn(self.norm1(tok))
        tok = tok + self.cross(self.norm2(tok), ctx, ctx_mask)
        return tok.transpose(1, 2).reshape(b, ch, hh, ww)


class Level(nn.Module):
    """One ResBlock, optionally followed by attention."""

    def __init__(self, cin, cout, cfg: DenoiserConfig, with_attn: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, cfg.cond_dim, cfg.num_groups)
        self.attn = AttnBlock(cout, cfg.num_heads, cfg.ctx_dim, cfg.qk_norm) if with_attn else None

    def forward(self, x, c, ctx, ctx_mask):
        x = self.res(x, c)
        if self.attn is not None:
            x = self.attn(x, ctx, ctx_mask)
        return x


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


@register_backbone("unet")
class UNet(DenoiserModel):
    backbone_name = "unet"

    def __init__(self, config: DenoiserConfig):
        super().__init__(config)
        c = config
        base, p = c.hidden_size, c.patch_size
        # patch_size > 1: pixel-unshuffle stem, so the whole U-Net runs at image_size / p. On CPU
        # the full-resolution level dominates the cost; this trades fine detail for throughput.
        self.in_conv = nn.Conv2d(c.in_channels * p * p, base, 3, padding=1)
        res, ch = c.image_size // p, base
        skip_ch = [ch]
        self.down = nn.ModuleList()
        for i, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                self.down.append(Level(ch, base * mult, c, res in c.attn_resolutions))
                ch = base * mult
                skip_ch.append(ch)
            if i < len(c.channel_mult) - 1:
                self.down.append(Downsample(ch))
                res //= 2
                skip_ch.append(ch)
        self.mid = nn.ModuleList([Level(ch, ch, c, True), Level(ch, ch, c, False)])
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(c.channel_mult))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(Level(ch + skip_ch.pop(), base * mult, c, res in c.attn_resolutions))
                ch = base * mult
            if i > 0:
                self.up.append(Upsample(ch))
                res *= 2
        self.out_norm = nn.GroupNorm(c.num_groups, ch, eps=1e-6)
        self.out_conv = nn.Conv2d(ch, c.out_ch * p * p, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)  # predicts v = 0 at init, like DiT's zero final layer
        nn.init.zeros_(self.out_conv.bias)

    def backbone_forward(self, x, cond, ctx, ctx_mask):
        p = self.config.patch_size
        x = x.to(self.in_conv.weight.dtype)
        h = self.in_conv(F.pixel_unshuffle(x, p) if p > 1 else x)  # (B, base, H/p, W/p)
        skips = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else layer(h, cond, ctx, ctx_mask)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, cond, ctx, ctx_mask)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                h = layer(torch.cat([h, skips.pop()], dim=1), cond, ctx, ctx_mask)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(out, p) if p > 1 else out
