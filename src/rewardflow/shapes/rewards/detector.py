"""The alignment reward's object detector: pixels -> list of (shape, colour, box) per image.

Steps (batched where it pays): 3x3 median denoise; background colour = per-channel median of
the border ring; foreground = pixels farther than t0 = max(20, 2.5 sigma_noise + 5) from it;
8-connected components by batched label propagation, then re-split at half maximum
(distance >= 0.5 * the component's peak distance, which undoes blur and lost contrast and
cuts the faint rims that join neighbours) with 4-connected components; per object a core
colour (mean of pixels >= 0.75 * peak) classified by opponent-colour hue, and a shape from the
mask's row-width taper (triangle) and filled box corners (square vs circle).
Never reads generator metadata. The evaluator in eval/ has its own, separate detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rewardflow.shapes.rewards.quality import median3, noise_sigma
from rewardflow.shapes.vocab import PALETTE


@dataclass
class Detection:
    shape: str
    color: str | None
    cx: float  # bounding-box centre, pixels
    cy: float
    w: float
    h: float
    area: int
    shape_conf: float = 1.0  # in [0, 1]: margin of the shape tests, 0 at a decision boundary
    hue: float | None = None  # opponent hue angle of the core colour, radians; None if achromatic


def _opponent(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return r - g, 0.5 * (r + g) - b, 0.299 * r + 0.587 * g + 0.114 * b


_PAL_NAMES = [n for n in PALETTE if n != "black"]
_PAL = np.array([PALETTE[n] for n in _PAL_NAMES], dtype=np.float64)
_rg, _yb, _ = _opponent(_PAL)
_PAL_HUE = np.arctan2(_yb, _rg)
CHROMA_MIN = 26.0  # jittered black stays below; a palette colour keeps more than 25% saturation above
DARK_MARGIN = 40.0
NOISY_SIGMA = 8.0  # noise std (uint8 units) above which object masks use the median-filtered image


def hue_angle(rgb: np.ndarray) -> float | None:
    """Opponent hue (radians) of one colour, None when it is too grey to have one."""
    rg, yb, _ = _opponent(np.asarray(rgb, dtype=np.float64))
    return None if math.hypot(rg, yb) < CHROMA_MIN else math.atan2(yb, rg)


def hue_distance(a: float, b: float) -> float:
    """Absolute angle between two hues, radians in [0, pi]."""
    return abs(math.remainder(a - b, 2 * math.pi))


PALETTE_HUES: dict[str, float] = dict(zip(_PAL_NAMES, _PAL_HUE.tolist()))


def classify_color(rgb: np.ndarray, bg: np.ndarray) -> str | None:
    """Palette name of an object colour by opponent hue (kept by contrast and saturation loss).

    Achromatic colours are "black" when darker than the background, else unknown (None).
    """
    rg, yb, lum = _opponent(np.asarray(rgb, dtype=np.float64))
    if math.hypot(rg, yb) < CHROMA_MIN:
        _, _, bg_lum = _opponent(np.asarray(bg, dtype=np.float64))
        return "black" if lum < bg_lum - DARK_MARGIN else None
    diff = np.abs(np.angle(np.exp(1j * (_PAL_HUE - math.atan2(yb, rg)))))
    return _PAL_NAMES[int(np.argmin(diff))]


try:  # optional: C labelling is ~10x faster than propagation; both give the same partition
    from scipy import ndimage as _ndimage
except ImportError:  # pragma: no cover - scipy is an optional extra
    _ndimage = None


def connected_components(mask: torch.Tensor, connectivity: int = 8, use_scipy: bool = True) -> torch.Tensor:
    """Labels of a (B, H, W) bool mask (4- or 8-connected): 0 = background, ids unique in the batch."""
    b, h, w = mask.shape
    if use_scipy and _ndimage is not None:
        st = np.zeros((3, 3, 3), dtype=bool)  # no connection across the batch axis
        st[1] = True if connectivity == 8 else np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
        lab, _ = _ndimage.label(mask.numpy(), structure=st)
        return torch.from_numpy(lab.astype(np.int64))
    dtype = torch.float32 if b * h * w < 2**24 else torch.float64  # ids must stay exact
    ids = torch.arange(1, b * h * w + 1, dtype=dtype).reshape(b, 1, h, w)
    m = mask[:, None].to(dtype)
    lab = ids * m
    for it in range(h * w):
        if connectivity == 8:
            new = F.max_pool2d(lab, 3, 1, 1)
        else:
            p = F.pad(lab, (1, 1, 1, 1))
            new = torch.maximum(
                torch.maximum(lab, torch.maximum(p[..., :-2, 1:-1], p[..., 2:, 1:-1])),
                torch.maximum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]),
            )
        new = new * m
        if it % 4 == 3 and torch.equal(new, lab):
            break
        lab = new
    return lab[:, 0].to(torch.int64)


TRIANGLE_TAPER = 0.65  # top-third / bottom-third width: ~0.2 for a triangle, ~1 otherwise
SQUARE_CORNERS = 0.5  # mean relative strength in the box corner cells: square 0.6-1, disc 0-0.45


def classify_shape(mask: np.ndarray, soft: np.ndarray | None = None) -> str:
    """The shape name of `classify_shape_conf`."""
    return classify_shape_conf(mask, soft)[0]


# Margins at which a test counts as sure: a clean triangle's taper is ~0.2 (0.45 below the
# threshold), a clean square's corners ~0.9 and a disc's ~0.1 (0.4 either side).
TAPER_SURE = 0.3
CORNERS_SURE = 0.3


def classify_shape_conf(mask: np.ndarray, soft: np.ndarray | None = None) -> tuple[str, float]:
    """(shape, confidence) of a binary mask cropped to its box: taper of the row widths, then box corners.

       Confidence is the distance of the deciding test from its threshold, scaled so that clean
       renders reach 1; the square/circle decision also needs the taper test to say "not a
       triangle", so it takes the smaller of both margins.
    of a binary mask cropped to its box: taper of the row widths, then box corners.

       `soft` (same crop, distance to background / the object's peak, in [0, 1]) measures the
       corners: an upright triangle's rows widen from apex to base; squares and discs are
       symmetric top-bottom, and only a square fills the corners of its box. Corners are used
       rather than the fill ratio because a small digitised disc fills far more of its pixel box
       than pi/4; the soft value keeps a blurred square's corner (a quarter-strength pixel at the
       half-maximum level set) apart from a disc's empty one.
    """
    h, w = mask.shape
    widths = mask.sum(axis=1).astype(np.float64)
    taper_margin = 1.0
    if h >= 3:
        k = max(1, h // 3)
        top, bottom = widths[:k].mean(), widths[-k:].mean()
        taper = top / bottom if bottom > 0 else 1.0
        if taper < TRIANGLE_TAPER:
            return "triangle", min(1.0, (TRIANGLE_TAPER - taper) / TAPER_SURE)
        taper_margin = min(1.0, (taper - TRIANGLE_TAPER) / TAPER_SURE)
    v = mask.astype(np.float64) if soft is None else soft
    c = max(1, round(min(h, w) / 6))
    corners = np.concatenate([v[:c, :c].ravel(), v[:c, -c:].ravel(), v[-c:, :c].ravel(), v[-c:, -c:].ravel()])
    fill = float(corners.mean())
    conf = min(taper_margin, abs(fill - SQUARE_CORNERS) / CORNERS_SURE, 1.0)
    return ("square" if fill >= SQUARE_CORNERS else "circle"), conf


def detect(images: np.ndarray) -> list[list[Detection]]:
    """Detections for a uint8 (B, H, W, 3) batch."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    bsz, _, h, w = x.shape
    sigma = noise_sigma(x)
    m = median3(x)
    ring = torch.cat([m[..., 0, :], m[..., -1, :], m[..., 1:-1, 0], m[..., 1:-1, -1]], dim=-1)
    bg = ring.median(dim=-1).values  # (B, 3)
    # The median filter rounds the corners of small squares, so masks come from the raw image
    # unless noise would fragment them.
    noisy = (sigma >= NOISY_SIGMA)[:, None, None, None]
    raw = (x - bg[:, :, None, None]).norm(dim=1)  # (B, H, W)
    dist = torch.where(noisy[:, :, 0], (m - bg[:, :, None, None]).norm(dim=1), raw)
    t0 = torch.clamp(2.5 * sigma + 5.0, min=20.0)[:, None, None]
    # Pass 1: anything off-background, so faint (blurred, low-contrast) objects are found.
    coarse = connected_components(dist > t0)
    # Pass 2: keep pixels at half or more of their component's peak distance and relabel with
    # 4-connectivity: this splits objects that faint anti-aliased or blurred rims had joined.
    flat = coarse.flatten()
    peak = torch.zeros(bsz * h * w + 1).scatter_reduce_(0, flat, dist.flatten(), "amax")
    labels = connected_components((coarse > 0) & (dist >= 0.5 * peak[coarse]), connectivity=4).numpy()
    dist_np, raw_np, m_np, bg_np = dist.numpy(), raw.numpy(), m.permute(0, 2, 3, 1).numpy(), bg.numpy()
    min_area = max(4, int(0.006 * h * w))
    out: list[list[Detection]] = [[] for _ in range(bsz)]
    fg = labels > 0
    if not fg.any():
        return out
    bidx, ys, xs = np.nonzero(fg)
    comp, inv = np.unique(labels[fg], return_inverse=True)
    d = dist_np[fg]
    peak = np.zeros(len(comp))
    np.maximum.at(peak, inv, d)
    rel = d / peak[inv]
    half, core = rel >= 0.5, rel >= 0.75
    area = np.bincount(inv[half], minlength=len(comp))
    core_n = np.bincount(inv[core], minlength=len(comp))
    colours = m_np[bidx, ys, xs]
    # Object strength for the soft corner test: mean raw distance of the core, since the median
    # filter erases exactly the corner pixels that test looks at.
    strength = np.bincount(inv[core], raw_np[fg][core], len(comp)) / np.maximum(1, core_n)
    core_sum = np.stack([np.bincount(inv[core], colours[core, c], len(comp)) for c in range(3)], axis=1)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(len(comp) + 1))
    for c in range(len(comp)):
        if area[c] < min_area:
            continue
        sel = order[starts[c] : starts[c + 1]]
        sel = sel[half[sel]]
        yy, xx, b = ys[sel], xs[sel], int(bidx[sel[0]])
        y0, y1, x0, x1 = yy.min(), yy.max() + 1, xs[sel].min(), xx.max() + 1
        crop = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        crop[yy - y0, xx - x0] = True
        rgb = core_sum[c] / max(1, core_n[c])
        soft = np.clip(raw_np[b, y0:y1, x0:x1] / max(strength[c], 1e-6), 0.0, 1.0)
        shape, conf = classify_shape_conf(crop, soft)
        box = ((x0 + x1) / 2, (y0 + y1) / 2, float(x1 - x0), float(y1 - y0))
        out[b].append(Detection(shape, classify_color(rgb, bg_np[b]), *box, int(area[c]), conf, hue_angle(rgb)))
    return out
