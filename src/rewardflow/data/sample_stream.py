"""The sample stream of one slot (a rank's loader worker) of a ShardDataset: which samples it
reads and in which order, as a pure function of (seed, epoch, slot, slots), and the decoded
samples themselves. The order rules are in rewardflow.data.datasets' docstring."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from rewardflow.data.damage import DamageBudget
from rewardflow.data.images import IMAGE_EXTS, collate, decode_image
from rewardflow.data.latents import LATENT_MEMBER, latent_from_bytes
from rewardflow.data.shards import iter_records


def _buffer_shuffle(ids: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if size <= 1 or len(ids) <= 1:
        return ids
    out, buf = np.empty_like(ids), list(ids[:size])
    picks = (rng.random(max(len(ids) - size, 0)) * len(buf)).astype(np.int64)
    for o, x in enumerate(ids[size:]):
        p = picks[o]
        out[o], buf[p] = buf[p], x
    tail = np.array(buf, dtype=ids.dtype)
    rng.shuffle(tail)
    out[len(ids) - len(tail) :] = tail
    return out


class SlotStream(IterableDataset):
    """The per-worker half: sample order, shard reading, decoding and collation. Kept free of
    the text encoder so that DataLoader workers never copy a model."""

    def __init__(self, shards, keys, rewards, cfg: dict):
        self.shards, self.rewards, self.cfg = shards, rewards, cfg
        self.sizes = np.asarray([len(k) for k in keys])
        self.local = [{k: j for j, k in enumerate(ks)} for ks in keys]  # key -> index among kept samples
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.start_batches = 0
        self.damage = DamageBudget(
            self.offsets[-1],
            "training data",
            "Re-copy the shards, or run `rewardflow score` "
            "on them, which lists undecodable samples in _skipped.json so training leaves them out.",
        )

    def read_order(self, epoch: int, slot: int, slots: int) -> np.ndarray:
        """Global sample ids this slot reads in an epoch, in shard-file order."""
        c, n = self.cfg, len(self.shards)
        order = np.random.default_rng([c["seed"], epoch]).permutation(n) if c["shuffle"] else np.arange(n)
        if n >= slots:
            return np.concatenate(
                [np.arange(self.offsets[s], self.offsets[s + 1]) for s in order[slot::slots]] + [np.zeros(0, np.int64)]
            )
        every = np.concatenate([np.arange(self.offsets[s], self.offsets[s + 1]) for s in order])
        return every[slot::slots]

    def emit_order(self, epoch: int, slot: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
        read = self.read_order(epoch, slot, slots)
        if not self.cfg["shuffle"]:
            return read, read
        rng = np.random.default_rng([self.cfg["seed"], epoch, slot, 1])
        return read, _buffer_shuffle(read, self.cfg["shuffle_buffer"], rng)

    def _samples(self, epoch: int, read: np.ndarray, emit: np.ndarray) -> Iterator[dict]:
        needed = set(emit.tolist())
        shard_of = np.searchsorted(self.offsets, read, side="right") - 1
        shard_seq = list(dict.fromkeys(s for s, g in zip(shard_of.tolist(), read.tolist()) if g in needed))
        pending: dict[int, dict] = {}
        reader = self._read(shard_seq, needed, pending)
        for gid in emit.tolist():
            while gid not in pending:
                next(reader)
            item = pending.pop(gid)
            if item is not None:  # None: unreadable, skipped (the next sample takes its place)
                yield item

    def _read(self, shard_seq, needed, pending) -> Iterator[None]:
        c = self.cfg
        for s in shard_seq:
            for key, m in iter_records(self.shards[s]):
                j = self.local[s].get(key)
                gid = -1 if j is None else int(self.offsets[s] + j)
                if gid not in needed:
                    continue
                item = {
                    "key": key,
                    "caption": m["txt"].decode("utf-8") if "txt" in m else "",
                    "rewards": self.rewards[s][j] if self.rewards is not None else None,
                }
                if c["latents"]:
                    if LATENT_MEMBER not in m:
                        raise ValueError(
                            f"{self.shards[s].name}: sample {key} has no {LATENT_MEMBER}; "
                            "run `rewardflow latents encode` first"
                        )
                    item["latent"] = c["latent_stats"].normalize(latent_from_bytes(m[LATENT_MEMBER]))
                else:
                    ext = next((e for e in IMAGE_EXTS if e in m), None)
                    if ext is None:
                        raise ValueError(f"{self.shards[s].name}: sample {key} has no image member")
                    try:
                        item["image"] = decode_image(m[ext], c["image_size"])
                    except Exception as exc:  # PIL raises many types for corrupt files
                        self.damage.skip(self.shards[s], key, exc)
                        item = None
                pending[gid] = item
                yield

    def slot_samples(self, slot: int, slots: int, skip: int) -> Iterator[dict]:
        epoch = self.cfg["epoch"]
        while True:
            read, emit = self.emit_order(epoch, slot, slots)
            if skip >= len(emit) and self.cfg["infinite"]:
                skip -= len(emit)
            else:
                yield from self._samples(epoch, read, emit[skip:])
                skip = 0
                if not self.cfg["infinite"]:
                    return
            epoch += 1
            if len(self.offsets) == 1 or self.offsets[-1] == 0:
                return

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        c = self.cfg
        # DataLoader asks workers round-robin from worker 0, so after n delivered batches the
        # physical worker w plays the role of the original worker (w + n) % nw.
        w = (w + self.start_batches) % nw
        mine = (self.start_batches - w + nw - 1) // nw  # batches that role already delivered
        samples = self.slot_samples(c["rank"] * nw + w, c["world_size"] * nw, mine * c["batch_size"])
        while True:
            group = [s for _, s in zip(range(c["batch_size"]), samples)]
            if not group:
                return
            yield collate(group)
            if len(group) < c["batch_size"]:
                return
