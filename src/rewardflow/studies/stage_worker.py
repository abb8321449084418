"""Child process of `StageRunner.run_parallel`: ``python -m rewardflow.studies.stage_worker IN OUT``.

IN holds a pickled zero-argument callable written by the parent; OUT receives the pickled
(result, seconds). Kept apart from stages.py so `-m` does not run a module its package imported.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path


def main(src: str, dst: str) -> None:
    fn = pickle.loads(Path(src).read_bytes())  # written by our own parent process, not user input
    t = time.perf_counter()
    result = fn()
    Path(dst).write_bytes(pickle.dumps((result, time.perf_counter() - t)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
