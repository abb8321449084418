"""Shards + scores + bins -> training batches (docs/ARCHITECTURE.md, "Training batches").

Sample order is a pure function of (seed, epoch, rank, world_size, num_workers): each epoch
permutes the shards, splits them over the "slots" (ranks x loader workers; by sample when there
are fewer shards than slots) and passes each slot's samples through a seeded shuffle buffer.
The order is computed from the key index alone, before any image is read, so resuming only
replays integers: a slot skips the samples it already delivered and reads no shard it has
finished. A rank's batches interleave its workers' batches round-robin (DataLoader's in-order
contract), so "batches consumed" is the whole position.

Iterate the dataset directly (`for batch in ds`); give it `num_workers` rather than wrapping
it in a DataLoader, so that it can count delivered batches and encode text in the main process.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rewardflow.data.latents import LATENT_MEMBER, LatentStats, latent_from_bytes
from rewardflow.data.shards import _split_name, list_shards

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
_STATE_FORMAT = "rewardflow.data_position"


def decode_image(data: bytes, size: int | None = None) -> np.ndarray:
    """Encoded image -> uint8 (H, W, 3); with `size`, resize the short side then center-crop."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and img.size != (size, size):
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def to_pixels(u8: np.ndarray) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [-1, 1], the one conversion both data paths share."""
    out = u8.astype(np.float32)
    out /= 127.5
    out -= 1.0
    return torch.from_numpy(out)


def collate(samples: Sequence[dict]) -> dict:
    """Decoded samples -> batch dict; pixels become float32 in [-1, 1]."""
    batch: dict = {"keys": [s["key"] for s in samples], "captions": [s["caption"] for s in samples]}
    if "latent" in samples[0]:
        batch["latents"] = torch.stack([s["latent"] for s in samples])
    else:
        shapes = {s["image"].shape for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"images in a batch have different sizes {sorted(shapes)}; pass image_size=")
        batch["pixels"] = to_pixels(np.stack([s["image"] for s in samples]).transpose(0, 3, 1, 2))
    if samples[0].get("rewards") is not None:
        batch["rewards"] = torch.from_numpy(np.stack([s["rewards"] for s in samples]))
    return batch


class _Exotic(Exception):
    pass


def _fast_entries(path, read: bool) -> Iterator[tuple[str, bytes | None]]:
    # Python's tarfile spends ~100 us per header; plain ustar headers (what ShardWriter and
    # img2dataset write) parse in a few. PAX / GNU long-name headers raise _Exotic.
    with open(path, "rb") as fh:
        while True:
            hdr = fh.read(512)
            if len(hdr) < 512 or hdr.count(0) == 512:
                return
            flag = hdr[156:157]
            if flag in (b"L", b"K", b"x", b"g") or hdr[124] & 0x80:
                raise _Exotic
            size = int(hdr[124:136].strip(b"\0 ") or b"0", 8)
            name = hdr[:100].split(b"\0", 1)[0].decode("utf-8")
            if hdr[257:262] == b"ustar" and hdr[345] != 0:
                name = hdr[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
            padded = -(-size // 512) * 512
            if flag in (b"0", b"\0") and read:
                yield name, fh.read(size)
                fh.seek(padded - size, 1)
            else:
                if flag in (b"0", b"\0"):
                    yield name, None
                fh.seek(padded, 1)


def _tar_entries(path, read: bool = True) -> Iterator[tuple[str, bytes | None]]:
    done = 0
    try:
        for entry in _fast_entries(path, read):
            done += 1
            yield entry
    except _Exotic:
        with tarfile.open(path, "r") as tar:
            files = (i for i in tar if i.isfile())
            for i, info in enumerate(files):
                if i >= done:
                    yield info.name, tar.extractfile(info).read() if read else None


def _samples_of(path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) in file order, like shards.iter_shard but with the fast reader."""
    key, members = None, {}
    for name, data in _tar_entries(path):
        k, ext = _split_name(name)
        if not ext:
            continue
        if k != key and key is not None:
            yield key, members
            members = {}
        key, members[ext] = k, data
    if key is not None:
        yield key, members


def _scan_keys(path: Path) -> list[str]:
    keys: list[str] = []
    for name, _ in _tar_entries(path, read=False):
        key, ext = _split_name(name)
        if ext and (not keys or keys[-1] != key):
            keys.append(key)
    return keys


def _drop_skipped(shards, keys, scores_dir: Path) -> list[list[str]]:
    # `rewardflow score` lists undecodable samples in _skipped.json and writes no scores for
    # them; the dataset leaves them out rather than failing on them later.
    path = scores_dir / "_skipped.json"
    if not path.exists():
        return keys
    import json

    skipped = json.loads(path.read_text())
    out = []
    for shard, ks in zip(shards, keys):
        bad = {d["key"] for d in skipped.get(shard.name, [])}
        out.append([k for k in ks if k not in bad] if bad else ks)
    return out


def load_rewards(shards, keys_per_shard, scores_dir, bins_path, reward_keys) -> list[np.ndarray]:
    """Per shard, (n_i, N) float32 model inputs in [0, 1] aligned with the shard's key order."""
    import pyarrow.parquet as pq

    from rewardflow.rewards.binning import RewardBins

    tables = []  # scores first: a reward never scored is the root cause, bins come after
    for shard, keys in zip(shards, keys_per_shard):
        pq_path = Path(scores_dir) / f"{shard.stem}.parquet"
        if not pq_path.exists():
            raise FileNotFoundError(f"no scores for shard {shard.name} (expected {pq_path}); run `rewardflow score`")
        table = pq.read_table(pq_path)
        missing = [k for k in reward_keys if k not in table.column_names]
        if missing:
            raise ValueError(f"scores {pq_path} for shard {shard.name} lack reward(s) {missing}; "
                             f"run `rewardflow score` with them")
        row = {k: i for i, k in enumerate(table.column("key").to_pylist())}
        lost = [k for k in keys if k not in row]
        if lost:
            raise ValueError(f"scores {pq_path} lack {len(lost)} sample(s) of shard {shard.name}, e.g. {lost[:3]}")
        idx = np.array([row[k] for k in keys], dtype=np.int64)
        tables.append({k: table.column(k).to_numpy(zero_copy_only=False).astype(np.float64)[idx] for k in reward_keys})
    if not Path(bins_path).exists():
        raise FileNotFoundError(f"no reward bins at {bins_path}; run `rewardflow bins fit` on the scores first")
    bins = RewardBins.load(bins_path)
    absent = [k for k in reward_keys if k not in bins.keys]
    if absent:
        raise ValueError(f"bins {bins_path} have no edges for reward(s) {absent} (they know {bins.keys}); "
                         "re-run `rewardflow bins fit` including them")
    mine = RewardBins(keys=list(reward_keys), edges={k: bins.edges[k] for k in reward_keys},
                      num_bins=bins.num_bins, method=bins.method)
    return [np.ascontiguousarray(mine.transform(raw)) for raw in tables]


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
    out[len(ids) - len(tail):] = tail
    return out


class _Stream(IterableDataset):
    """The per-worker half: sample order, shard reading, decoding and collation. Kept free of
    the text encoder so that DataLoader workers never copy a model."""

    def __init__(self, shards, keys, rewards, cfg: dict):
        self.shards, self.rewards, self.cfg = shards, rewards, cfg
        self.sizes = np.asarray([len(k) for k in keys])
        self.local = [{k: j for j, k in enumerate(ks)} for ks in keys]  # key -> index among kept samples
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.start_batches = 0

    def read_order(self, epoch: int, slot: int, slots: int) -> np.ndarray:
        """Global sample ids this slot reads in an epoch, in shard-file order."""
        c, n = self.cfg, len(self.shards)
        order = np.random.default_rng([c["seed"], epoch]).permutation(n) if c["shuffle"] else np.arange(n)
        if n >= slots:
            return np.concatenate([np.arange(self.offsets[s], self.offsets[s + 1]) for s in order[slot::slots]]
                                  + [np.zeros(0, np.int64)])
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
            yield pending.pop(gid)

    def _read(self, shard_seq, needed, pending) -> Iterator[None]:
        c = self.cfg
        for s in shard_seq:
            for key, m in _samples_of(self.shards[s]):
                j = self.local[s].get(key)
                gid = -1 if j is None else int(self.offsets[s] + j)
                if gid not in needed:
                    continue
                item = {"key": key, "caption": m["txt"].decode("utf-8") if "txt" in m else "",
                        "rewards": self.rewards[s][j] if self.rewards is not None else None}
                if c["latents"]:
                    if LATENT_MEMBER not in m:
                        raise ValueError(f"{self.shards[s].name}: sample {key} has no {LATENT_MEMBER}; "
                                         "run `rewardflow latents encode` first")
                    item["latent"] = c["latent_stats"].normalize(latent_from_bytes(m[LATENT_MEMBER]))
                else:
                    ext = next((e for e in IMAGE_EXTS if e in m), None)
                    if ext is None:
                        raise ValueError(f"{self.shards[s].name}: sample {key} has no image member")
                    item["image"] = decode_image(m[ext], c["image_size"])
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


def _dist_defaults(rank, world_size) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardDataset(IterableDataset):
    """Batches per the training contract: pixels (or normalised latents), rewards in [0, 1] in the
    order of `reward_keys`, keys, captions, and text/text_mask when a `text_encoder` is given.

    `infinite=True` (training) runs epoch after epoch from `epoch`; `infinite=False` (eval)
    yields one epoch, the last batch possibly short, and rewinds for the next loop.
    `in_memory=True` decodes every sample once (small datasets such as ShapesWorld); batches
    are then array indexing and workers are not used. Its order is one global permutation per
    epoch, and rank r of W takes every W-th sample of it, so the W ranks' j-th batches together
    are exactly the j-th batch of a 1-process run with batch_size * W.

    Trainer use::

        enc = TextEncoder(cfg.text_encoder, max_length=32)
        ds = ShardDataset(data_dir, model.config.reward_keys, batch_size=per_rank_batch, text_encoder=enc,
                          seed=cfg.seed, rank=rank, world_size=world_size, in_memory=True)
        ds.load_state_dict(saved["data"])       # resume: the same batches an uninterrupted run sees
        for batch in ds: ...; saved["data"] = ds.state_dict()

    The position is the number of batches delivered, the same on every rank, so rank 0's
    state_dict is valid for all ranks.
    """

    def __init__(self, data_dir, reward_keys: Sequence[str] = (), *, batch_size: int = 64, text_encoder=None,
                 scores_dir=None, bins_path=None, image_size: int | None = None, latents: bool = False,
                 seed: int = 0, shuffle: bool = True, shuffle_buffer: int = 1000, infinite: bool = True,
                 epoch: int = 0, rank: int | None = None, world_size: int | None = None, num_workers: int = 0,
                 in_memory: bool = False, prefetch_factor: int = 4, pin_memory: bool = False,
                 progress: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data_dir = Path(data_dir)
        self.reward_keys = list(reward_keys)
        self.text_encoder = text_encoder
        self.batch_size, self.num_workers, self.in_memory = int(batch_size), int(num_workers), bool(in_memory)
        self.rank, self.world_size = _dist_defaults(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        self.prefetch_factor, self.pin_memory = prefetch_factor, pin_memory
        self.shards = list_shards(self.data_dir)
        keys = [_scan_keys(p) for p in self.shards]
        keys = _drop_skipped(self.shards, keys, Path(scores_dir) if scores_dir is not None else self.data_dir)
        self.num_samples = sum(map(len, keys))
        slots = self.world_size * (1 if in_memory else max(1, self.num_workers))
        if self.num_samples < slots:
            raise ValueError(f"{self.num_samples} samples cannot feed {slots} ranks x workers")
        rewards = None
        if self.reward_keys:
            scores_dir = Path(scores_dir) if scores_dir is not None else self.data_dir
            bins_path = Path(bins_path) if bins_path is not None else scores_dir / "bins.json"
            rewards = load_rewards(self.shards, keys, scores_dir, bins_path, self.reward_keys)
        cfg = dict(seed=int(seed), shuffle=bool(shuffle), shuffle_buffer=int(shuffle_buffer), infinite=bool(infinite),
                   epoch=int(epoch), rank=self.rank, world_size=self.world_size, batch_size=self.batch_size,
                   image_size=image_size, latents=bool(latents),
                   latent_stats=LatentStats.load(self.data_dir) if latents else None)
        self._stream = _Stream(self.shards, keys, rewards, cfg)
        self._batches = 0
        self._memory = self._load_memory(progress) if in_memory else None

    # ------------------------------------------------------------------ memory
    def _load_memory(self, progress: bool) -> dict:
        st = self._stream
        every = np.arange(st.offsets[-1])
        samples = st._samples(0, every, every)
        if progress:
            from tqdm.auto import tqdm

            samples = tqdm(samples, total=len(every), desc="loading dataset into memory", unit="img")
        items = list(samples)
        b = {"captions": [it["caption"] for it in items]}
        captions = sorted(set(b["captions"]))
        cid = {c: i for i, c in enumerate(captions)}
        mem = {"keys": [it["key"] for it in items], "captions": captions,
               "caption_id": np.array([cid[c] for c in b["captions"]], dtype=np.int64),
               "rewards": np.stack([it["rewards"] for it in items]) if st.rewards else None}
        if "latent" in items[0]:
            mem["latents"] = torch.stack([it["latent"] for it in items]).numpy()
        else:  # uint8 is 4x smaller than float pixels; converted per batch
            if len({it["image"].shape for it in items}) > 1:
                raise ValueError("images have different sizes; pass image_size=")
            mem["u8"] = np.ascontiguousarray(np.stack([it["image"] for it in items]).transpose(0, 3, 1, 2))
        if self.text_encoder is not None:
            if hasattr(self.text_encoder, "warm"):  # canonical batched order: same embeddings every run
                self.text_encoder.warm(captions, progress=progress)
            mem["text"], mem["text_mask"] = (t.numpy() for t in self.text_encoder.encode(captions))
        return mem

    def _memory_batches(self) -> Iterator[dict]:
        # One global stream (epoch permutations back to back); rank r takes global positions
        # p with p % world_size == r. The ranks' j-th batches together are then exactly the
        # j-th batch of a 1-process run with batch_size * world_size, epoch boundaries included.
        c, n, ws, bs = self._stream.cfg, len(self._memory["keys"]), self.world_size, self.batch_size
        skip, epoch, buf = self._batches * bs * ws, c["epoch"], []
        if c["infinite"]:
            epoch, skip = epoch + skip // n, skip % n
        while True:
            order = np.random.default_rng([c["seed"], epoch]).permutation(n) if c["shuffle"] else np.arange(n)
            first = skip + (self.rank - (epoch - c["epoch"]) * n - skip) % ws
            mine, skip = order[first::ws], 0
            pos = 0
            while pos < len(mine):  # a batch may span two epochs in infinite mode
                take = bs - len(buf)
                buf.extend(mine[pos:pos + take].tolist())
                pos += take
                if len(buf) == bs:
                    yield self._memory_batch(buf)
                    buf = []
            if not c["infinite"]:
                if buf:
                    yield self._memory_batch(buf)
                return
            epoch += 1

    def _memory_batch(self, idx: list[int]) -> dict:
        # numpy, not torch: these small copies run single-threaded, and torch's OpenMP threads
        # slow them down 20x when the trainer keeps the cores busy (measured on 2 loaded cores).
        mem, i = self._memory, np.asarray(idx, dtype=np.int64)
        cid = mem["caption_id"][i]
        batch = {"keys": [mem["keys"][j] for j in idx], "captions": [mem["captions"][j] for j in cid.tolist()]}
        if "latents" in mem:
            batch["latents"] = torch.from_numpy(np.take(mem["latents"], i, axis=0))
        else:
            batch["pixels"] = to_pixels(np.take(mem["u8"], i, axis=0))
        if mem["rewards"] is not None:
            batch["rewards"] = torch.from_numpy(np.take(mem["rewards"], i, axis=0))
        if "text" in mem:
            batch["text"] = torch.from_numpy(np.take(mem["text"], cid, axis=0))
            batch["text_mask"] = torch.from_numpy(np.take(mem["text_mask"], cid, axis=0))
        return batch

    # --------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[dict]:
        if get_worker_info() is not None:  # wrapped in a user's DataLoader: no position tracking
            self._stream.start_batches = 0
            yield from map(self._with_text, self._stream)
            return
        if self._memory is not None:
            source = self._memory_batches()
        else:
            self._stream.start_batches = self._batches
            if self.num_workers > 0:
                source = iter(DataLoader(self._stream, batch_size=None, num_workers=self.num_workers,
                                         prefetch_factor=self.prefetch_factor, pin_memory=self.pin_memory))
            else:
                source = iter(self._stream)
        for batch in source:
            self._batches += 1  # counted before the yield: a state saved after using it includes it
            yield self._with_text(batch)
        self._batches = 0  # a finite pass is over; the next loop starts again

    def _with_text(self, batch: dict) -> dict:
        if self.text_encoder is not None and "text" not in batch:
            batch["text"], batch["text_mask"] = self.text_encoder.encode(batch["captions"])
        return batch

    @property
    def epoch(self) -> float:
        """Approximate epochs completed by this rank (exact in memory mode)."""
        per_rank = self.num_samples / self.world_size
        return self._stream.cfg["epoch"] + self._batches * self.batch_size / per_rank

    # ---------------------------------------------------------------- position
    def _layout(self) -> dict:
        c = self._stream.cfg
        return {"seed": c["seed"], "shuffle": c["shuffle"], "shuffle_buffer": c["shuffle_buffer"],
                "start_epoch": c["epoch"], "batch_size": self.batch_size, "rank": self.rank,
                "world_size": self.world_size, "num_workers": 0 if self.in_memory else self.num_workers,
                "in_memory": self.in_memory, "num_samples": self.num_samples}

    def state_dict(self) -> dict:
        return {"format": _STATE_FORMAT, "version": 1, "batches": self._batches,
                "samples": self._batches * self.batch_size, "epoch": self.epoch, **self._layout()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Continue exactly where `state` was saved. Exactness needs the same sample layout (seed,
        shuffle, batch size, ranks, workers, dataset); with `strict=False` a different layout
        restarts at the saved epoch (rounded down) with a warning instead of raising."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError("not a rewardflow data position (missing format: rewardflow.data_position)")
        mine = self._layout()
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v and k != "rank"}
        if not diff:
            self._batches = int(state["batches"])
            return
        msg = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
        if strict:
            raise ValueError(f"cannot resume the data position exactly, the layout differs ({msg})")
        warnings.warn(f"data layout changed ({msg}); restarting at epoch {int(state.get('epoch', 0))}")
        self._stream.cfg["epoch"] = int(state.get("epoch", 0))
        self._batches = 0
