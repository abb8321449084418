"""The policy for unreadable samples: skip each by name, stop when there are too many.

A stray corrupt file in a large dataset should cost one sample, not a job; many of them mean a
broken copy, and training or encoding on with a silently shrunken dataset would hide it. So
every reader that meets an undecodable sample calls `DamageBudget.skip`, which warns with the
shard and key, and raises once more than `max_fraction` of the job's samples were skipped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from rewardflow.data.shards import ShardDamageWarning

MAX_BAD_FRACTION = 0.01


def too_many(bad: int, total: int, max_fraction: float = MAX_BAD_FRACTION) -> bool:
    """More than `max_fraction` of `total` bad, and more than one: a single stray file never stops a job."""
    return bad > max(1.0, max_fraction * total)


class DamageBudget:
    def __init__(self, total: int, job: str, remedy: str, max_fraction: float = MAX_BAD_FRACTION):
        self.total, self.job, self.remedy, self.max_fraction = int(total), job, remedy, float(max_fraction)
        self.skipped: list[str] = []  # "shard:key"

    def skip(self, shard: str | Path, key: str, exc: BaseException) -> None:
        shard = Path(shard)
        self.skipped.append(f"{shard.name}:{key}")
        warnings.warn(
            ShardDamageWarning(
                f"{shard}: sample {key} cannot be decoded ({type(exc).__name__}: {exc}); skipped", str(shard), key
            ),
            stacklevel=3,
        )
        if too_many(len(self.skipped), self.total, self.max_fraction):
            raise ValueError(
                f"{self.job}: {len(self.skipped)} samples cannot be decoded (e.g. {self.skipped[:3]}), more than "
                f"{self.max_fraction:.0%} of {self.total}: the data looks damaged. {self.remedy}"
            )
