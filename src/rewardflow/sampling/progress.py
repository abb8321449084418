"""Progress reporting of a sampling call: a tqdm bar, or a caller's hook (a UI's progress bar)."""

from __future__ import annotations

from collections.abc import Callable


class ProgressHook:
    """``fn(steps_done, total)`` behind the update / close interface of a tqdm bar."""

    def __init__(self, fn: Callable[[int, int], None], total: int):
        self.fn, self.total, self.done = fn, total, 0

    def update(self, k: int = 1) -> None:
        self.done += k
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


def progress_bar(progress, total: int, desc: str):
    """``progress``: True (a tqdm bar), False (none) or a callable ``(steps_done, total)``."""
    if callable(progress):
        return ProgressHook(progress, total)
    if progress:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="step", desc=desc)
    return None
