"""The scoring job: shards -> one Parquet of reward scores per shard, resumable.

`DIR/NNNNN.tar` gets `DIR/NNNNN.parquet` with a string column `key` and one float32 column per
reward, rows in shard order. The Parquet schema metadata records each column's reward version.

Resuming is "run the same command again": a shard whose Parquet already holds every requested
reward at its current version is skipped; one that lacks some (or holds a stale version) gets
only those columns (re)computed, existing columns kept. Every Parquet is written whole to a
temp file and renamed, so a killed job leaves either the old file or the new one.

Samples whose image cannot be decoded (or that have no image) are left out of the Parquet and
recorded with the reason in `DIR/_skipped.json` ({shard file: [{"key", "reason"}]}).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rewardflow.data.shards import ShardDamageWarning, iter_shard, list_shards, scan_keys
from rewardflow.rewards.base import Reward
from rewardflow.rewards.registry import get_reward
from rewardflow.utils.atomic import atomic_write, atomic_write_json
from rewardflow.utils.locks import FolderLock

from .score_ranks import Ranks, merge_skip_files, rank_skip_file

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
VERSIONS_META = b"rewardflow.reward_versions"
SKIPPED_FILE = "_skipped.json"


@dataclass
class ScoreReport:
    shards_total: int = 0
    shards_scored: int = 0
    shards_up_to_date: int = 0
    samples_scored: int = 0
    samples_total: int = 0  # samples in the shards' intact parts
    skipped: dict[str, list[dict]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)  # reward counters, e.g. unparsed captions
    rewards: dict[str, dict[str, float]] = field(default_factory=dict)  # {reward: {mean, std}} over the dataset
    ranks: int = 1  # processes that scored

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def summary(self) -> str:
        s = (
            f"{self.shards_total} shards: {self.shards_scored} scored, {self.shards_up_to_date} already up to date; "
            f"{self.samples_scored} samples scored, {self.num_skipped} corrupt/unreadable samples skipped"
        )
        if self.stats:
            s += "; " + ", ".join(f"{k}: {v}" for k, v in sorted(self.stats.items()))
        if self.ranks > 1:
            s += f"; {self.ranks} processes"
        if self.rewards:
            s += "\n" + "\n".join(f"  {k}: mean {v['mean']:.4f}, std {v['std']:.4f}" for k, v in self.rewards.items())
        return s

    def add(self, other: ScoreReport) -> None:
        """Fold another rank's counts into this report."""
        for name in ("shards_total", "shards_scored", "shards_up_to_date", "samples_scored", "samples_total"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.stats.items():
            self.stats[k] = self.stats.get(k, 0) + v


def parquet_path(shard: Path) -> Path:
    return shard.with_suffix(".parquet")


def _existing(path: Path) -> tuple[pa.Table | None, dict[str, str]]:
    if not path.exists():
        return None, {}
    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(VERSIONS_META)
    return table, (json.loads(meta) if meta else {})


def _needed(rewards: Sequence[Reward], table: pa.Table | None, versions: dict[str, str]) -> list[Reward]:
    if table is None:
        return list(rewards)
    return [r for r in rewards if r.name not in table.column_names or versions.get(r.name) != str(r.version)]


def decode_image(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()  # PIL decodes lazily; force it so truncation errors surface here
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _read_shard(shard: Path) -> tuple[list[str], list[np.ndarray], list[str], list[dict]]:
    keys, images, captions, skipped = [], [], [], []
    with warnings.catch_warnings(record=True) as damage:  # a truncated shard: its intact part is scored
        warnings.simplefilter("always", ShardDamageWarning)
        for sample in iter_shard(shard):
            ext = next((e for e in IMAGE_EXTS if e in sample.members), None)
            if ext is None:
                skipped.append({"key": sample.key, "reason": "no image member"})
                continue
            try:
                img = decode_image(sample.members[ext])
            except Exception as exc:  # PIL raises many types for corrupt files
                # PIL names the in-memory file by its address; the reason should read the same every run
                why = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
                skipped.append({"key": sample.key, "reason": f"corrupt {ext}: {type(exc).__name__}: {why}"})
                continue
            keys.append(sample.key)
            images.append(img)
            captions.append(sample.members.get("txt", b"").decode("utf-8", errors="replace"))
    for w in damage:
        if issubclass(w.category, ShardDamageWarning):
            skipped.append({"key": w.message.key or "", "reason": str(w.message)})
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return keys, images, captions, skipped


def score_shard(shard: Path, rewards: Sequence[Reward], progress=None) -> tuple[int, list[dict] | None]:
    """Score one shard; returns (samples scored, skipped records or None if already up to date)."""
    out = parquet_path(shard)
    table, versions = _existing(out)
    todo = _needed(rewards, table, versions)
    if not todo:
        if progress is not None:
            progress.update(table.num_rows)
        return 0, None
    keys, images, captions, skipped = _read_shard(shard)
    cols: dict[str, np.ndarray] = {r.name: np.empty(len(keys), np.float32) for r in todo}
    step = max(1, min(r.batch_size for r in todo))
    for s in range(0, len(keys), step):
        batch = images[s : s + step]
        if len({a.shape for a in batch}) == 1:
            batch = np.stack(batch)
        for r in todo:
            cols[r.name][s : s + step] = r.score(batch, captions[s : s + step]).numpy()
        if progress is not None:
            progress.update(len(images[s : s + step]))
    if table is not None:
        if table.column("key").to_pylist() != keys:
            raise ValueError(
                f"{out} does not match the samples of {shard.name} (the shard changed since it was scored); "
                f"delete {out.name} to rescore it"
            )
        for name in cols:
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, pa.array(cols[name], pa.float32()))
            else:
                table = table.append_column(name, pa.array(cols[name], pa.float32()))
    else:
        table = pa.table(
            {"key": pa.array(keys, pa.string()), **{n: pa.array(c, pa.float32()) for n, c in cols.items()}}
        )
    versions.update({r.name: str(r.version) for r in todo})
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), VERSIONS_META: json.dumps(versions).encode()}
    )
    atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    return len(keys), skipped


def _count_samples(shards: Sequence[Path]) -> int:
    with warnings.catch_warnings():  # reported once, when the shard is scored
        warnings.simplefilter("ignore", ShardDamageWarning)
        return sum(len(scan_keys(shard)) for shard in shards)


def _worker(args):
    shard, names, kwargs = args
    import torch

    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    rewards = [get_reward(n, **kwargs) for n in names]
    n, skipped = score_shard(Path(shard), rewards)
    stats: dict[str, int] = {}
    for r in rewards:
        for k, v in r.stats.items():
            stats[f"{r.name}.{k}"] = stats.get(f"{r.name}.{k}", 0) + v
    return shard, n, skipped, stats


def score_dataset(
    data_dir: str | os.PathLike,
    rewards: Sequence[str],
    batch_size: int | None = None,
    workers: int = 0,
    progress: bool = True,
    reward_kwargs: dict | None = None,
    ranks: Ranks | None = None,
) -> ScoreReport:
    """Score every shard of `data_dir` with the named rewards (resumable; see module docstring).
    Under a launcher (`ranks` from the environment) each rank scores its share of the shards and
    every rank returns the merged report."""
    data_dir, ranks = Path(data_dir), ranks or Ranks()
    ranks.start()
    kwargs = dict(reward_kwargs or {})
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    names = list(rewards)
    instances = [get_reward(n, **kwargs) for n in names]  # validates names before any work
    lock = _lock(data_dir, ranks)  # two scorers would race on the same Parquet files
    try:
        report = _score_shards(
            data_dir, ranks.mine(list_shards(data_dir)), names, instances, kwargs, workers, progress, ranks
        )
    finally:
        if lock is not None:
            lock.release()
    return _merge(data_dir, names, ranks.gather(report), ranks)


def _lock(data_dir: Path, ranks: Ranks):
    """Rank 0 holds the folder's lock for the whole job; every rank learns whether it got it."""
    lock, error = None, None
    if ranks.rank == 0:
        try:
            lock = FolderLock(data_dir, "score").acquire()
        except Exception as exc:  # noqa: BLE001 -- re-raised on every rank below
            error = exc
    errors = [e for e in ranks.gather(error) if e is not None]
    if errors:
        raise errors[0]
    return lock


def _score_shards(data_dir, shards, names, instances, kwargs, workers, progress, ranks: Ranks) -> ScoreReport:
    from tqdm.auto import tqdm

    report = ScoreReport(shards_total=len(shards))
    report.samples_total = _count_samples(shards)
    desc = "scoring" if not ranks.distributed else f"scoring (rank {ranks.rank} of {ranks.world})"
    bar = tqdm(total=report.samples_total, unit="img", desc=desc, disable=not progress, file=sys.stderr)
    skipped_path = data_dir / SKIPPED_FILE if not ranks.distributed else rank_skip_file(data_dir, ranks.rank)
    all_skipped: dict[str, list[dict]] = json.loads(skipped_path.read_text()) if skipped_path.exists() else {}

    def record(shard_name: str, n: int, skipped, stats=None) -> None:
        if skipped is None:
            report.shards_up_to_date += 1
        else:
            report.shards_scored += 1
            report.samples_scored += n
            changed = all_skipped.get(shard_name, None if ranks.distributed else []) != skipped
            all_skipped[shard_name] = skipped
            if not skipped and not ranks.distributed:  # a rank keeps [] so the merge drops old entries
                all_skipped.pop(shard_name)
            if changed:
                atomic_write_json(skipped_path, all_skipped)
        for k, v in (stats or {}).items():
            report.stats[k] = report.stats.get(k, 0) + v

    try:
        if workers and workers > 1:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # torch state does not survive fork reliably
            jobs = [(str(s), names, kwargs) for s in shards]
            with ctx.Pool(workers) as pool:
                for shard, n, skipped, stats in pool.imap_unordered(_worker, jobs):
                    bar.update(n if skipped is not None else pq.read_metadata(parquet_path(Path(shard))).num_rows)
                    record(Path(shard).name, n, skipped, stats)
        else:
            for shard in shards:
                before = {r.name: dict(r.stats) for r in instances}
                n, skipped = score_shard(shard, instances, progress=bar)
                stats = {f"{r.name}.{k}": v - before[r.name].get(k, 0) for r in instances for k, v in r.stats.items()}
                record(shard.name, n, skipped, stats)
    finally:
        bar.close()
    return report


def _merge(data_dir: Path, names: list[str], reports: list[ScoreReport], ranks: Ranks) -> ScoreReport:
    """One report for the whole job: counts summed over the ranks, the skip lists merged (by rank
    0, after every rank finished), per-reward mean and std over the dataset."""
    total = reports[0]
    for other in reports[1:]:
        total.add(other)
    total.ranks = ranks.world
    if ranks.distributed and ranks.rank == 0:
        merge_skip_files(data_dir, SKIPPED_FILE)
    ranks.gather(None)  # the merged file exists before any rank reads it
    skipped_path = data_dir / SKIPPED_FILE
    merged = json.loads(skipped_path.read_text()) if skipped_path.exists() else {}
    total.skipped = {k: v for k, v in merged.items() if (data_dir / k).exists()}
    try:
        scores = read_scores(data_dir, names)
        total.rewards = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in scores.items()}
    except (FileNotFoundError, ValueError):  # an empty folder, or shards left unscored
        total.rewards = {}
    return total


def read_scores(data_dir: str | os.PathLike, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Concatenate the reward columns of every shard's Parquet (shard order), e.g. to fit bins."""
    shards = list_shards(data_dir)
    missing = [s.name for s in shards if not parquet_path(s).exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} shard(s) have no scores yet (first: {missing[0]}); run `rewardflow score` first"
        )
    names = [pq.read_schema(parquet_path(s)).names for s in shards]  # footers only
    common = [c for c in names[0] if c != "key" and all(c in n for n in names)] if names else []
    if keys is None:
        keys = common
    absent = [k for k in keys if k not in common]
    if absent:
        raise ValueError(f"reward(s) {absent} not scored in every shard; scored in all: {common}")
    tables = [pq.read_table(parquet_path(s), columns=list(keys)) for s in shards]  # only the asked columns
    return {k: np.concatenate([t.column(k).to_numpy(zero_copy_only=False) for t in tables]) for k in keys}
