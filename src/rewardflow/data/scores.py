"""Per-shard reward scores (Parquet) + bins JSON -> model inputs in [0, 1], aligned with shard keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def drop_skipped(shards, keys, scores_dir: Path) -> list[list[str]]:
    # `rewardflow score` lists undecodable samples in _skipped.json and writes no scores for
    # them; the dataset leaves them out rather than failing on them later.
    path = scores_dir / "_skipped.json"
    if not path.exists():
        return keys
    skipped = json.loads(path.read_text())
    out = []
    for shard, ks in zip(shards, keys):
        bad = {d["key"] for d in skipped.get(shard.name, [])}
        out.append([k for k in ks if k not in bad] if bad else ks)
    return out


def load_rewards(
    shards, keys_per_shard, scores_dir, bins_path, reward_keys, nonfinite: str = "error"
) -> list[np.ndarray]:
    """Per shard, (n_i, N) float32 model inputs in [0, 1] aligned with the shard's key order."""
    import pyarrow.parquet as pq

    from rewardflow.data.binning import RewardBins

    tables = []  # scores first: a reward never scored is the root cause, bins come after
    for shard, keys in zip(shards, keys_per_shard):
        pq_path = Path(scores_dir) / f"{shard.stem}.parquet"
        if not pq_path.exists():
            raise FileNotFoundError(f"no scores for shard {shard.name} (expected {pq_path}); run `rewardflow score`")
        table = pq.read_table(pq_path)
        missing = [k for k in reward_keys if k not in table.column_names]
        if missing:
            raise ValueError(
                f"scores {pq_path} for shard {shard.name} lack reward(s) {missing}; run `rewardflow score` with them"
            )
        row = {k: i for i, k in enumerate(table.column("key").to_pylist())}
        lost = [k for k in keys if k not in row]
        if lost:
            raise ValueError(f"scores {pq_path} lack {len(lost)} sample(s) of shard {shard.name}, e.g. {lost[:3]}")
        idx = np.array([row[k] for k in keys], dtype=np.int64)
        tables.append({k: table.column(k).to_numpy(zero_copy_only=False).astype(np.float64)[idx] for k in reward_keys})
        bad = {k: int((~np.isfinite(v)).sum()) for k, v in tables[-1].items()}
        if any(bad.values()) and nonfinite == "error":
            raise ValueError(
                f"scores {pq_path} hold NaN or inf values ({', '.join(f'{k}: {n}' for k, n in bad.items() if n)}). "
                f"Fix the reward, delete {pq_path.name} and run `rewardflow score` again, or train with "
                "data.nonfinite_rewards=neutral to feed them as 0.5"
            )
    if not Path(bins_path).exists():
        raise FileNotFoundError(f"no reward bins at {bins_path}; run `rewardflow bins fit` on the scores first")
    bins = RewardBins.load(bins_path)
    absent = [k for k in reward_keys if k not in bins.keys]
    if absent:
        raise ValueError(
            f"bins {bins_path} have no edges for reward(s) {absent} (they know {bins.keys}); "
            "re-run `rewardflow bins fit` including them"
        )
    mine = RewardBins(
        keys=list(reward_keys),
        edges={k: bins.edges[k] for k in reward_keys},
        num_bins=bins.num_bins,
        method=bins.method,
    )
    return [np.ascontiguousarray(mine.transform(raw, nonfinite=nonfinite)) for raw in tables]
