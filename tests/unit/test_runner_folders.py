"""Runner folders left by a killed server are swept when a server starts (ollmlx/runner/folders.py):
a folder whose owner process is gone, or (from before owner files) whose socket nobody answers, goes;
a live server's folder, a listening runner's and a runner still starting stay."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollmlx.runner import folders


def _folder(tmp: Path, name: str) -> Path:
    path = tmp / (folders.PREFIX + name)
    path.mkdir()
    return path


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp directory with a short path: a socket path holds ~100 bytes, pytest's tmp_path can
    be longer."""
    path = Path(tempfile.mkdtemp(prefix="ollmlx-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_sweep_removes_only_what_a_dead_server_left(short_tmp: Path) -> None:
    tmp_path = short_tmp
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone_pid = int(dead.stdout)
    orphan = _folder(tmp_path, "orphan")
    (orphan / folders.OWNER).write_text(str(gone_pid))
    (orphan / "spec.json").write_text("{}")
    (orphan / folders.SOCKET).touch()  # the socket file stays behind when its listener is killed
    mine = _folder(tmp_path, "mine")
    (mine / folders.OWNER).write_text(str(os.getpid()))
    legacy_dead = _folder(tmp_path, "legacy-dead")
    with socket.socket(socket.AF_UNIX) as s:  # a socket file with no listener any more
        s.bind(str(legacy_dead / folders.SOCKET))
    legacy_live = _folder(tmp_path, "legacy-live")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(legacy_live / folders.SOCKET))
    listener.listen()
    _folder(tmp_path, "starting")  # no owner file (older server), no socket yet
    old_starting = _folder(tmp_path, "old")
    day_ago = time.time() - 86400
    os.utime(old_starting, (day_ago, day_ago))
    other = tmp_path / "not-a-runner"
    other.mkdir()
    try:
        assert folders.sweep(str(tmp_path)) == 3
    finally:
        listener.close()
    left = sorted(p.name.removeprefix(folders.PREFIX) for p in tmp_path.iterdir())
    assert left == ["legacy-live", "mine", "not-a-runner", "starting"]


def test_a_new_folder_names_its_owner(tmp_path: Path) -> None:
    path = Path(folders.make())
    try:
        assert path.name.startswith(folders.PREFIX)
        assert (path / folders.OWNER).read_text() == str(os.getpid())
        assert folders.sweep(str(path.parent)) >= 0 and path.is_dir()
    finally:
        (path / folders.OWNER).unlink()
        path.rmdir()


def test_a_deep_temp_directory_puts_the_folder_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Unix socket path holds ~100 bytes: under a deep TMPDIR the runner could not listen (a real
    `AF_UNIX path too long` load failure), so the folder goes to /tmp, where the sweep looks too."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = Path(folders.make())
    try:
        assert path.parent == Path("/tmp") and len(str(path / folders.SOCKET)) <= folders.SOCKET_PATH_MAX
    finally:
        (path / folders.OWNER).unlink()
        path.rmdir()
