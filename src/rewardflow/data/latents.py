"""Optional latent space: a diffusers AutoencoderKL, latents precomputed into shards, channel stats.

diffusers is the `[latent]` extra, imported only when a VAE is loaded. Latents are stored as
an extra shard member `{key}.latent.safetensors` (the safetensors header carries dtype and
shape, bf16 included); the sample's json gains a "latent" entry saying the same in words.
Shards keep their names, so the per-shard score Parquet files still match; they and
bins.json are copied beside the new shards so the latent dataset is self-contained.
Per-channel mean/std over all latents go to `latent_stats.json`; the dataset normalises with
them so the model sees roughly unit-variance channels.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardflow.data.damage import DamageBudget
from rewardflow.data.shards import ShardWriter, iter_shard, list_shards, scan_keys
from rewardflow.utils.atomic import atomic_write_json

LATENT_MEMBER = "latent.safetensors"
STATS_FILE = "latent_stats.json"
_INSTALL = "pip install 'rewardflow[latent]'  (or: pip install diffusers)"


def latent_to_bytes(latent: torch.Tensor) -> bytes:
    from safetensors.torch import save

    return save({"latent": latent.contiguous()})


def latent_from_bytes(data: bytes) -> torch.Tensor:
    from safetensors.torch import load

    return load(data)["latent"].float()


@dataclass
class LatentStats:
    mean: list[float]
    std: list[float]
    vae: str = ""
    count: int = 0

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        m, s = (torch.tensor(v, dtype=z.dtype).view(-1, 1, 1) for v in (self.mean, self.std))
        return (z - m) / s

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1) if z.dim() == 3 else (1, -1, 1, 1)
        m, s = (torch.tensor(v, dtype=z.dtype, device=z.device).view(shape) for v in (self.mean, self.std))
        return z * s + m

    def save(self, data_dir) -> Path:
        return atomic_write_json(Path(data_dir) / STATS_FILE, {"format": "rewardflow.latent_stats", **self.__dict__})

    @classmethod
    def load(cls, data_dir) -> LatentStats:
        path = Path(data_dir) / STATS_FILE
        if not path.exists():
            raise FileNotFoundError(f"no {STATS_FILE} in {data_dir}; run `rewardflow latents encode` to make latents")
        d = json.loads(path.read_text())
        return cls(mean=d["mean"], std=d["std"], vae=d.get("vae", ""), count=int(d.get("count", 0)))


class ChannelStats:
    """Streaming per-channel mean/var in float64 (Chan et al. parallel update)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def update(self, z: torch.Tensor) -> None:
        x = z.double().transpose(0, 1).reshape(z.shape[1], -1)  # (C, B*H*W)
        n, mean = x.shape[1], x.mean(1)
        m2 = ((x - mean[:, None]) ** 2).sum(1)
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        delta, tot = mean - self.mean, self.n + n
        self.mean = self.mean + delta * n / tot
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / tot
        self.n = tot

    def result(self, vae: str = "", count: int = 0) -> LatentStats:
        if self.mean is None:
            raise ValueError("no latents seen")
        std = (self.m2 / max(self.n - 1, 1)).sqrt().clamp_min(1e-6)
        return LatentStats(mean=self.mean.tolist(), std=std.tolist(), vae=vae, count=count)


def load_vae(name_or_path: str, allow_download: bool = False, device="cpu", dtype=torch.float32):
    """A diffusers AutoencoderKL from a local directory or hub id; offline unless allowed."""
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise ImportError(f"latent space needs diffusers, which is not installed: {_INSTALL}") from None
    p = Path(name_or_path)
    kw = {} if p.is_dir() or not (p / "vae").is_dir() else {"subfolder": "vae"}
    try:
        vae = AutoencoderKL.from_pretrained(str(name_or_path), local_files_only=not allow_download, **kw)
    except OSError as exc:
        raise FileNotFoundError(
            f"VAE {name_or_path!r} could not be loaded ({exc}); downloads need allow_download=True / --allow-download"
        ) from None
    return vae.to(device=device, dtype=dtype).eval().requires_grad_(False)


@torch.no_grad()
def vae_encode(vae, pixels: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
    """Pixels in [-1, 1] -> raw latents (posterior mean unless `sample`)."""
    p = next(vae.parameters())
    dist = vae.encode(pixels.to(device=p.device, dtype=p.dtype)).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return z.float().cpu()


def encode_shards(
    data_dir,
    out_dir,
    encoder,
    batch_size: int = 32,
    image_size: int | None = None,
    store_dtype: torch.dtype = torch.float16,
    vae_name: str = "",
    progress: bool = True,
) -> LatentStats:
    """Copy every shard of `data_dir` into `out_dir` with `{key}.latent.safetensors` added.

    `encoder(pixels (B,3,H,W) in [-1,1]) -> latents (B,C,h,w)`: normally
    `lambda x: vae_encode(vae, x)`, a stub in tests. Shards already present in `out_dir`
    (whole, thanks to atomic writes) are reused, so a killed job resumes where it stopped.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if data_dir.resolve() == out_dir.resolve():
        raise ValueError("--out must differ from the input dataset directory")
    shards = list_shards(data_dir)
    bad = [s.name for s in shards if not s.stem.isdigit()]
    if bad:
        raise ValueError(f"shard names must be NNNNN.tar, got {bad[:3]}")
    stats, count = ChannelStats(), 0
    damage = DamageBudget(
        sum(len(scan_keys(sh)) for sh in shards),
        "latents encode",
        "Re-copy the shards (or score them and leave out what _skipped.json lists) and rerun.",
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(shards), desc="encoding latents", unit="shard")
    job = _EncodeJob(encoder, batch_size, image_size, store_dtype, vae_name, stats, damage)
    for shard in shards:
        target = out_dir / shard.name
        count += job.restat(target) if target.exists() else job.encode(shard, out_dir)  # exists: finished earlier
        for side in (data_dir / f"{shard.stem}.parquet",):
            if side.exists() and not (out_dir / side.name).exists():
                shutil.copy2(side, out_dir / side.name)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if (data_dir / "bins.json").exists():
        shutil.copy2(data_dir / "bins.json", out_dir / "bins.json")
    result = stats.result(vae=vae_name, count=count)
    result.save(out_dir)
    return result


@dataclass
class _EncodeJob:
    """One `encode_shards` run's settings and running statistics, shard by shard."""

    encoder: Any
    batch_size: int
    image_size: int | None
    store_dtype: torch.dtype
    vae_name: str
    stats: ChannelStats
    damage: DamageBudget

    def restat(self, target: Path) -> int:
        """Feed the statistics from a shard encoded by an earlier run; its sample count."""
        samples = list(iter_shard(target))
        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i : i + self.batch_size]
            self.stats.update(torch.stack([latent_from_bytes(s.members[LATENT_MEMBER]) for s in chunk]))
        return len(samples)

    def encode(self, shard: Path, out_dir: Path) -> int:
        """Write `shard` with latents to `out_dir` (undecodable samples left out, counted as
        damage); the number of samples written."""
        samples, before = list(iter_shard(shard)), len(self.damage.skipped)
        with ShardWriter(out_dir, maxcount=len(samples) + 1, start_index=int(shard.stem)) as w:
            w.prefix = shard.stem[: len(shard.stem) - len(f"{int(shard.stem):05d}")]
            for i in range(0, len(samples), self.batch_size):
                chunk, items = self._decode(shard, samples[i : i + self.batch_size])
                if not items:
                    continue
                from rewardflow.data.images import collate

                z = self.encoder(collate(items)["pixels"]).float()
                self.stats.update(z)
                for s, zi in zip(chunk, z):
                    w.write(s.key, self._members(s, zi.to(self.store_dtype)))
        return len(samples) - (len(self.damage.skipped) - before)

    def _decode(self, shard: Path, samples: list) -> tuple[list, list[dict]]:
        from rewardflow.data.images import decode_image

        chunk, items = [], []
        for s in samples:
            ext = next((e for e in ("png", "jpg", "jpeg", "webp") if e in s.members), None)
            if ext is None:
                raise ValueError(f"{shard.name}: sample {s.key} has no image member")
            try:
                image = decode_image(s.members[ext], self.image_size)
            except Exception as exc:  # PIL raises many types for corrupt files
                self.damage.skip(shard, s.key, exc)  # left out of the output shard
                continue
            chunk.append(s)
            items.append({"key": s.key, "caption": "", "image": image})
        return chunk, items

    def _members(self, s, zs: torch.Tensor) -> dict:
        meta = json.loads(s.members.get("json", b"{}") or b"{}")
        meta["latent"] = {
            "dtype": str(zs.dtype).replace("torch.", ""),
            "shape": list(zs.shape),
            "vae": self.vae_name,
            "member": LATENT_MEMBER,
        }
        members = dict(s.members, json=json.dumps(meta))
        members[LATENT_MEMBER] = latent_to_bytes(zs)
        return members
