"""The GenEval-style evaluator's own object detector for ShapesWorld images.

Deliberately independent of the training rewards (rewards/), so evaluation never becomes the
training signal. It knows the palette and the three shape classes, nothing about how an image
was made:

1. background = per-channel median of the image's 1-pixel border;
2. each pixel is explained as a mix `bg + alpha * (colour - bg)` of the background and each
   palette colour; its label is the colour with the smallest residual. Edge pixels that a blur
   blends with the background then keep their own hue's label instead of a neighbour's
   (blue half-mixed with grey would otherwise look purple);
3. pixels with alpha >= 0.5 and a small residual are foreground; 4-connected components per
   colour, tiny ones dropped as noise;
4. shape from two soft features of the alpha map (normalised by the object's median alpha, so
   contrast does not matter): |vertical skewness| (0 for circles and squares, 0.566 for an
   upright or inverted triangle) and fill = area / (soft width x soft height) (square 1.0,
   circle pi/4); see `classify_shape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardflow.shapes.vocab import DEFAULT_COLORS, PALETTE

SKEW_TRIANGLE = 0.15
FILL_SQUARE = (1.0 + np.pi / 4.0) / 2.0
MIN_LEVEL = 0.3


@dataclass
class Detection:
    shape: str
    color: str
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
    centroid: tuple[float, float]  # x, y in pixels (alpha-weighted)
    area: float  # alpha-weighted pixel count
    fill: float
    skew: float

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def to_uint8_image(image) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image, a uint8 array, or a float tensor/array (C, H, W) in [-1, 1]."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if hasattr(image, "detach"):
        image = image.detach().cpu().float().numpy()
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
            arr = np.moveaxis(arr, 0, -1)
        arr = np.clip(np.rint((arr.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    return arr


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as boolean masks (min-label propagation)."""
    h, w = mask.shape
    big = np.iinfo(np.int32).max
    lab = np.where(mask, np.arange(h * w, dtype=np.int32).reshape(h, w), big)
    while True:
        new = lab.copy()
        np.minimum(new[1:], lab[:-1], out=new[1:])
        np.minimum(new[:-1], lab[1:], out=new[:-1])
        np.minimum(new[:, 1:], lab[:, :-1], out=new[:, 1:])
        np.minimum(new[:, :-1], lab[:, 1:], out=new[:, :-1])
        new[~mask] = big
        if np.array_equal(new, lab):
            break
        lab = new
    return [lab == v for v in np.unique(lab[mask])]


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _shape_features(alpha: np.ndarray) -> tuple[float, float, float, tuple[float, float]]:
    area = float(alpha.sum())
    wx = float(alpha.max(axis=0).sum())  # soft extents: a half-covered edge column counts half
    wy = float(alpha.max(axis=1).sum())
    fill = area / max(wx * wy, 1e-6)
    h, w = alpha.shape
    ys = np.arange(h, dtype=np.float64) + 0.5
    xs = np.arange(w, dtype=np.float64) + 0.5
    py = alpha.sum(axis=1) / area
    cy = float(ys @ py)
    cx = float(xs @ (alpha.sum(axis=0) / area))
    var = float(((ys - cy) ** 2) @ py)
    skew = float(((ys - cy) ** 3) @ py) / max(var, 1e-6) ** 1.5
    return area, fill, skew, (cx, cy)


def classify_shape(fill: float, skew: float) -> str:
    """Triangle when the vertical mass distribution is lopsided, else square vs circle by fill.

    Skewness separates triangles (0.57 when sharp, still > 0.2 under a 1-pixel blur) from the
    symmetric shapes (< 0.1) far better than fill does, since blur rounds every shape toward a
    disc; fill then splits squares (1.0) from circles (pi/4) at the midpoint.
    """
    if abs(skew) >= SKEW_TRIANGLE:
        return "triangle"
    return "square" if fill >= FILL_SQUARE else "circle"


def detect_objects(
    image, colors: tuple[str, ...] = DEFAULT_COLORS, min_area_frac: float = 0.008, max_residual: float = 0.5
) -> list[Detection]:
    """Detect coloured circles, squares and triangles in one image; largest first."""
    img = to_uint8_image(image).astype(np.float32)
    h, w, _ = img.shape
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    bg = np.median(border, axis=0)
    pal = np.array([PALETTE[c] for c in colors], dtype=np.float32) - bg  # (K, 3)
    p = (img - bg).reshape(-1, 3)
    norm2 = np.maximum((pal * pal).sum(axis=1), 1e-6)
    dots = p @ pal.T
    alpha = np.clip(dots / norm2, 0.0, 1.0)  # (N, K)
    resid2 = (p * p).sum(axis=1, keepdims=True) - 2.0 * alpha * dots + alpha * alpha * norm2
    label = np.argmin(resid2, axis=1)
    rows = np.arange(len(p))
    a_best = alpha[rows, label]
    r_best = np.sqrt(np.maximum(resid2[rows, label], 0.0))
    explained = r_best <= max_residual * np.sqrt(norm2[label])
    # Half of the image's own object level, not half of full contrast: a washed-out image
    # keeps its objects. The floor keeps an empty or noisy image from inventing them.
    level = float(np.percentile(a_best[explained], 98)) if explained.any() else 1.0
    fg = explained & (a_best >= 0.5 * min(1.0, max(level, MIN_LEVEL)))
    label = label.reshape(h, w)
    fg = fg.reshape(h, w)
    min_px = max(3, int(round(min_area_frac * h * w)))
    dets: list[Detection] = []
    for k, name in enumerate(colors):
        mask_k = fg & (label == k)
        if mask_k.sum() < min_px:
            continue
        alpha_k = alpha[:, k].reshape(h, w)
        for comp in _components(mask_k):
            if comp.sum() < min_px:
                continue
            # Soft measurements over the component and its 1-pixel rim, where anti-aliased
            # or blurred edges live; other objects' pixels are left out.
            region = _dilate(comp) & ~(fg & ~comp)
            ys, xs = np.nonzero(comp)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            sy0, sy1, sx0, sx1 = max(y0 - 1, 0), min(y1 + 1, h), max(x0 - 1, 0), min(x1 + 1, w)
            # Normalise by the object's own interior level so a faded or low-contrast object
            # keeps the fill ratio of its shape.
            peak = float(np.median(alpha_k[comp]))
            a = np.minimum(np.where(region, alpha_k, 0.0)[sy0:sy1, sx0:sx1] / max(peak, 1e-6), 1.0)
            area, fill, skew, (cx, cy) = _shape_features(a)
            dets.append(
                Detection(
                    classify_shape(fill, skew),
                    name,
                    (int(x0), int(y0), int(x1), int(y1)),
                    (cx + sx0, cy + sy0),
                    area,
                    fill,
                    skew,
                )
            )
    dets.sort(key=lambda d: -d.area)
    return dets
