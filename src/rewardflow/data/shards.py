"""Webdataset tar shards as img2dataset writes them: `{key}.{ext}` members grouped by key.

A shard is `NNNNN.tar`; its scores live beside it in `NNNNN.parquet` (see rewards.scoring).
Writes are atomic (temp file + rename) so a killed job never leaves a half-written shard
under a final name.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One record of a shard: its key and raw member bytes by extension (e.g. 'png', 'txt')."""

    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    shard: str = ""

    def text(self, ext: str = "txt") -> str:
        return self.members[ext].decode("utf-8")


def list_shards(data_dir: str | os.PathLike) -> list[Path]:
    """Sorted shard paths of a dataset directory; a clear error when there are none."""
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"dataset directory {d} does not exist")
    shards = sorted(p for p in d.glob("*.tar") if not p.name.startswith("."))
    if not shards:
        raise FileNotFoundError(
            f"no .tar shards in {d}; create some with `rewardflow data shapes` or `rewardflow data pack`"
        )
    return shards


def _split_name(name: str) -> tuple[str, str]:
    # webdataset convention: the key is everything before the first dot of the basename.
    base = os.path.basename(name)
    dirname = os.path.dirname(name)
    key, _, ext = base.partition(".")
    return (f"{dirname}/{key}" if dirname else key), ext


class _Exotic(Exception):
    pass


class TruncatedShard(Exception):
    """The shard ends in the middle of a member or lacks tar's end marker (a copy cut short)."""

    def __init__(self, message: str, member: str | None = None):
        super().__init__(message)
        self.member = member  # the member cut short; None when the cut fell between members


class ShardDamageWarning(UserWarning):
    """Part of a shard could not be read; `shard` and `key` name what was skipped."""

    def __init__(self, message: str, shard: str = "", key: str | None = None):
        super().__init__(message)
        self.shard, self.key = shard, key


def _fast_entries(path, read: bool) -> Iterator[tuple[str, bytes | None]]:
    # Python's tarfile spends ~100 us per header; plain ustar headers (what ShardWriter and
    # img2dataset write) parse in a few. PAX / GNU long-name headers raise _Exotic.
    size_on_disk = os.path.getsize(path)
    with open(path, "rb") as fh:
        while True:
            hdr = fh.read(512)
            if len(hdr) < 512:  # a complete tar ends with zero blocks, never at a header boundary
                raise TruncatedShard(f"ends after {fh.tell()} bytes, without tar's end marker")
            if hdr.count(0) == 512:
                return
            flag = hdr[156:157]
            if flag in (b"L", b"K", b"x", b"g") or hdr[124] & 0x80:
                raise _Exotic
            size = int(hdr[124:136].strip(b"\0 ") or b"0", 8)
            name = hdr[:100].split(b"\0", 1)[0].decode("utf-8")
            if hdr[257:262] == b"ustar" and hdr[345] != 0:
                name = hdr[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
            padded = -(-size // 512) * 512
            if fh.tell() + size > size_on_disk:
                raise TruncatedShard(f"ends inside member {name!r} ({size_on_disk} bytes on disk)", name)
            if flag in (b"0", b"\0"):
                yield name, (fh.read(size) if read else None)
                fh.seek(padded - (size if read else 0), 1)
            else:
                fh.seek(padded, 1)


def _tar_entries(path, read: bool = True) -> Iterator[tuple[str, bytes | None]]:
    done = 0
    try:
        for entry in _fast_entries(path, read):
            done += 1
            yield entry
    except _Exotic:
        try:
            with tarfile.open(path, "r") as tar:
                files = (i for i in tar if i.isfile())
                for i, info in enumerate(files):
                    if i >= done:
                        yield info.name, tar.extractfile(info).read() if read else None
        except (tarfile.ReadError, EOFError) as exc:
            raise TruncatedShard(str(exc)) from None


def _records(path, read: bool) -> Iterator[tuple[str, dict[str, bytes | None]]]:
    # A truncated shard yields every complete sample; the one in progress when the data ends
    # may lack members, so it is dropped too, with a warning that names it.
    key, members = None, {}
    try:
        for name, data in _tar_entries(path, read):
            k, ext = _split_name(name)
            if not ext:
                continue
            if k != key and key is not None:
                yield key, members
                members = {}
            key, members[ext] = k, data
    except TruncatedShard as exc:
        cut = _split_name(exc.member)[0] if exc.member else key
        if cut != key and key is not None:  # the cut fell in a new sample: the one before is whole
            yield key, members
        where = f"; sample {cut!r} and anything after it are skipped" if cut is not None else ""
        warnings.warn(ShardDamageWarning(f"shard {path} is truncated: {exc}{where}", str(path), cut), stacklevel=3)
        return
    if key is not None:
        yield key, members


def iter_records(path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) in file order; members of a key must be contiguous."""
    return _records(path, read=True)


def scan_keys(path) -> list[str]:
    """Sample keys of a shard in file order, without reading member data (same truncation rule)."""
    return [k for k, _ in _records(path, read=False)]


def iter_shard(path: str | os.PathLike) -> Iterator[Sample]:
    """Yield samples of one shard in file order; members of a key must be contiguous."""
    for key, members in iter_records(path):
        yield Sample(key=key, members=members, shard=str(path))


class ShardWriter:
    """Write samples into `{prefix}{index:05d}.tar` shards of at most `maxcount` samples."""

    def __init__(self, out_dir: str | os.PathLike, maxcount: int = 1000, prefix: str = "", start_index: int = 0):
        if maxcount < 1:
            raise ValueError(f"maxcount must be >= 1, got {maxcount}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.maxcount = maxcount
        self.prefix = prefix
        self.index = start_index
        self.count = 0
        self.written: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None

    def _open(self) -> None:
        self._final = self.out_dir / f"{self.prefix}{self.index:05d}.tar"
        self._tmp = self.out_dir / f".{self._final.name}.tmp{os.getpid()}"
        self._tar = tarfile.open(self._tmp, "w")
        self.count = 0

    def _close_current(self) -> None:
        if self._tar is None:
            return
        tar, self._tar = self._tar, None
        try:
            tar.close()
            os.replace(self._tmp, self._final)
        except OSError as exc:
            self._fail(exc)
        self.written.append(self._final)
        self.index += 1

    def _fail(self, exc: OSError):
        # Disk full and friends: no partial shard left behind, and the error names the shard.
        if self._tar is not None:
            try:
                self._tar.close()
            except OSError:
                pass
            self._tar = None
        self._tmp.unlink(missing_ok=True)
        if exc.errno is not None and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(self._final)) from exc
        raise exc

    def write(self, key: str, members: dict[str, bytes | str]) -> None:
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
        if self._tar is None:
            self._open()
        for ext, data in members.items():
            if isinstance(data, str):
                data = data.encode("utf-8")
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0  # deterministic bytes for a given content
            try:
                self._tar.addfile(info, io.BytesIO(data))
            except OSError as exc:
                self._fail(exc)
        self.count += 1
        if self.count >= self.maxcount:
            self._close_current()

    def close(self) -> list[Path]:
        self._close_current()
        return self.written

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None:
            # A failed job leaves no partial shard, under a final name or a temporary one.
            try:
                self._tar.close()
            except OSError:
                pass
            self._tmp.unlink(missing_ok=True)
            self._tar = None
