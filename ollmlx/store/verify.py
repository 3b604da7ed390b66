"""Blob integrity at load time: a blob damaged on disk after it was imported (bit rot, a stray
write, a truncated copy) is found before a runner loads it, reported, and never served.

Every blob a model's manifest names is re-hashed the first time this server process loads it.
A blob's identity is (path, size, mtime, inode): an unchanged file is hashed once per process,
and any rewrite or replacement of the file is hashed again at the next load.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable

from ollmlx.errors import StoreError
from ollmlx.store.blobs import BlobStore, digest_file, normalize_digest

log = logging.getLogger("ollmlx.store")

BlobIdentity = tuple[str, int, int, int]


class CorruptBlob(StoreError):
    """A blob whose content no longer hashes to its name (500: the store is damaged)."""


class BlobVerifier:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._verified: set[BlobIdentity] = set()
        self._lock = threading.Lock()
        self.hashed_bytes = 0  # how much re-hashing this process did (tests, docs/reliability.md)

    def _identity(self, digest: str) -> BlobIdentity:
        path = self.blobs.path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise StoreError(f"blob {normalize_digest(digest)} is missing from the store; "
                             "create or pull the model again") from None
        return (str(path), st.st_size, st.st_mtime_ns, st.st_ino)

    def verify(self, digests: Iterable[str], model: str = "") -> None:
        """Raise CorruptBlob for the first blob whose content does not match its digest."""
        for digest in sorted({normalize_digest(d) for d in digests}):
            ident = self._identity(digest)
            with self._lock:
                if ident in self._verified:
                    continue
            actual = digest_file(self.blobs.path(digest))
            self.hashed_bytes += ident[1]
            if actual != digest:
                whose = f" of model '{model}'" if model else ""
                log.error("blob %s%s is corrupt: its content hashes to %s", digest, whose, actual)
                raise CorruptBlob(f"blob {digest}{whose} is corrupt (its content hashes to {actual}); "
                                  "remove the model and create or pull it again")
            # cache only if the file did not change while it was hashed
            if self._identity(digest) == ident:
                with self._lock:
                    self._verified.add(ident)

    async def verify_async(self, digests: Iterable[str], model: str = "") -> None:
        await asyncio.to_thread(self.verify, list(digests), model)
