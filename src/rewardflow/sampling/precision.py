"""Mixed precision of the network during sampling."""

from __future__ import annotations

import contextlib

import torch


def network_autocast(device: torch.device, name: str | None):
    """The folder's ``autocast`` setting ("bfloat16" / "float16", as the released MIRO models are
    sampled on CUDA: fp32 weights, half-precision matmuls) on CUDA; nothing elsewhere or if None."""
    if name is None or device.type != "cuda":
        return contextlib.nullcontext()
    if name not in ("bfloat16", "float16"):
        raise ValueError(f"pipeline config autocast must be 'bfloat16', 'float16' or null, got {name!r}")
    return torch.autocast(device_type="cuda", dtype=getattr(torch, name))
