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
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces


def canonicalize_safetensors(path: str | os.PathLike) -> None:
    """Sort the metadata of the safetensors file at `path` in place (same length, so no copy)."""
    with open(path, "r+b") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = _canonical_header(json.loads(fh.read(n)))
        if len(header) != n:  # never seen: the writer pads exactly as we do; fail loudly if it changes
            raise ValueError(f"{path}: canonical safetensors header is {len(header)} bytes, the file's is {n}")
        fh.seek(8)
        fh.write(header)


def save_safetensors(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Atomically write `tensors` to `path` as safetensors with canonical bytes."""
    from safetensors.torch import save_file

    def _write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=metadata)
        canonicalize_safetensors(tmp)

    return atomic_write(path, _write)
