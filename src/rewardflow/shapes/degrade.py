"""Image degradations of ShapesWorld, as pure functions of an explicit level.

Public functions (level 0 = identity; the generator draws integer levels 1..5, floats work too):

- `blur(img, level)`: Gaussian blur, sigma = 0.5 * level px at 32x32 (scaled with the image side).
- `add_noise(img, level, rng)`: additive i.i.d. Gaussian noise per pixel and channel,
  sigma = 6 * level (uint8 units).
- `low_contrast(img, level)`: blend toward the image's mean grey, contrast kept = 1 - 0.15 * level
  (level 5 keeps 25%).
- `desaturate(img, level)`: blend toward luminance (Rec. 601), saturation kept = 1 - 0.18 * level
  (level 5 keeps 10%).
- `off_frame(scene, level, rng)`: a scene-level degradation: one object slides toward its
  nearest frame edge until a fraction 0.12 * level of its extent lies outside (level 5: 60%).
- `apply_degradations(img, levels, rng)`: the image degradations above, in the generator's
  order (blur, low contrast, desaturate, noise), given {name: level}.

Every image function takes and returns uint8 (H, W, 3) (float input is accepted) and never
modifies its argument.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

BLUR_SIGMA_PER_LEVEL = 0.5  # pixels at 32x32
NOISE_SIGMA_PER_LEVEL = 6.0
CONTRAST_LOSS_PER_LEVEL = 0.15
SATURATION_LOSS_PER_LEVEL = 0.18
OFF_FRAME_PER_LEVEL = 0.12
IMAGE_DEGRADATIONS: tuple[str, ...] = ("blur", "low_contrast", "desaturate", "noise")


def _as_float(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(np.rint(img), 0), 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _blur_matrix(size: int, sigma: float) -> np.ndarray:
    # Dense (size x size) Gaussian operator with reflected borders: at these sizes two small
    # matmuls beat any convolution loop, and reflection keeps border brightness unchanged.
    radius = max(1, int(np.ceil(3.0 * sigma)))
    taps = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (taps / sigma) ** 2)
    k /= k.sum()
    m = np.zeros((size, size), dtype=np.float64)
    for i in range(size):
        for t, w in zip(taps, k):
            j = i + t
            while j < 0 or j >= size:  # reflect (edge pixel repeated: 'symmetric' mode)
                j = -j - 1 if j < 0 else 2 * size - j - 1
            m[i, j] += w
    return m.astype(np.float32)


def blur(img, level: float) -> np.ndarray:
    if level <= 0:
        return np.array(img, dtype=np.uint8, copy=True)
    x = _as_float(img)
    h, w = x.shape[:2]
    sigma = round(BLUR_SIGMA_PER_LEVEL * float(level) * min(h, w) / 32.0, 4)
    mh, mw = _blur_matrix(h, sigma), _blur_matrix(w, sigma)
    out = (mh @ x.reshape(h, -1)).reshape(h, w, -1)
    out = np.matmul(mw[None], out)  # per row: (W x W) @ (W x C)
    return _to_uint8(out)


def add_noise(img, level: float, rng: np.random.Generator) -> np.ndarray:
    if level <= 0:
        return np.array(img, dtype=np.uint8, copy=True)
    x = _as_float(img)
    sigma = NOISE_SIGMA_PER_LEVEL * float(level)
    return _to_uint8(x + rng.standard_normal(x.shape, dtype=np.float32) * sigma)


def low_contrast(img, level: float) -> np.ndarray:
    x = _as_float(img)
    keep = max(0.0, 1.0 - CONTRAST_LOSS_PER_LEVEL * float(level))
    mean = x.mean()
    return _to_uint8(mean + (x - mean) * keep)


def desaturate(img, level: float) -> np.ndarray:
    x = _as_float(img)
    keep = max(0.0, 1.0 - SATURATION_LOSS_PER_LEVEL * float(level))
    lum = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return _to_uint8(lum + (x - lum) * keep)


def off_frame(scene, level: float, rng: np.random.Generator):
    """A copy of `scene` with one random object pushed partly out of the frame."""
    # Copy the objects only: a deepcopy of the whole scene (spec included) costs more than
    # rendering it.
    out = dataclasses.replace(scene, objects=[dataclasses.replace(o) for o in scene.objects])
    if level <= 0 or not out.objects:
        return out
    o = out.objects[int(rng.integers(len(out.objects)))]
    frac = min(0.95, OFF_FRAME_PER_LEVEL * float(level))
    # Nearest edge first, so the object travels as little as possible across the scene.
    edges = {"left": o.cx, "right": 1.0 - o.cx, "top": o.cy, "bottom": 1.0 - o.cy}
    edge = min(edges, key=edges.get)
    shift_out = frac * 2.0 * o.r - o.r  # centre's distance beyond the edge
    if edge == "left":
        o.cx = -shift_out
    elif edge == "right":
        o.cx = 1.0 + shift_out
    elif edge == "top":
        o.cy = -shift_out
    else:
        o.cy = 1.0 + shift_out
    return out


def apply_degradations(img, levels: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Apply the image degradations named in `levels` (0 or absent = skipped), noise last."""
    unknown = set(levels) - set(IMAGE_DEGRADATIONS) - {"off_frame"}
    if unknown:
        raise ValueError(f"unknown degradations {sorted(unknown)}; image ones are {IMAGE_DEGRADATIONS}")
    out = np.asarray(img, dtype=np.uint8)
    if levels.get("blur", 0) > 0:
        out = blur(out, levels["blur"])
    if levels.get("low_contrast", 0) > 0:
        out = low_contrast(out, levels["low_contrast"])
    if levels.get("desaturate", 0) > 0:
        out = desaturate(out, levels["desaturate"])
    if levels.get("noise", 0) > 0:
        out = add_noise(out, levels["noise"], rng)
    return out
