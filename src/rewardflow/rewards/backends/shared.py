"""Backbones shared between rewards: a CLIP loaded once per (weights, device, dtype) for every
reward that reads it, and its image embeddings of the last batch kept when two or more rewards
share it. The scoring job hands each reward the same images, so the image tower then runs once
per batch for all of them (e.g. `aesthetic_score` and `openai_clip_score` on CLIP ViT-L/14)."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class SharedClip:
    def __init__(self, model, logit_scale: float | None = None):
        self.model = model
        self.logit_scale = logit_scale  # as saved, before any cast to the model's dtype
        self.users = 0
        self._last: tuple[tuple, torch.Tensor] | None = None

    def image_embeds(self, images: np.ndarray, preprocess_key: tuple, compute: Callable[[], torch.Tensor]):
        """``compute()``, or its result for the same images and preprocessing if just computed."""
        if self.users < 2:  # nothing to share: skip the hashing
            return compute()
        arr = np.ascontiguousarray(images)
        key = (preprocess_key, arr.shape, hashlib.blake2b(arr.view(np.uint8), digest_size=16).digest())
        if self._last is None or self._last[0] != key:
            self._last = (key, compute())
        return self._last[1]


def shared_clip(d: Path, dtype: torch.dtype, device: torch.device) -> SharedClip:
    """The CLIPModel saved in ``d``, loaded once per process for each device and dtype."""
    from transformers import CLIPModel

    key = (str(Path(d).resolve()), str(dtype), str(device))
    s = _SHARED.get(key)
    if s is None:
        model = CLIPModel.from_pretrained(str(d), dtype=dtype).to(device).eval()
        s = SharedClip(model, stored_logit_scale(Path(d)))
        _SHARED[key] = s
    s.users += 1
    return s


def stored_logit_scale(d: Path) -> float | None:
    """The checkpoint's ``logit_scale`` as saved, read alone. Loaded in bf16 it would round:
    exp(bf16(ln 100)) = 98.9, which moves PickScore-style scores by 1.1 %."""
    from safetensors import safe_open

    for f in sorted(d.glob("*.safetensors")):
        with safe_open(str(f), "pt") as fh:
            if "logit_scale" in fh.keys():
                return float(fh.get_tensor("logit_scale").double())
    for f in sorted(d.glob("pytorch_model*.bin")):
        sd = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
        if "logit_scale" in sd:
            return float(sd["logit_scale"].double())
    return None
