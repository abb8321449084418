"""`colorfulness`: how saturated the objects are relative to their own hue's full saturation.

Version 1 (Hasler-Suesstrunk) measured which hues an image holds: saturated red and yellow
scored highest and black 0, so conditioning on "colourfulness = 1" chose the objects' colour
and overrode the caption. Version 2 is hue-neutral by construction:

1. on the 3x3-median image m (noise must not pose as colour), the background colour is the
   per-channel median of the border ring and the foreground is every pixel farther from it
   than max(20, 2.5 sigma + 5) (sigma: the robust noise estimate), as in the detector;
2. only the objects' cores count (foreground pixels at least 0.6 x the 95th-percentile distance);
   per core pixel, opponent axes rg = R - G, yb = (R + G) / 2 - B averaged over 3x3, chroma
   C = |(rg, yb)| and hue h = its angle;
3. C is divided by the nominal chroma C0(h) of that hue: the chroma of the world's palette
   colours, interpolated linearly in hue between neighbouring palette hues;
4. the reward is the median of C / C0 over the cores (0 when nothing stands out).

Desaturation toward luminance and contrast loss toward grey both scale every pixel's opponent
vector by the kept fraction without turning it, so the score falls in proportion; a clean
object of any palette colour scores ~1 whatever its hue, and over-saturated colour (chroma
above the palette's) scores above 1. Only chromatic colours have a hue, which is why the
default palette has no black (docs/REWARDS.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rewardflow.rewards.base import Reward
from rewardflow.rewards.registry import register_reward
from rewardflow.shapes.rewards.quality import median3, noise_sigma, to_float_bchw
from rewardflow.shapes.vocab import DEFAULT_COLORS, PALETTE

FG_MIN = 20.0  # uint8 units: the detector's foreground threshold, raised with the noise level
CHROMA_FLOOR = 1e-3
CORE = 0.6  # fraction of the 95th-percentile foreground distance that counts as object core


def opponent(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) -> rg, yb, each (B, H, W): the opponent axes the detector reads hue from."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return r - g, 0.5 * (r + g) - b


def _palette_anchors(colors=DEFAULT_COLORS) -> tuple[np.ndarray, np.ndarray]:
    """Hues (sorted, radians) and opponent chromas of the chromatic palette colours."""
    rgb = torch.tensor([PALETTE[c] for c in colors], dtype=torch.float32)[:, :, None, None]
    rg, yb = (v[:, 0, 0].double().numpy() for v in opponent(rgb))
    chroma, hue = np.hypot(rg, yb), np.arctan2(yb, rg)
    keep = chroma > 26.0  # achromatic colours (black, grey) have no hue to anchor
    order = np.argsort(hue[keep])
    return hue[keep][order], chroma[keep][order]


_HUES, _CHROMAS = _palette_anchors()


def nominal_chroma(hue: torch.Tensor, hues: np.ndarray = _HUES, chromas: np.ndarray = _CHROMAS) -> torch.Tensor:
    """Palette chroma at `hue` (radians, any shape), linear in hue between neighbouring anchors."""
    # Wrap the anchors once around the circle so every hue has a neighbour on each side.
    xs = np.concatenate([hues[-1:] - 2 * math.pi, hues, hues[:1] + 2 * math.pi])
    ys = np.concatenate([chromas[-1:], chromas, chromas[:1]])
    xs_t, ys_t = torch.tensor(xs, dtype=hue.dtype), torch.tensor(ys, dtype=hue.dtype)
    i = torch.searchsorted(xs_t, hue.contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs_t[i - 1], xs_t[i], ys_t[i - 1], ys_t[i]
    return y0 + (y1 - y0) * (hue - x0) / (x1 - x0)


def border_median(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel median of the one-pixel border ring: (B, C, H, W) -> (B, C)."""
    ring = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1)
    return ring.median(dim=-1).values


def relative_saturation(x: torch.Tensor) -> torch.Tensor:
    """The reward on float (B, 3, H, W) in uint8 units; see the module docstring."""
    sigma = noise_sigma(x)
    m = median3(x)
    dist = (m - border_median(m)[..., None, None]).norm(dim=1)  # (B, H, W)
    fg = dist > torch.clamp(2.5 * sigma + 5.0, min=FG_MIN)[:, None, None]
    # The objects' cores only: blur and anti-aliasing blend rims with the background, which
    # lowers their chroma without any loss of saturation in the object itself.
    peak = torch.nanquantile(torch.where(fg, dist, torch.nan).flatten(1), 0.95, dim=1)
    fg &= dist >= CORE * torch.nan_to_num(peak, nan=0.0)[:, None, None]
    # A 3x3 mean of the opponent axes: noise left by the median is zero-mean in rg and yb but
    # not in their magnitude, so averaging first keeps it from posing as chroma.
    rg, yb = (F.avg_pool2d(c[:, None], 3, 1, 1, count_include_pad=False)[:, 0] for c in opponent(m))
    ratio = torch.hypot(rg, yb) / nominal_chroma(torch.atan2(yb, rg)).clamp_min(CHROMA_FLOOR)
    vals = torch.where(fg, ratio, torch.nan).flatten(1)
    return torch.nan_to_num(torch.nanquantile(vals, 0.5, dim=1), nan=0.0)


@register_reward("colorfulness")
class Colorfulness(Reward):
    """Median over the objects' pixels of chroma / the palette chroma of the pixel's hue (~1 for a
    clean palette colour of any hue, falling in proportion as the image is desaturated)."""

    version = "2"
    needs_caption = False
    batch_size = 512

    def _score(self, images, captions):
        return relative_saturation(to_float_bchw(images))


__all__ = ["Colorfulness", "nominal_chroma", "relative_saturation", "border_median"]
