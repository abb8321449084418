"""Synthetic training batches: random tensors in the batch contract, for benchmarks and tests.

Batch i of the run is a pure function of (seed, i), drawn for the GLOBAL batch; a rank keeps rows
rank, rank + world, ... (the interleaving ShardDataset uses), so runs on any number of ranks see
the same global batches, and the position (one integer) resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .distributed import DataContext

__all__ = ["SyntheticData"]


class SyntheticData:
    def __init__(
        self,
        ctx: DataContext,
        *,
        channels: int = 3,
        image_size: int | None = None,
        text_len: int = 8,
        text_dim: int = 384,
        seed: int = 0,
        fixed: bool = False,
        reward_keys: list[str] | None = None,
    ):
        self.ctx, self.channels = ctx, channels
        self.image_size = image_size or ctx.config.data.image_size
        self.text_len, self.text_dim, self.seed, self.fixed = text_len, text_dim, seed, fixed
        self.reward_keys = list(ctx.reward_keys if reward_keys is None else reward_keys)
        self.position = 0
        self._cached: dict | None = None

    def batch(self, index: int) -> dict:
        c = self.ctx
        b = c.per_device_batch * c.world_size
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        x = torch.rand(b, self.channels, self.image_size, self.image_size, generator=g) * 2 - 1
        text = torch.randn(b, self.text_len, self.text_dim, generator=g)
        lengths = torch.randint(1, self.text_len + 1, (b,), generator=g)
        mask = torch.arange(self.text_len)[None] < lengths[:, None]
        rows = slice(c.rank, None, c.world_size)
        out = {
            "pixels": x[rows],
            "text": text[rows] * mask[rows, :, None],
            "text_mask": mask[rows],
            "keys": [f"{index}-{j}" for j in range(b)][rows],
        }
        if self.reward_keys:
            out["rewards"] = torch.rand(b, len(self.reward_keys), generator=g)[rows]
        return out

    def __iter__(self) -> Iterator[dict]:
        while True:
            if self.fixed:  # throughput runs: no data cost at all
                self._cached = self._cached or {
                    k: (v.to(self.ctx.device) if torch.is_tensor(v) else v) for k, v in self.batch(0).items()
                }
                batch = self._cached
            else:
                batch = self.batch(self.position)
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
