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

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rewardflow.data.images import collate, decode_image, to_pixels
from rewardflow.data.latents import LatentStats
from rewardflow.data.scores import drop_skipped, load_rewards
from rewardflow.data.shards import list_shards, scan_keys

from .sample_stream import SlotStream

__all__ = ["ShardDataset", "collate", "decode_image", "to_pixels", "load_rewards"]
_STATE_FORMAT = "rewardflow.data_position"


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

    def __init__(
        self,
        data_dir,
        reward_keys: Sequence[str] = (),
        *,
        batch_size: int = 64,
        text_encoder=None,
        scores_dir=None,
        bins_path=None,
        image_size: int | None = None,
        latents: bool = False,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        infinite: bool = True,
        epoch: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
        in_memory: bool = False,
        prefetch_factor: int = 4,
        pin_memory: bool = False,
        progress: bool = False,
        nonfinite_rewards: str = "error",
    ):
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
        keys = [scan_keys(p) for p in self.shards]
        keys = drop_skipped(self.shards, keys, Path(scores_dir) if scores_dir is not None else self.data_dir)
        self.num_samples = sum(map(len, keys))
        slots = self.world_size * (1 if in_memory else max(1, self.num_workers))
        if self.num_samples < slots:
            raise ValueError(f"{self.num_samples} samples cannot feed {slots} ranks x workers")
        rewards = None
        if self.reward_keys:
            scores_dir = Path(scores_dir) if scores_dir is not None else self.data_dir
            bins_path = Path(bins_path) if bins_path is not None else scores_dir / "bins.json"
            rewards = load_rewards(self.shards, keys, scores_dir, bins_path, self.reward_keys, nonfinite_rewards)
        cfg = dict(
            seed=int(seed),
            shuffle=bool(shuffle),
            shuffle_buffer=int(shuffle_buffer),
            infinite=bool(infinite),
            epoch=int(epoch),
            rank=self.rank,
            world_size=self.world_size,
            batch_size=self.batch_size,
            image_size=image_size,
            latents=bool(latents),
            latent_stats=LatentStats.load(self.data_dir) if latents else None,
        )
        self._stream = SlotStream(self.shards, keys, rewards, cfg)
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
        mem = {
            "keys": [it["key"] for it in items],
            "captions": captions,
            "caption_id": np.array([cid[c] for c in b["captions"]], dtype=np.int64),
            "rewards": np.stack([it["rewards"] for it in items]) if st.rewards else None,
        }
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
                buf.extend(mine[pos : pos + take].tolist())
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
                source = iter(
                    DataLoader(
                        self._stream,
                        batch_size=None,
                        num_workers=self.num_workers,
                        prefetch_factor=self.prefetch_factor,
                        pin_memory=self.pin_memory,
                    )
                )
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
        return {
            "seed": c["seed"],
            "shuffle": c["shuffle"],
            "shuffle_buffer": c["shuffle_buffer"],
            "start_epoch": c["epoch"],
            "batch_size": self.batch_size,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": 0 if self.in_memory else self.num_workers,
            "in_memory": self.in_memory,
            "num_samples": self.num_samples,
        }

    def state_dict(self) -> dict:
        return {
            "format": _STATE_FORMAT,
            "version": 1,
            "batches": self._batches,
            "samples": self._batches * self.batch_size,
            "epoch": self.epoch,
            **self._layout(),
        }

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
        warnings.warn(f"data layout changed ({msg}); restarting at epoch {int(state.get('epoch', 0))}", stacklevel=2)
        self._stream.cfg["epoch"] = int(state.get("epoch", 0))
        self._batches = 0
