"""Content-addressed blobs: `<models>/blobs/sha256-<hex>`, written atomically and verified."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

from ollmlx.errors import BadRequest, DigestMismatch, StoreError
from ollmlx.store.locking import abandoned, mark_in_progress

DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})\Z")  # \Z: `$` would accept a trailing newline
TEMP_RE = re.compile(r"^sha256-.*-tmp$")
CHUNK = 1 << 20
# errors that mean "the disk (or this process's file size limit) is full"
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

# Temp files and work directories this process is writing: removed at shutdown, so a server
# stopped mid-create leaves nothing half-written behind (writer threads cannot be interrupted).
_in_progress: set[Path] = set()
_in_progress_lock = threading.Lock()


def track_in_progress(path: Path, live: bool) -> None:
    with _in_progress_lock:
        (_in_progress.add if live else _in_progress.discard)(path)


def discard_in_progress() -> int:
    """Remove every temp file / work directory still being written (server shutdown)."""
    with _in_progress_lock:
        paths = list(_in_progress)
        _in_progress.clear()
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(paths)


def full_disk_error(exc: OSError, where: Path) -> StoreError | None:
    """A clear error for a full disk; None for other OS errors."""
    if exc.errno not in _FULL:
        return None
    return StoreError(f"no space left on device while writing to {where}: free some space and try again")


def normalize_digest(digest: str) -> str:
    """`sha256:<hex>` (lower-case) from either separator; anything else is refused before it
    can become a path (the 2024 digest path-traversal class of bugs)."""
    m = DIGEST_RE.match(digest or "")
    if not m:
        raise BadRequest("invalid digest format")
    return "sha256:" + m.group(1).lower()


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs"

    def path(self, digest: str) -> Path:
        return self.dir / normalize_digest(digest).replace(":", "-")

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def partial_path(self, digest: str) -> Path:
        """Where a download of `digest` accumulates (Ollama's `<blob>-partial`); resumable."""
        final = self.path(digest)
        return final.with_name(final.name + "-partial")

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def _tempfile(self) -> tuple[BinaryIO, Path]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="sha256-", suffix="-tmp", dir=self.dir)
        mark_in_progress(fd)  # a sweep by another process leaves it alone while we write
        track_in_progress(Path(name), True)
        return os.fdopen(fd, "wb"), Path(name)

    def _commit(self, tmp: Path, actual: str, expected: str | None) -> str:
        if expected is not None and normalize_digest(expected) != actual:
            raise DigestMismatch(normalize_digest(expected), actual)
        final = self.path(actual)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        track_in_progress(tmp, False)
        return actual

    def _abort(self, tmp: Path, exc: BaseException) -> None:
        tmp.unlink(missing_ok=True)
        track_in_progress(tmp, False)
        if isinstance(exc, OSError) and (full := full_disk_error(exc, self.dir)) is not None:
            raise full from exc

    def sweep_abandoned(self, min_age: float = 60.0) -> int:
        """Remove temp files left by writers that died (a killed server); others' live writes stay."""
        if not self.dir.is_dir():
            return 0
        removed = 0
        for p in self.dir.iterdir():
            if TEMP_RE.match(p.name) and abandoned(p, min_age):
                p.unlink(missing_ok=True)
                removed += 1
        work_root = self.dir.parent / ".tmp"  # conversion work directories (store/create.py)
        for d in work_root.iterdir() if work_root.is_dir() else ():
            marker = d / ".lock"
            if d.is_dir() and not d.is_symlink() and abandoned(marker if marker.exists() else d, min_age):
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        return self.write_chunks([data], expected)

    def write_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        """Write a blob from chunks; returns its digest. Nothing is left behind on failure."""
        f, tmp = self._tempfile()
        h = hashlib.sha256()
        try:
            with f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            return self._commit(tmp, "sha256:" + h.hexdigest(), expected)
        except BaseException as exc:
            self._abort(tmp, exc)
            raise

    async def write_async(self, chunks: AsyncIterator[bytes], expected: str | None = None) -> str:
        f, tmp = self._tempfile()
        h = hashlib.sha256()
        try:
            with f:
                async for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            return self._commit(tmp, "sha256:" + h.hexdigest(), expected)
        except BaseException as exc:
            self._abort(tmp, exc)
            raise

    def write_file(self, src: Path) -> str:
        def chunks() -> Iterable[bytes]:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return self.write_chunks(chunks())

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store") from exc

    def verify(self, digest: str) -> None:
        """Re-hash a blob; a corrupt blob is reported, never served."""
        path = self.path(digest)
        if not path.is_file():
            raise StoreError(f"blob {digest} is missing from the store")
        actual = digest_file(path)
        if actual != normalize_digest(digest):
            raise StoreError(f"blob {digest} is corrupt (its content hashes to {actual}); create or pull the model again")

    def all_digests(self) -> set[str]:
        if not self.dir.is_dir():
            return set()
        out = set()
        for p in self.dir.iterdir():
            m = DIGEST_RE.match(p.name)
            if m and p.is_file():
                out.add("sha256:" + m.group(1).lower())
        return out

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
