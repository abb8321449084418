"""safetensors files whose bytes depend only on their content.

safetensors writes its `__metadata__` map in hash order, which changes from one process to the
next, so two identical runs give files with different sha256. `canonicalize_safetensors`
rewrites the header with the metadata sorted; the tensor data is untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from rewardflow.utils.atomic import atomic_write


def _canonical_header(header: dict) -> bytes:
    meta = header.pop("__metadata__", None)
    out = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    out.update(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]))
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonicalize_safetensors(path: str | os.PathLike) -> None:
    """Sort the metadata of the safetensors file at `path`, in place.

    The sorted header is minimal JSON of the same content, so it never outgrows the writer's
    header slot; the rest of the slot is padded with spaces, as the format allows.
    """
    with open(path, "r+b") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = _canonical_header(json.loads(fh.read(n)))
        if len(header) > n:  # a writer with a more compact JSON than minimal: cannot happen
            raise ValueError(f"{path}: canonical safetensors header ({len(header)} bytes) exceeds the file's ({n})")
        fh.seek(8)
        fh.write(header + b" " * (n - len(header)))


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Atomically write `tensors` to `path` as safetensors with canonical bytes."""
    from safetensors.torch import save_file

    def _write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=metadata)
        canonicalize_safetensors(tmp)

    return atomic_write(path, _write)
