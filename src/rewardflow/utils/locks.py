"""One writer per folder: a lock file that a second process reports and a dead one does not hold.

The lock is a small JSON file created with O_CREAT | O_EXCL (atomic on local file systems and
on NFS v3+), holding who took it: pid, host, the process start time (so a recycled pid is not
mistaken for the owner) and the command line. A second process that finds it live stops with a
message naming the owner. A lock whose owner is gone is taken over with a warning: on the
same host that is proved by the pid (or its start time); a lock from another host cannot be
checked from here, so the message says how to remove it by hand once that job is known dead.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

LOCK_NAME = ".rewardflow.lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


def _start_time(pid: int) -> str | None:
    # Field 22 of /proc/PID/stat: start time in clock ticks since boot (Linux only).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now = _start_time(pid)
    return start is None or now is None or now == start


class FolderLock:
    """`with FolderLock(out_dir, "train"):` holds `out_dir/.rewardflow.lock` for the block."""

    def __init__(self, directory: str | os.PathLike, job: str):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.job = job
        self._held = False

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # half-written by a process killed between create and write

    def _stale(self, owner: dict) -> bool:
        if not owner:  # unreadable: stale once it is old enough that its writer has finished
            try:
                return time.time() - self.path.stat().st_mtime > 60
            except FileNotFoundError:
                return True
        if owner.get("host") != socket.gethostname():
            return False
        return not _alive(int(owner.get("pid", -1)), owner.get("start"))

    def acquire(self) -> FolderLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": _start_time(os.getpid()),
            "job": self.job,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                owner = self._owner()
                if owner is None:
                    continue  # released between our two calls
                if not self._stale(owner):
                    raise FolderLockedError(self._busy_message(owner)) from None
                warnings.warn(
                    f"{self.path}: taking over a lock left by a process that is gone ({owner or 'unreadable'})",
                    stacklevel=2,
                )
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._held = True
            return self
        raise FolderLockedError(f"{self.path}: could not take the lock (it keeps changing hands); retry")

    def _busy_message(self, owner: dict) -> str:
        who = f"pid {owner.get('pid')} on {owner.get('host')}, {owner.get('job')} since {owner.get('since')}"
        return (
            f"{self.directory} is in use by another {owner.get('job', 'job')} ({who}: {owner.get('command', '?')}). "
            f"Two jobs in one folder would overwrite each other's files. Wait for it to finish or use another "
            f"output folder; if that process is dead (a job killed on another machine), delete {self.path}."
        )

    def release(self) -> None:
        if self._held:
            owner = self._owner()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
