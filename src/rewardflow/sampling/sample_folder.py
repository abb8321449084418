"""A sampling output folder that is written as images are made and continued by a rerun.

Layout: `images/NNNNN.png` and `samples.jsonl`, one JSON record per image in request order. An
image's PNG is written (atomically) before its record is appended and flushed, so every record
names a complete image. A rerun of the same request reads the records, checks that they
describe this request (prompt, seed, targets, guidance, steps, solver ...) and continues after
the last one; a line cut by a kill is dropped and its image made again. A folder holding
another request's images is refused rather than mixed or overwritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from rewardflow.utils.atomic import atomic_write, atomic_write_bytes
from rewardflow.utils.locks import FolderLock

RECORDS = "samples.jsonl"


class SampleFolder:
    """`with SampleFolder(out, planned) as f:` images `f.done` onwards remain; `f.write(...)` adds them."""

    def __init__(self, out_dir: str | os.PathLike, planned: Sequence[dict]):
        self.dir = Path(out_dir)
        self.planned = list(planned)
        self.records_path = self.dir / RECORDS
        self._lock = FolderLock(self.dir, "sample")
        self.done = 0

    def __enter__(self) -> SampleFolder:
        self._lock.acquire()
        try:
            self.done = self._check_existing()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def records(self) -> list[dict]:
        """The complete records on disk, in order (a trailing line cut by a kill is left out)."""
        if not self.records_path.exists():
            return []
        out = []
        for line in self.records_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break
        return out

    def _check_existing(self) -> int:
        recs = self.records()
        for i, rec in enumerate(recs):
            want = self.planned[i] if i < len(self.planned) else None
            diff = _first_difference(rec, want)
            if diff:
                raise ValueError(
                    f"{self.dir} holds images of another request (image {i}: {diff}). Choose another --out, "
                    f"or delete {self.records_path} and {self.dir / 'images'} to start over."
                )
            if not (self.dir / rec["file"]).is_file():
                recs = recs[:i]
                break
        return len(recs)

    def keep_first(self, n: int) -> None:
        """Forget records after the first n (their images are made again)."""
        recs = self.records()[:n]
        atomic_write_bytes(self.records_path, "".join(json.dumps(r) + "\n" for r in recs).encode("utf-8"))
        self.done = n

    def write(self, images: Sequence, records: Sequence[dict]) -> None:
        """Append PIL images with their records (each a planned record plus anything measured)."""
        for im, rec in zip(images, records):
            atomic_write(self.dir / rec["file"], lambda tmp, im=im: im.save(tmp, format="PNG"))
        with open(self.records_path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())
        self.done += len(records)


def _first_difference(rec: dict, want: dict | None) -> str | None:
    if want is None:
        return "more images than this request makes"
    for k, v in want.items():
        if rec.get(k) != v:
            return f"{k} was {rec.get(k)!r}, now {v!r}"
    return None
