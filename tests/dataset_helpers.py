"""A small random shard dataset with scores and bins, for the dataset and latent tests."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rewardflow.data.binning import RewardBins
from rewardflow.data.shards import ShardWriter

N, PER = 120, 30  # 4 shards


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="png")
    return buf.getvalue()


def make_dataset(d, n=N, per=PER, size=8, rewards=("a", "b", "c"), bins=True, seed=0):
    rng = np.random.default_rng(seed)
    with ShardWriter(d, maxcount=per) as w:
        for i in range(n):
            w.write(
                f"{i:06d}",
                {
                    "png": _png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
                    "txt": f"a caption number {i % 11}",
                    "json": json.dumps({"i": i}),
                },
            )
    all_scores = {}
    for shard in w.written:
        keys = [f"{i:06d}" for i in range(int(shard.stem) * per, min(n, (int(shard.stem) + 1) * per))]
        cols = {"key": keys[::-1]}  # row order differs from tar order on purpose
        for r in rewards:
            cols[r] = [float(int(k) * (1 + len(r)) % 17) for k in keys[::-1]]
            all_scores.setdefault(r, []).extend(cols[r])
        pq.write_table(pa.table(cols), d / f"{shard.stem}.parquet")
    if bins:
        RewardBins.fit(all_scores, num_bins=8).save(d / "bins.json")
    return d
