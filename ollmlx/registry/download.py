"""Blob downloads into the store (spec §6 /api/pull, §16 layout, §17 protocol).

- Bytes accumulate in `<blob>-partial` (Ollama's name); a download that stops (server killed,
  connection dropped, timeout) resumes from that file with an HTTP Range request.
- The digest is checked before the blob gets its final name, so `blobs/sha256-<hex>` only ever
  holds bytes that hash to `<hex>`; the rename is atomic.
- A registry may not send more bytes than the manifest declared (an endless body is cut off).
- Concurrent pulls of one blob in this process share one download (each pull reports its progress);
  another process downloading the same blob is waited for through a lock on the partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from ollmlx.errors import DigestMismatch, OllmlxError
from ollmlx.store.blobs import CHUNK, BlobStore, digest_file, normalize_digest

#: Opens the blob's bytes starting at an offset (a Range request when the offset is not 0).
Opener = Callable[[int], AbstractAsyncContextManager[httpx.Response]]
PROGRESS_INTERVAL = 0.06  # Ollama reports download progress every 60 ms
RETRIES = 3


class DownloadError(OllmlxError):
    """A blob could not be fetched; its `-partial` file (if kept) lets a later pull resume."""


class Retryable(DownloadError):
    """Transient: a dropped connection, a short body, a 5xx; the partial data is good."""


@dataclass
class Transfer:
    """One blob being downloaded; every pull waiting on it reads `total`/`completed`."""

    digest: str
    total: int
    completed: int = 0
    task: asyncio.Task[None] | None = None
    refs: int = 0
    resumed_from: int = 0


# (blobs dir, digest) → the download in flight in this process
_active: dict[tuple[str, str], Transfer] = {}


def short(digest: str) -> str:
    """`pulling <digest[7:19]>`: 12 hex characters after `sha256:`."""
    return digest[7:19]


def ollama_part_offset(partial: Path) -> int | None:
    """Bytes known good at the start of an Ollama `-partial` file, read from its `-partial-N` part
    records (Ollama writes parts at fixed offsets into a pre-sized file); None if there are none."""
    parts = []
    for p in partial.parent.glob(partial.name + "-*"):
        if not p.name.rsplit("-", 1)[-1].isdigit():
            continue
        try:
            rec = json.loads(p.read_text())
            parts.append((int(rec["Offset"]), int(rec["Size"]), int(rec["Completed"])))
        except (OSError, ValueError, KeyError, TypeError):
            return 0
    if not parts:
        return None
    offset = 0
    for start, size, done in sorted(parts):
        if start != offset:
            break
        offset += max(0, min(done, size))
        if done < size:
            break
    return offset


def remove_ollama_parts(partial: Path) -> None:
    for p in partial.parent.glob(partial.name + "-*"):
        if p.name.rsplit("-", 1)[-1].isdigit():
            p.unlink(missing_ok=True)


def check_free_space(directory: Path, needed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise DownloadError(f"not enough disk space to pull: {needed} bytes needed, {free} available")


class Downloader:
    def __init__(self, blobs: BlobStore, retries: int = RETRIES, retry_delay: float = 0.5) -> None:
        self.blobs = blobs
        self.retries = retries
        self.retry_delay = retry_delay

    async def fetch(self, digest: str, size: int, opener: Opener,
                    report: Callable[[Transfer], None]) -> bool:
        """Make `digest` present in the store; True when it already was (a cache hit).
        `report` is called every 60 ms while waiting and once at the end."""
        d = normalize_digest(digest)
        if self.blobs.exists(d):
            have = self.blobs.size(d)
            report(Transfer(d, have, have))
            return True
        key = (str(self.blobs.dir), d)
        t = _active.get(key)
        if t is None or t.task is None or t.task.done():
            t = Transfer(d, size)
            t.task = asyncio.create_task(self._run(t, opener), name=f"download {short(d)}")
            _active[key] = t
            t.task.add_done_callback(_forget(key, t))
        task = t.task
        t.refs += 1
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=PROGRESS_INTERVAL)
                report(t)
                if done:
                    task.result()
                    return False
        finally:
            t.refs -= 1
            if t.refs == 0 and not task.done():
                # the last pull waiting for it went away (client disconnected): stop, keep -partial
                _active.pop(key, None)
                task.cancel()

    # -- one download ------------------------------------------------------------------------
    async def _run(self, t: Transfer, opener: Opener) -> None:
        final = self.blobs.path(t.digest)
        partial = self.blobs.partial_path(t.digest)
        self.blobs.dir.mkdir(parents=True, exist_ok=True)
        f = await asyncio.to_thread(_open_partial, partial)
        try:
            await self._lock(f)
            if final.is_file():  # another process finished it while we waited for the lock
                _drop_if_same(partial, f)
                return
            h = hashlib.sha256()
            offset = await asyncio.to_thread(_resume_offset, partial, f, t.total)
            t.resumed_from = offset
            await asyncio.to_thread(_hash_prefix, f, h, offset)
            t.completed = offset
            attempt = 0
            while True:
                try:
                    offset, h = await self._stream(t, f, h, offset, opener)
                    break
                except Retryable:
                    attempt += 1
                    if attempt > self.retries:
                        raise
                    await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
            actual = "sha256:" + h.hexdigest()
            if actual != t.digest:
                _drop(partial, f)
                raise DownloadError(f"digest mismatch, file must be downloaded again: want {t.digest}, got {actual}")
            await asyncio.to_thread(_finish, f, partial, final)
        except (DownloadError, asyncio.CancelledError):
            raise
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DownloadError("no space left on device") from exc
            raise DownloadError(f"writing blob {short(t.digest)}: {exc}") from exc
        finally:
            f.close()

    async def _lock(self, f: IO[bytes]) -> None:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                await asyncio.sleep(0.2)

    async def _stream(self, t: Transfer, f: IO[bytes], h: Any, offset: int,
                      opener: Opener) -> tuple[int, Any]:
        if offset == t.total and t.total > 0:
            return offset, h
        try:
            async with opener(offset) as resp:
                if resp.status_code == 416 and offset > 0:
                    # the server has no bytes past what we hold: start over
                    await asyncio.to_thread(_truncate, f, 0)
                    t.completed = 0
                    raise Retryable("range not satisfiable, restarting the download")
                if resp.status_code >= 500:
                    raise Retryable(f"{resp.status_code}: {(await resp.aread())[:200].decode(errors='replace')}")
                if resp.status_code >= 400:
                    raise DownloadError(f"{resp.status_code}: {(await resp.aread())[:200].decode(errors='replace')}")
                if offset and (resp.status_code != 206 or not _range_starts_at(resp, offset)):
                    offset, h = 0, hashlib.sha256()  # the server ignored the Range: take it whole
                    await asyncio.to_thread(_truncate, f, 0)
                    t.completed = 0
                async for chunk in resp.aiter_raw(CHUNK):
                    if offset + len(chunk) > t.total:
                        _drop(self.blobs.partial_path(t.digest), f)
                        raise DownloadError(
                            f"blob {t.digest} is larger than the {t.total} bytes its manifest declares")
                    await asyncio.to_thread(_append, f, h, chunk)
                    offset += len(chunk)
                    t.completed = offset
        except httpx.TimeoutException as exc:
            raise Retryable(f"blob {short(t.digest)}: timed out waiting for the registry") from exc
        except httpx.RemoteProtocolError as exc:  # the body ended before its Content-Length
            raise Retryable(f"blob {short(t.digest)}: unexpected EOF after {offset} of {t.total} bytes") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"blob {short(t.digest)}: {exc or type(exc).__name__}") from exc
        if offset < t.total:
            raise Retryable(f"blob {short(t.digest)}: unexpected EOF after {offset} of {t.total} bytes")
        return offset, h


def _forget(key: tuple[str, str], t: Transfer) -> Callable[[asyncio.Task[None]], None]:
    def done(_: asyncio.Task[None]) -> None:
        if _active.get(key) is t:
            del _active[key]

    return done


def _range_starts_at(resp: httpx.Response, offset: int) -> bool:
    # Content-Range: bytes <start>-<end>/<total>
    value = resp.headers.get("content-range", "")
    try:
        return int(value.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False


def _open_partial(partial: Path) -> IO[bytes]:
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    return os.fdopen(fd, "r+b")


def _resume_offset(partial: Path, f: IO[bytes], total: int) -> int:
    """Good bytes already in the partial file; the file is cut to exactly that."""
    from_parts = ollama_part_offset(partial)
    if from_parts is not None:
        remove_ollama_parts(partial)  # taken over; Ollama would simply start again without them
    size = os.fstat(f.fileno()).st_size
    offset = min(size, from_parts) if from_parts is not None else size
    if offset > total:
        offset = 0
    _truncate(f, offset)
    return offset


def _hash_prefix(f: IO[bytes], h: Any, n: int) -> None:
    f.seek(0)
    left = n
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    f.seek(0, os.SEEK_END)


def _truncate(f: IO[bytes], n: int) -> None:
    f.truncate(n)
    f.seek(n)


def _append(f: IO[bytes], h: Any, chunk: bytes) -> None:
    h.update(chunk)
    f.write(chunk)


def _finish(f: IO[bytes], partial: Path, final: Path) -> None:
    f.flush()
    os.fsync(f.fileno())
    os.chmod(partial, 0o644)
    os.replace(partial, final)
    remove_ollama_parts(partial)


def _drop(partial: Path, f: IO[bytes]) -> None:
    """Bad bytes: the partial file must not be resumed from."""
    _drop_if_same(partial, f)


def _drop_if_same(partial: Path, f: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        if os.stat(partial).st_ino == os.fstat(f.fileno()).st_ino:
            partial.unlink()


def adopt_file(blobs: BlobStore, src: Path, expected: str | None = None) -> str:
    """Put a file that already lies on disk (a Hugging Face cache entry) into the store: hard
    linked when the file systems allow it (no second copy), else copied; hashed either way and
    checked against `expected` before it gets its blob name."""
    src = src.resolve()
    blobs.dir.mkdir(parents=True, exist_ok=True)
    tmp = blobs.dir / f".adopt-{os.getpid()}-{threading.get_ident()}"  # never a blob or temp-blob name
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        try:
            return blobs.write_chunks(_read_chunks(src), expected)
        except DigestMismatch as exc:
            raise DownloadError(f"digest mismatch, file must be downloaded again: {exc.message}") from exc
    try:
        actual = digest_file(tmp)
        if expected is not None and normalize_digest(expected) != actual:
            raise DownloadError(f"digest mismatch, file must be downloaded again: want {expected}, got {actual}")
        final = blobs.path(actual)
        if final.is_file():
            return actual
        os.replace(tmp, final)
        return actual
    finally:
        tmp.unlink(missing_ok=True)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


