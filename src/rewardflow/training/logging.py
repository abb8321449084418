"""Run logging: JSONL metrics (the record), TensorBoard when installed, a tqdm progress bar.

Only the main process logs; other ranks get a logger whose methods do nothing, so the
trainer never branches on rank around a log call.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "read_jsonl"]


def _clean(v: Any) -> Any:
    # JSON has no NaN/inf; a skipped step's loss must still be written, as a string.
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class RunLogger:
    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
        total_steps: int = 0,
        initial_step: int = 0,
    ):
        self.enabled = enabled
        self.path = Path(out_dir) / "log.jsonl"
        self._fh = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Append: a resumed run continues the same record (steps before the checkpoint may
        # appear twice if the run died between a log line and the next checkpoint).
        self._fh = open(self.path, "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except Exception:  # tensorboard is optional: no package, no TB files
                self._tb = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True, smoothing=0.1, desc="train"
            )

    def log(self, step: int, metrics: dict[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": time.time(), **{k: _clean(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}" if "/" not in k else k, v, step)

    def progress(self, steps: int, **postfix: Any) -> None:
        if self._bar is not None:
            self._bar.update(steps)
            if postfix:
                self._bar.set_postfix(
                    {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False
                )

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._fh is not None:
            self._fh.close()
        self._fh = self._tb = self._bar = None


def read_jsonl(path: str | os.PathLike, kind: str | None = None) -> list[dict[str, Any]]:
    """Records of a run's log.jsonl, optionally only one kind (train / eval / event)."""
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                rec = json.loads(line)
                if kind is None or rec.get("kind") == kind:
                    out.append(rec)
    return out
