"""Stage bookkeeping for the demo: banners, wall time per stage, and skipping finished stages.

A finished stage leaves `OUT/stages/<name>.json` with its settings signature, wall time and a
JSON result. Running the demo again skips every stage whose signature is unchanged and whose
outputs still exist; a changed setting reruns that stage and, through the chained signatures,
every stage after it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardflow.utils.atomic import atomic_write_json


class StageRunner:
    def __init__(self, out: str | Path, total: int, stream=None):
        self.out = Path(out)
        self.dir = self.out / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.total, self.index = total, 0
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.timings: list[dict[str, Any]] = []

    def banner(self, text: str) -> None:
        line = f"=== [{self.index}/{self.total}] {text}  (demo time {self._clock()}) "
        print("\n" + line + "=" * max(0, 96 - len(line)), file=self.stream, flush=True)

    def _clock(self) -> str:
        s = int(time.perf_counter() - self.t0)
        return f"{s // 60}:{s % 60:02d}"

    def run(self, name: str, title: str, signature: str, fn: Callable[[], dict],
            outputs: tuple[str | Path, ...] = (), clean: tuple[str | Path, ...] = ()) -> dict:
        """Run `fn` (returning a JSON-able dict) unless a finished run with `signature` exists.

        outputs: paths that must exist for a finished stage to count as done.
        clean: paths deleted before a rerun whose signature differs (stale partial outputs).
        """
        self.index += 1
        marker = self.dir / f"{name}.json"
        old = json.loads(marker.read_text()) if marker.is_file() else None
        present = all(Path(p).exists() for p in outputs)
        if old and old.get("result") is not None and old.get("signature") == signature and present:
            self.banner(f"{title}: already done in an earlier run ({old['seconds']:.0f} s), skipped")
            self.timings.append({"stage": name, "title": title, "seconds": old["seconds"], "skipped": True})
            return old["result"]
        self.banner(title)
        if old is not None and old.get("signature") != signature:
            for p in clean:
                p = Path(p)
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        # Written before the work, so an interrupted stage with other settings is cleaned next time.
        atomic_write_json(marker, {"signature": signature, "started": time.time(), "result": None})
        t = time.perf_counter()
        result = fn() or {}
        seconds = time.perf_counter() - t
        atomic_write_json(marker, {"signature": signature, "seconds": seconds, "finished": time.time(),
                                   "result": result})
        print(f"--- {title}: done in {seconds:.1f} s", file=self.stream, flush=True)
        self.timings.append({"stage": name, "title": title, "seconds": seconds, "skipped": False})
        return result

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
