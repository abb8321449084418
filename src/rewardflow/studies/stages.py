"""Stage bookkeeping for a study: banners, wall time per stage, and skipping finished stages.

A finished stage leaves `OUT/stages/<name>.json` with its settings signature, wall time and a
JSON result. Running the demo again skips every stage whose signature is unchanged and whose
outputs still exist; a changed setting reruns that stage and, through the chained signatures,
every stage after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardflow.utils.atomic import atomic_write_json


def digest(settings: Any) -> str:
    """A short stable hash of settings: a stage reruns when the settings behind it change."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Stage:
    """One stage for `StageRunner.run_parallel` (the arguments of `StageRunner.run`)."""

    name: str
    title: str
    signature: str
    fn: Callable[[], dict]
    outputs: tuple[str | Path, ...] = ()
    clean: tuple[str | Path, ...] = ()


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

    def run(
        self,
        name: str,
        title: str,
        signature: str,
        fn: Callable[[], dict],
        outputs: tuple[str | Path, ...] = (),
        clean: tuple[str | Path, ...] = (),
    ) -> dict:
        """Run `fn` (returning a JSON-able dict) unless a finished run with `signature` exists.

        outputs: paths that must exist for a finished stage to count as done.
        clean: paths deleted before a rerun whose signature differs (stale partial outputs).
        """
        st = Stage(name, title, signature, fn, tuple(outputs), tuple(clean))
        done = self._done_or_start(st)
        return done if done is not None else self._execute(st)

    def run_parallel(self, stages: list[Stage], workers: int) -> list[dict]:
        """Several independent stages at once, each `fn` in its own Python process (so `fn` must
        be picklable: a module-level function or a functools.partial of one), at most `workers`
        at a time. Finished stages are skipped as in `run`; with one stage left (or workers < 2)
        it runs in this process."""
        results: list[dict | None] = []
        todo: list[tuple[int, Stage]] = []
        for st in stages:
            done = self._done_or_start(st)
            results.append(done)
            if done is None:
                todo.append((len(results) - 1, st))
        if len(todo) < 2 or workers < 2:
            for i, st in todo:
                results[i] = self._execute(st)
            return results  # type: ignore[return-value]
        print(
            f"--- {len(todo)} stages in parallel, one process each: {', '.join(st.name for _, st in todo)}",
            file=self.stream,
            flush=True,
        )
        failed = []
        # The children import what this process can (a source tree put on sys.path, say), as
        # multiprocessing's spawn does.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        with tempfile.TemporaryDirectory(prefix="stages-") as tmp:
            for w in range(0, len(todo), workers):
                procs = []
                for i, st in todo[w : w + workers]:
                    src, dst = Path(tmp) / f"{st.name}.in.pkl", Path(tmp) / f"{st.name}.out.pkl"
                    src.write_bytes(pickle.dumps(st.fn))
                    # A fresh interpreter, not multiprocessing: spawn would re-run an unguarded
                    # __main__ script of the caller, and fork is unsafe once torch has threads.
                    cmd = [sys.executable, "-m", "rewardflow.studies.stage_worker", str(src), str(dst)]
                    procs.append((i, st, dst, subprocess.Popen(cmd, env=env)))
                try:
                    for i, st, dst, proc in procs:
                        if proc.wait() != 0 or not dst.is_file():
                            failed.append(f"{st.name} (exit code {proc.returncode})")
                            continue
                        result, seconds = pickle.loads(dst.read_bytes())  # our own child wrote it just now
                        results[i] = self._finish(st, result or {}, seconds)
                        self.timings[-1]["parallel"] = True  # overlapped: stage seconds do not add up
                finally:  # Ctrl-C or an error here: do not leave orphans training on
                    for *_, proc in procs:
                        if proc.poll() is None:
                            proc.kill()
        if failed:
            raise RuntimeError(
                f"stage(s) failed: {', '.join(failed)}; their output is above. Rerun the same "
                "command to resume (finished stages are skipped)"
            )
        return results  # type: ignore[return-value]

    def _done_or_start(self, st: Stage) -> dict | None:
        """The stored result of a finished stage (announced as skipped), else None after
        announcing the stage, cleaning stale outputs and marking it started."""
        name, title, signature, outputs, clean = st.name, st.title, st.signature, st.outputs, st.clean
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
        return None

    def _execute(self, st: Stage) -> dict:
        t = time.perf_counter()
        result = st.fn() or {}
        return self._finish(st, result, time.perf_counter() - t)

    def _finish(self, st: Stage, result: dict, seconds: float) -> dict:
        atomic_write_json(
            self.dir / f"{st.name}.json",
            {"signature": st.signature, "seconds": seconds, "finished": time.time(), "result": result},
        )
        print(f"--- {st.title}: done in {seconds:.1f} s", file=self.stream, flush=True)
        self.timings.append({"stage": st.name, "title": st.title, "seconds": seconds, "skipped": False})
        return result

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
