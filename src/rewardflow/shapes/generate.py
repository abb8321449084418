"""Generate ShapesWorld samples and write them as webdataset shards.

Sample i of a dataset uses its own seed derived from (seed, i) only, and shard j always holds
samples [j * shard_size, (j + 1) * shard_size): the bytes on disk do not depend on the number
of workers.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardflow.shapes import degrade
from rewardflow.shapes.captions import corrupt_caption, sample_spec
from rewardflow.shapes.config import ShapesConfig
from rewardflow.shapes.render import render_scene
from rewardflow.shapes.scene import scene_for_spec

_DEGRADATION_PROBS = (
    ("blur", "p_blur"),
    ("low_contrast", "p_low_contrast"),
    ("desaturate", "p_desaturate"),
    ("noise", "p_noise"),
)


@dataclass
class ShapesSample:
    image: np.ndarray  # uint8 (H, W, 3)
    caption: str
    meta: dict


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample `index` of a dataset generated with `seed` (a 64-bit hash of both)."""
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ (int(index) & _MASK64))


def generate_sample(
    cfg: ShapesConfig, seed: int, *, category: str | None = None, spec: dict | None = None, clean: bool = False
) -> ShapesSample:
    """One sample: scene from `spec` (or a random spec of `category`), then the quality spectrum.

    `clean=True` skips every degradation (image and caption). meta holds the clean caption and
    spec, the objects, the background and the level of each degradation (0 = not applied).
    """
    rng = np.random.default_rng(seed)
    if spec is None:
        spec = sample_spec(rng, cfg, category)
    scene = scene_for_spec(spec, rng, cfg)
    # Every draw happens whatever the probabilities, so switching one degradation on or off
    # never changes the others' draws for the same seed.
    names = [n for n, _ in _DEGRADATION_PROBS] + ["off_frame"]
    probs = [getattr(cfg, p) for _, p in _DEGRADATION_PROBS] + [cfg.p_off_frame]
    hits = rng.random(len(names)).tolist()
    lvls = rng.integers(1, cfg.max_level + 1, size=len(names)).tolist()
    levels = {n: (lv if u < p else 0) for n, p, u, lv in zip(names, probs, hits, lvls)}
    corrupt = rng.random() < cfg.p_caption_corruption
    if clean:
        levels = {k: 0 for k in levels}
        corrupt = False
    shown = degrade.off_frame(scene, levels["off_frame"], rng) if levels["off_frame"] else scene
    image = render_scene(shown, cfg.size, cfg.antialias)
    image = degrade.apply_degradations(image, levels, rng)
    caption_spec, kind = spec, None
    if corrupt:
        caption_spec, kind = corrupt_caption(spec, rng, cfg, objects=scene.objects)
    meta = {
        "category": spec["tag"],
        "caption": caption_spec["prompt"],
        "clean_caption": spec["prompt"],
        "spec": spec,
        "caption_spec": caption_spec,
        **shown.to_dict(),
        "degradations": {**levels, "caption_corruption": kind},
        "size": cfg.size,
        "seed": int(seed),
    }
    return ShapesSample(image, caption_spec["prompt"], meta)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """A standard 8-bit RGB PNG. Written directly with zlib: at 32x32 PIL's per-call overhead
    costs more than the compression itself, and encoding would dominate generation."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got shape {img.shape}")
    h, w = img.shape[:2]
    raw = np.zeros((h, w * 3 + 1), dtype=np.uint8)  # leading 0 per row: filter type "None"
    raw[:, 1:] = img.reshape(h, w * 3)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), compress_level))
        + _chunk(b"IEND", b"")
    )


def sample_members(sample: ShapesSample) -> dict[str, bytes | str]:
    return {
        "png": encode_png(sample.image),
        "txt": sample.caption,
        "json": json.dumps(sample.meta, separators=(",", ":")),
    }


def _write_shard(args) -> tuple[int, int]:
    from rewardflow.data.shards import ShardWriter

    cfg_dict, out_dir, seed, shard, start, stop = args
    cfg = ShapesConfig.from_dict(cfg_dict)
    writer = ShardWriter(out_dir, maxcount=stop - start + 1, start_index=shard)
    with writer:
        for i in range(start, stop):
            writer.write(f"{i:09d}", sample_members(generate_sample(cfg, sample_seed(seed, i))))
    return shard, stop - start


def generate_dataset(
    cfg: ShapesConfig,
    num: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    shard_size: int = 1000,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write `num` samples as `out_dir/NNNNN.tar` shards (+ `shapes_config.json`); returns the shards.

    A directory that already holds shards is refused unless `overwrite`, which deletes them
    first: stale shards from a larger earlier run would otherwise mix into the dataset.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob("*.tar"))
    if old and not overwrite:
        raise ValueError(f"{out} already holds {len(old)} shards; choose another directory or overwrite")
    for path in old:
        path.unlink()
    jobs = [
        (cfg.to_dict(), str(out), int(seed), j, s, min(s + shard_size, num))
        for j, s in enumerate(range(0, num, shard_size))
    ]
    from tqdm import tqdm

    bar = tqdm(total=num, unit="img", desc="shapes", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                _, n = _write_shard(job)
                bar.update(n)
        else:
            import multiprocessing as mp

            with mp.get_context().Pool(min(workers, len(jobs))) as pool:
                for _, n in pool.imap_unordered(_write_shard, jobs):
                    bar.update(n)
    finally:
        bar.close()
    info = {
        "generator": "rewardflow.shapes",
        "num": num,
        "seed": int(seed),
        "shard_size": shard_size,
        "config": cfg.to_dict(),
    }
    (out / "shapes_config.json").write_text(json.dumps(info, indent=2))
    return [out / f"{j:05d}.tar" for j in range(len(jobs))]
