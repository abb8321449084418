"""The reward interface every reward model implements, built-in or real backend.

A reward maps (images, captions) to one float per image. Callers may hand images in any of the
forms the library meets: uint8 ``(B, H, W, 3)`` numpy (decoded shards), a list of PIL images
(pipeline output) or float tensors ``(B, 3, H, W)`` in [-1, 1] (inside the library). The base
class converts them to the one form the subclass declares in ``input_format``, splits the work
into chunks of ``batch_size`` and concatenates, so subclasses only write ``_score`` for one batch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

INPUT_FORMATS = ("uint8", "float", "pil")


def to_uint8_hwc(images: Any) -> np.ndarray | list[np.ndarray]:
    """Images in any supported form -> uint8 ``(B, H, W, 3)`` array.

    A list of images of different sizes cannot be stacked; it comes back as a list of
    ``(H, W, 3)`` arrays and `Reward.score` scores each size group separately.
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().to("cpu", torch.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"float image tensors must be (B, 3, H, W) in [-1, 1], got shape {tuple(x.shape)}")
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return x.permute(0, 2, 3, 1).contiguous().numpy()
    if isinstance(images, np.ndarray):
        a = images
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] not in (1, 3, 4):
            raise ValueError(f"numpy images must be (B, H, W, 3) uint8, got shape {a.shape}")
        if a.dtype != np.uint8:
            raise ValueError(f"numpy images must be uint8 (B, H, W, 3), got dtype {a.dtype}")
        if a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=-1)
        return np.ascontiguousarray(a[..., :3])
    if isinstance(images, Sequence):
        arrs = [_one_to_uint8(im) for im in images]
        if not arrs:
            return np.zeros((0, 0, 0, 3), np.uint8)
        if len({a.shape for a in arrs}) == 1:
            return np.stack(arrs)
        return arrs
    raise TypeError(f"unsupported image batch type {type(images).__name__}")


def _one_to_uint8(im: Any) -> np.ndarray:
    if isinstance(im, np.ndarray):
        return to_uint8_hwc(im)[0]
    if isinstance(im, torch.Tensor):
        return to_uint8_hwc(im)[0]
    if hasattr(im, "convert"):  # PIL.Image without importing PIL at module load
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    raise TypeError(f"unsupported image type {type(im).__name__}")


def uint8_to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_pil(images: np.ndarray) -> list:
    from PIL import Image

    return [Image.fromarray(a) for a in images]


class Reward(abc.ABC):
    """Base class of every reward.

    Class attributes a subclass sets:
      name              registry key and Parquet column (set by `register_reward`)
      version           bump when the formula changes: stored scores of an older version are stale
      higher_is_better  direction (binning does not care; guidance targets and reports do)
      batch_size        images per `_score` call
      input_format      "uint8" (numpy B,H,W,3), "float" (torch B,3,H,W in [-1,1]) or "pil"
      needs_caption     False for pure image-quality rewards
    """

    name: str = ""
    version: str = "1"
    higher_is_better: bool = True
    batch_size: int = 256
    input_format: str = "uint8"
    needs_caption: bool = True

    def __init__(self, batch_size: int | None = None, device: str | torch.device = "cpu"):
        if batch_size is not None:
            if batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size}")
            self.batch_size = int(batch_size)
        self.device = torch.device(device)
        # Counters of notable events (e.g. unparsed captions) for the scoring report.
        self.stats: dict[str, int] = {}

    @abc.abstractmethod
    def _score(self, images, captions: list[str]) -> torch.Tensor:
        """Score one batch already in `input_format`; return float32 ``(B,)``."""

    def score(self, images, captions: Sequence[str] | str | None = None) -> torch.Tensor:
        """Score a batch of any size and any supported image form -> float32 ``(B,)`` on CPU."""
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"{type(self).__name__}.input_format must be one of {INPUT_FORMATS}")
        arr = to_uint8_hwc(images)
        n = len(arr)
        if isinstance(captions, str):
            captions = [captions]
        if captions is None:
            if self.needs_caption:
                raise ValueError(f"reward {self.name!r} needs captions")
            captions = [""] * n
        captions = list(captions)
        if len(captions) != n:
            raise ValueError(f"got {n} images but {len(captions)} captions")
        out = torch.empty(n, dtype=torch.float32)
        if isinstance(arr, list):  # mixed sizes: score each size group on its own
            groups: dict[tuple, list[int]] = {}
            for i, a in enumerate(arr):
                groups.setdefault(a.shape, []).append(i)
            for idx in groups.values():
                out[idx] = self._chunks(np.stack([arr[i] for i in idx]), [captions[i] for i in idx])
            return out
        if n == 0:
            return out
        return self._chunks(arr, captions)

    def _chunks(self, arr: np.ndarray, captions: list[str]) -> torch.Tensor:
        parts = []
        for s in range(0, len(arr), self.batch_size):
            chunk = arr[s : s + self.batch_size]
            if self.input_format == "float":
                chunk = uint8_to_float(chunk).to(self.device)
            elif self.input_format == "pil":
                chunk = to_pil(chunk)
            r = self._score(chunk, captions[s : s + self.batch_size])
            r = torch.as_tensor(r).detach().to("cpu", torch.float32).reshape(-1)
            if r.numel() != len(arr[s : s + self.batch_size]):
                raise RuntimeError(f"reward {self.name!r} returned {r.numel()} scores for {len(chunk)} images")
            parts.append(r)
        return torch.cat(parts)

    def __call__(self, images, captions=None) -> torch.Tensor:
        return self.score(images, captions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"
