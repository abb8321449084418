"""Encoded images -> uint8 arrays -> float batches in [-1, 1]: the conversions every data path shares."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


def decode_image(data: bytes, size: int | None = None) -> np.ndarray:
    """Encoded image -> uint8 (H, W, 3); with `size`, resize the short side then center-crop."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and img.size != (size, size):
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def to_pixels(u8: np.ndarray) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [-1, 1], the one conversion both data paths share."""
    out = u8.astype(np.float32)
    out /= 127.5
    out -= 1.0
    return torch.from_numpy(out)


def collate(samples: Sequence[dict]) -> dict:
    """Decoded samples -> batch dict; pixels become float32 in [-1, 1]."""
    batch: dict = {"keys": [s["key"] for s in samples], "captions": [s["caption"] for s in samples]}
    if "latent" in samples[0]:
        batch["latents"] = torch.stack([s["latent"] for s in samples])
    else:
        shapes = {s["image"].shape for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"images in a batch have different sizes {sorted(shapes)}; pass image_size=")
        batch["pixels"] = to_pixels(np.stack([s["image"] for s in samples]).transpose(0, 3, 1, 2))
    if samples[0].get("rewards") is not None:
        batch["rewards"] = torch.from_numpy(np.stack([s["rewards"] for s in samples]))
    return batch
