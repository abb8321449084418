"""`rewardflow score` across processes: under torchrun / accelerate launch (one node or many)
every rank scores its own shards, and rank 0 merges what the ranks report.

The shards are split round-robin over the ranks (`shards[rank::world]`), so no two ranks ever
write the same Parquet and each shard is still written whole and renamed (a killed job resumes
from the shards that exist). Undecodable samples go to a per-rank `_skipped.rank-N.json` while
the job runs; rank 0 folds them into `_skipped.json` at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """The launcher's RANK / WORLD_SIZE / LOCAL_RANK (one process without them)."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def start(self) -> None:
        """Join the launcher's process group (gloo: the ranks exchange small Python objects only)."""
        import torch.distributed as dist

        if self.distributed and not dist.is_initialized():
            dist.init_process_group("gloo", rank=self.rank, world_size=self.world)

    def mine(self, shards: list) -> list:
        return shards[self.rank :: self.world]

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def device(self, device: str) -> str:
        """`cuda` means this rank's own GPU."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.distributed else device


def rank_skip_file(data_dir: Path, rank: int) -> Path:
    return Path(data_dir) / f"_skipped.rank-{rank}.json"


def merge_skip_files(data_dir: Path, skipped_file: str) -> dict[str, list[dict]]:
    """Fold every `_skipped.rank-N.json` (this job's, or a killed job's) into `skipped_file`."""
    from rewardflow.utils.atomic import atomic_write_json

    data_dir = Path(data_dir)
    path = data_dir / skipped_file
    merged: dict[str, list[dict]] = json.loads(path.read_text()) if path.exists() else {}
    parts = sorted(data_dir.glob("_skipped.rank-*.json"))
    for part in parts:
        for shard, entries in json.loads(part.read_text()).items():
            if entries:
                merged[shard] = entries
            else:
                merged.pop(shard, None)
    atomic_write_json(path, merged)
    for part in parts:
        part.unlink()
    return merged
