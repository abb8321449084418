"""RIN backbone (Recurrent Interface Network, Jabri et al. 2023), text- and reward-conditioned,
with latent self-conditioning: the architecture of the released MIRO models.

Patch tokens ("data", rin_data_dim wide) are cheap; a smaller set of latent tokens (hidden_size
wide) does the computation. Each block: the latents cross-attend to the conditioning tokens
(rin_cond_block), read from the patches, self-attend rin_layers times, and the patches read back
from the latents.

Time. The network sees the noise level gamma = 1 - t (gamma -> 1 is data), clamped at 1e-9 as
the released sampler's schedule is. With rin_sigma_data > 0 the input is scaled by
c_in = 1 / sqrt((gamma sigma)^2 + (1 - gamma)^2) and the output by sqrt(1 + sigma^2).

Self-conditioning. The latents of one evaluation are fed to the next ("previous latents", a
zero tensor at the first step) through LayerNorm -> MLP -> LayerNorm, whose last norm starts at
zero. In training, ``self_cond`` (B,) bool marks the rows that get it: a no-grad pass on the
same input gives the latents, kept on those rows and zeroed elsewhere, then the real pass.
Samplers carry the latents between steps with ``run`` (see rewardflow.sampling.latent_carry).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import DenoiserModel
from .config import DenoiserConfig
from .registry import register_backbone
from .rin_cond import RINCondition
from .rin_layers import FP32RMSNorm, GeluMLP, TokenBlock

GAMMA_MIN = 1e-9


class RINBlock(nn.Module):
    def __init__(self, c: DenoiserConfig):
        super().__init__()
        d, dd = c.hidden_size, c.rin_data_dim
        self.cond_read = TokenBlock(d, c.rin_rw_heads, c.mlp_ratio, ctx_dim=d) if c.rin_cond_block else None
        self.read = TokenBlock(d, c.rin_rw_heads, c.mlp_ratio, ctx_dim=dd)
        self.layers = nn.ModuleList(TokenBlock(d, c.num_heads, c.mlp_ratio) for _ in range(c.rin_layers))
        self.write = TokenBlock(dd, c.rin_rw_heads, c.rin_data_mlp, ctx_dim=d)

    def forward(self, x, z, cond, cond_mask):
        """x (B, T, data_dim) patches; z (B, M, D) latents; cond (B, S, D) -> (x, z)."""
        if self.cond_read is not None:
            z = self.cond_read(z, cond, cond_mask)
        z = self.read(z, x)
        for layer in self.layers:
            z = layer(z)
        return self.write(x, z), z


class SelfConditioning(nn.Module):
    def __init__(self, dim: int, mlp: float):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = GeluMLP(dim, mlp)
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        nn.init.zeros_(self.norm_out.weight)  # a no-op residual at initialisation

    def forward(self, prev: torch.Tensor) -> torch.Tensor:
        return self.norm_out(prev + self.mlp(self.norm_in(prev)))


@register_backbone("rin")
class RIN(DenoiserModel):
    backbone_name = "rin"

    def __init__(self, config: DenoiserConfig):
        super().__init__(config)
        c = config
        d, dd, p = c.hidden_size, c.rin_data_dim, c.patch_size
        self.grid = c.image_size // p
        self.patch_in = nn.Linear(c.in_channels * p * p, dd)
        self.data_norm = FP32RMSNorm(dd)
        self.data_pos = nn.Parameter(torch.zeros(self.grid**2, dd))
        learned = c.rin_latents - (c.rin_cond_tokens + 1 if c.rin_concat_cond else 0)
        self.latents = nn.Parameter(torch.zeros(learned, d))
        self.self_cond = SelfConditioning(d, c.mlp_ratio) if c.rin_self_cond > 0 else None
        self.blocks = nn.ModuleList(RINBlock(c) for _ in range(c.rin_blocks))
        self.out_norm = FP32RMSNorm(dd)
        self.out_proj = nn.Linear(dd, c.out_ch * p * p)
        self.logvar = ScalarEmbedderHead(c.rin_logvar_channels) if c.rin_logvar_channels else None
        self._init_weights()

    def build_condition(self, config: DenoiserConfig) -> nn.Module:
        return RINCondition(config)

    @property
    def carries_latents(self) -> bool:
        """True when sampling should feed each evaluation's latents to the next (see ``run``)."""
        return self.self_cond is not None

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for prm in (self.data_pos, self.latents):
            nn.init.trunc_normal_(prm, std=0.02, a=-0.04, b=0.04)

    # --- patches ------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, T, p*p*C), channels fastest within a patch."""
        b, ch, p, g = x.shape[0], x.shape[1], self.config.patch_size, self.grid
        return x.view(b, ch, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, p * p * ch)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        b, p, g, ch = x.shape[0], self.config.patch_size, self.grid, self.config.out_ch
        return x.view(b, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4).reshape(b, ch, g * p, g * p)

    # --- forward ------------------------------------------------------------------------------
    def scalings(self, gamma: torch.Tensor) -> tuple[torch.Tensor, float]:
        s = self.config.rin_sigma_data
        if not s:
            return torch.ones_like(gamma), 1.0
        return 1 / torch.sqrt((gamma * s) ** 2 + (1 - gamma) ** 2), math.sqrt(1 + s**2)

    def run(self, x_t, t, text, text_mask, rewards=None, reward_drop=None, prev_latents=None, context=None):
        """-> (v (B, C, H, W), latents (B, M, D)). prev_latents None = zeros (the first step);
        ``context``: ``self.cond.context(text, text_mask, rewards, reward_drop)`` if already known."""
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        if self.validate_inputs and not torch.compiler.is_compiling():
            self.check_inputs(x_t, t, text, text_mask, rewards, reward_drop)
        gamma = (1 - t.float()).clamp_min(GAMMA_MIN)
        c_in, c_out = self.scalings(gamma)
        w = self.patch_in.weight
        x = self.patch_in(self.patchify((x_t * c_in.view(-1, 1, 1, 1).to(x_t.dtype)).to(w.dtype)))
        x = self.data_norm(x) + self.data_pos.to(x.dtype)
        if context is None:
            context = self.cond.context(text, text_mask, rewards, reward_drop)
        time, cond, cond_mask = self.cond(gamma.to(w.dtype), context)
        z = self.latents.expand(x.shape[0], -1, -1).to(x.dtype)
        if self.config.rin_concat_cond:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        else:
            z = z + time[:, None].to(z.dtype)
        if self.self_cond is not None:
            prev = torch.zeros_like(z) if prev_latents is None else prev_latents.to(z.dtype)
            z = z + self.self_cond(prev)
        for blk in self.blocks:
            x, z = blk(x, z, cond, cond_mask)
        v = self.unpatchify(self.out_proj(self.out_norm(x))) * c_out
        return v.to(x_t.dtype), z

    def forward(self, x_t, t, text, text_mask, rewards=None, reward_drop=None, self_cond=None, prev_latents=None):
        """The denoiser contract; ``self_cond`` (B,) bool: training-time self-conditioning rows."""
        args = (x_t, t, text, text_mask, rewards, reward_drop)
        if self_cond is not None and self.self_cond is not None and prev_latents is None:
            with torch.no_grad():
                _, z = self.run(*args)
            prev_latents = z * self_cond.view(-1, 1, 1).to(z.dtype)
        return self.run(*args, prev_latents=prev_latents)[0]

    def log_variance(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) learned log-variance of the loss at t (needs rin_logvar_channels > 0)."""
        if self.logvar is None:
            raise ValueError("this RIN has no log-variance head (rin_logvar_channels=0)")
        return self.logvar((1 - t.float()).clamp_min(GAMMA_MIN))


class ScalarEmbedderHead(nn.Module):
    """gamma (B,) -> (B,): random Fourier features (no standardisation) -> Linear."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels))
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels))
        self.fc = nn.Linear(channels, 1)

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        y = torch.cos(torch.outer(gamma.float(), self.freqs) + self.phases) * math.sqrt(2)
        return self.fc(y.to(self.fc.weight.dtype))[:, 0]
