"""Locks on the model store that hold across server processes.

Two servers may point at one `OLLAMA_MODELS` directory (a CLI-started server and a desktop app,
or two test servers). Pruning unreferenced blobs must never run between another process's "every
blob this manifest names exists" check and its manifest write, so both happen under one lock:
a thread lock inside the process plus `flock` on `<models>/.lock` across processes.

Files being written (blob temp files, conversion work directories) carry a `flock` of their own
while their writer lives, so a later sweep can tell an abandoned one from one in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType


class StoreLock:
    """Re-entrant within a thread, exclusive across threads and processes."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise
            self._fd = fd
        self._depth += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock
        self._thread_lock.release()


def mark_in_progress(fd: int) -> None:
    """Hold a shared flock on a file being written: alive while `fd` is open."""
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)


def abandoned(path: Path, min_age: float) -> bool:
    """Whether `path` (a temp file, or a work directory's `.lock`) was left by a writer that is gone:
    nobody holds its flock and it has not changed for `min_age` seconds."""
    try:
        if time.time() - path.stat().st_mtime < min_age:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
