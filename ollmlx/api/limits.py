"""Request limits, as one ASGI middleware in front of the routes:

- a body-size limit (`OLLMLX_MAX_REQUEST_SIZE`, 64 MiB by default) on every route except blob
  uploads, which stream to disk: a larger body gets 413 `{"error": "http: request body too large"}`
  (Go's MaxBytesReader text) before any of it is parsed;
- a request whose client goes away before its response starts (while it waits in the queue, for a
  model load, or for a non-streamed answer) is cancelled, so it stops holding a queue place or a
  runner slot; it is answered and counted as 499 `request canceled` (spec §18, §19).

The body is read here once; the route gets it replayed, and later `receive()` calls report the
client's disconnect (Starlette's streaming responses listen for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ollmlx import config
from ollmlx.api.streaming import JSONResponse
from ollmlx.errors import OllmlxError, RequestCanceled

log = logging.getLogger("ollmlx.api")

# After refusing a body, read (and drop) this much more of it so the client sees the 413 rather
# than a reset connection; past that the connection is closed.
DRAIN_LIMIT = 16 << 20


class RequestTooLarge(OllmlxError):
    status = 413

    def __init__(self) -> None:
        super().__init__("http: request body too large")


def _streams_to_disk(scope: Scope) -> bool:
    return scope["method"] == "POST" and str(scope["path"]).startswith("/api/blobs/")


class RequestGuard:
    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = config.max_request_bytes() if max_bytes is None else max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streams_to_disk(scope):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        await self._run(scope, body, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when it was refused or the client left."""
        limit = self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if limit > 0 and declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, 0)
            return None
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if limit > 0 and total > limit:
                await self._refuse(scope, receive, send, total if message.get("more_body") else -1)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, drained: int) -> None:
        while 0 <= drained < DRAIN_LIMIT:  # -1: the body already ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
            drained += len(message.get("body", b""))
        err = RequestTooLarge()
        response = JSONResponse({"error": err.message}, status_code=err.status, headers={"Connection": "close"})
        await response(scope, receive, send)

    async def _run(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        replayed = False
        started = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        app = asyncio.ensure_future(self.app(scope, replay, tracked_send))
        watch = asyncio.ensure_future(self._until_disconnect(receive))
        cancelled_by_us = False
        try:
            await asyncio.wait({app, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and not app.done():
                gone.set()
                if not started:
                    cancelled_by_us = True
                    app.cancel()
            try:
                await app
            except asyncio.CancelledError:
                if not cancelled_by_us:
                    raise
            except RequestCanceled:
                pass
            if cancelled_by_us:
                log.info("request canceled: %s %s (the client went away before the response started)",
                         scope["method"], scope["path"])
                if not started:  # nobody reads it; it tells the metrics middleware what happened
                    err = RequestCanceled()
                    with contextlib.suppress(Exception):
                        await JSONResponse({"error": err.message}, status_code=err.status)(scope, replay, send)
        except BaseException:
            app.cancel()
            raise
        finally:
            watch.cancel()

    @staticmethod
    async def _until_disconnect(receive: Receive) -> Any:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return message
