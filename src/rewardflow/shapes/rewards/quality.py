"""Image-quality rewards for ShapesWorld, from pixels only, vectorised over the batch.

All share two noise-robust building blocks: a robust noise estimate (median absolute
Laplacian-like residual, Immerkaer 1996) and a 3x3 median pre-filter. Measuring sharpness (and, in
colorfulness.py, colourfulness) on the median-filtered image keeps noise from posing as detail or colour, so the
three rewards are not one signal in three disguises. Formulas: docs/REWARDS.md.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rewardflow.rewards.base import Reward
from rewardflow.rewards.registry import register_reward

# Immerkaer's kernel: zero response to any locally planar image, so smooth shading and the
# inside of objects cancel and what remains is noise (and a few edge pixels the median ignores).
_NOISE_KERNEL = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_NOISE_KERNEL_NORM = 6.0  # sqrt(sum of squared taps): residual std = 6 * noise std
_MAD_TO_STD = 1.0 / 0.6744897501960817  # median |N(0, 1)|


def to_float_bchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in uint8 units [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def noise_sigma(x: torch.Tensor) -> torch.Tensor:
    """Robust per-image noise std (uint8 units) of float (B, C, H, W); mean over channels.

    sigma = median(|x * K|) / 0.6745 / 6 per channel. The median keeps object edges (a small
    fraction of pixels) out of the estimate; images smaller than 3x3 get 0.
    """
    b, c, h, w = x.shape
    if h < 3 or w < 3:
        return torch.zeros(b)
    k = _NOISE_KERNEL.to(x).expand(c, 1, 3, 3)
    r = F.conv2d(x, k, groups=c).abs().flatten(2)  # valid region only: borders are not noise
    sig = torch.quantile(r, 0.5, dim=-1) * (_MAD_TO_STD / _NOISE_KERNEL_NORM)
    return sig.mean(dim=1)


def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median filter with replicated borders, (B, C, H, W) -> same."""
    b, c, h, w = x.shape
    p = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    u = F.unfold(p, 3)  # (B*C, 9, H*W)
    return u.median(dim=1).values.reshape(b, c, h, w)


def _local_range(x: torch.Tensor, k: int) -> torch.Tensor:
    pad = k // 2
    return F.max_pool2d(x, k, 1, pad) + F.max_pool2d(-x, k, 1, pad)


@register_reward("sharpness")
class Sharpness(Reward):
    """Edge sharpness in [0, 1]: peak gradient over local contrast at edges, after a median denoise.

    On the 3x3-median-filtered image m: g = max over channels and directions of the forward
    difference |m(p + 1) - m(p)|; R = max over channels of the 5x5 range (max - min) of m.
    Edge pixels E = {R > tau}, tau = 24 + 3 * sigma_noise. Per edge pixel s = maxpool5(g) / R:
    1 for an ideal step, erf-like falling with blur width, independent of the edge's contrast.
    sharpness = median of s over E (0 when the image has no edge at all).
    """

    version = "1"
    needs_caption = False
    batch_size = 256
    base_threshold = 24.0

    def _score(self, images, captions):
        x = to_float_bchw(images)
        sigma = noise_sigma(x)
        m = median3(x)
        dx = (m[..., :, 1:] - m[..., :, :-1]).abs()
        dy = (m[..., 1:, :] - m[..., :-1, :]).abs()
        g = torch.zeros_like(m)
        # Put each forward difference on both pixels it joins, so the step is seen from either side.
        g[..., :, 1:] = torch.maximum(g[..., :, 1:], dx)
        g[..., :, :-1] = torch.maximum(g[..., :, :-1], dx)
        g[..., 1:, :] = torch.maximum(g[..., 1:, :], dy)
        g[..., :-1, :] = torch.maximum(g[..., :-1, :], dy)
        g = F.max_pool2d(g.amax(dim=1, keepdim=True), 5, 1, 2)[:, 0]
        rng = _local_range(m, 5).amax(dim=1)
        tau = (self.base_threshold + 3.0 * sigma)[:, None, None]
        edge = rng > tau
        s = torch.where(edge, (g / rng.clamp_min(1e-6)).clamp(max=1.0), torch.nan).flatten(1)
        out = torch.nanquantile(s, 0.5, dim=1)
        return torch.nan_to_num(out, nan=0.0)


@register_reward("cleanliness")
class Cleanliness(Reward):
    """Absence of noise in (0, 1]: exp(-sigma / 10), sigma the robust noise std in uint8 units.

    sigma = mean over RGB of median(|I * K|) / 0.6745 / 6 with Immerkaer's 3x3 kernel
    K = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] on the valid region. 1 = clean; sigma = 10 -> 0.37.
    """

    version = "1"
    needs_caption = False
    batch_size = 512
    scale = 10.0

    def _score(self, images, captions):
        return torch.exp(-noise_sigma(to_float_bchw(images)) / self.scale)


__all__ = ["Sharpness", "Cleanliness", "noise_sigma", "median3", "to_float_bchw"]
