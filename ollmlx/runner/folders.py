"""Runners' socket folders (`<tmp>/ollmlx-runner-*`), and the sweep of those a killed server left.

A server that stops removes its runners' folders; one killed with SIGKILL (or lost with its machine's
power) cannot, and its runners exit on their own once their parent is gone (runner/__main__.py),
so the folders pile up in the temp directory. Each folder names the server that made it
(`owner.pid`); a server starting removes the folders whose owner is no longer running. A folder from
before owner files is removed once nothing answers on its socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

log = logging.getLogger("ollmlx.runner")

PREFIX = "ollmlx-runner-"
OWNER = "owner.pid"
SOCKET = "runner.sock"
UNOWNED_AGE_S = 3600.0  # a folder with no owner file and no socket: a runner starting, unless this old
# a Unix socket's path holds at most 107 bytes (103 on macOS): under a deep TMPDIR, /tmp instead
SOCKET_PATH_MAX = 100
SHORT_ROOT = "/tmp"


def make() -> str:
    """A new runner folder, owned by this process."""
    path = tempfile.mkdtemp(prefix=PREFIX)
    if len(os.path.join(path, SOCKET).encode()) > SOCKET_PATH_MAX and os.path.isdir(SHORT_ROOT):
        os.rmdir(path)
        path = tempfile.mkdtemp(prefix=PREFIX, dir=SHORT_ROOT)
    Path(path, OWNER).write_text(str(os.getpid()))
    return path


def remove(path: str | Path) -> None:
    """A runner folder and whatever its runner left in it (socket, spec, hostfiles)."""
    shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _answers(sock_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(sock_path))
        except OSError:
            return False
    return True


def _stale(folder: Path, now: float) -> bool:
    try:
        owner = int(Path(folder, OWNER).read_text().strip())
    except FileNotFoundError:
        owner = 0
    except (OSError, ValueError):
        return False  # unreadable or being written: leave it
    if owner:
        return owner != os.getpid() and not _running(owner)
    sock = folder / SOCKET
    if sock.exists():
        return not _answers(sock)
    return now - folder.stat().st_mtime > UNOWNED_AGE_S


def sweep(tmp: str | None = None) -> int:
    """Remove this user's runner folders whose server is gone (in `tmp`, else in the temp
    directory and /tmp); returns how many."""
    roots = [Path(tmp)] if tmp else list(dict.fromkeys([Path(tempfile.gettempdir()), Path(SHORT_ROOT)]))
    return sum(_sweep(root) for root in roots)


def _sweep(root: Path) -> int:
    now = time.time()
    removed = 0
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            if not folder.name.startswith(PREFIX):
                continue
            try:
                if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                    continue
                if _stale(folder, now):
                    shutil.rmtree(folder)  # errors reported below, unlike remove()
                    removed += 1
            except OSError as exc:  # a folder another server removed meanwhile, or not ours to remove
                log.debug("runner folder %s: %s", folder, exc)
    return removed
