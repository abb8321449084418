"""Initial noise with one seed per image (as EDM): a sample depends on its seed only, never
on the batch size or its position in the batch, so results reproduce across batchings/GPUs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["randn_per_seed"]


def randn_per_seed(
    seeds: Sequence[int], shape_per_image: Sequence[int], device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(len(seeds), *shape_per_image) standard normal; row i from a CPU generator seeded seeds[i].

    Drawn in float32 on the CPU, then moved and cast, so the noise is identical on every device
    and for every dtype (up to the cast).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    shape = tuple(int(s) for s in shape_per_image)
    rows = []
    for s in seeds:
        if isinstance(s, bool) or not hasattr(s, "__index__"):
            raise ValueError(f"seeds must be ints; got {s!r}")
        g = torch.Generator(device="cpu").manual_seed(int(s))
        rows.append(torch.randn(shape, generator=g, dtype=torch.float32))
    return torch.stack(rows).to(device=device, dtype=dtype)
