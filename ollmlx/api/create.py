"""POST /api/create, HEAD/POST /api/blobs/:digest (spec §6)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api.context import services
from ollmlx.api.schemas import CreateRequest
from ollmlx.api.streaming import JSONResponse, ndjson
from ollmlx.api.wire import decode
from ollmlx.errors import BadRequest, InvalidModelName, NotFound, OllmlxError, message_of
from ollmlx.serve.pull import pull_blocking
from ollmlx.store.blobs import normalize_digest
from ollmlx.store.create import CreateSpec, Creator, check_relative
from ollmlx.store.names import parse_name

router = APIRouter()


@router.head("/api/blobs/{digest}")
async def head_blob(request: Request, digest: str) -> Response:
    d = normalize_digest(digest)
    if not services(request).store.blobs.exists(d):
        raise NotFound(f'blob "{digest}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def post_blob(request: Request, digest: str) -> Response:
    d = normalize_digest(digest)
    blobs = services(request).store.blobs
    if blobs.exists(d):
        # Drain the body so the client sees a clean answer.
        async for _ in request.stream():
            pass
        return Response(status_code=200)
    await blobs.write_async(request.stream(), expected=d)
    return Response(status_code=201)


def _spec(req: CreateRequest) -> CreateSpec:
    for files in (req.files or {}, req.draft_files or {}, req.adapters or {}):
        for fname, digest in files.items():
            check_relative(fname)
            if not digest:
                raise BadRequest("invalid digest format")
            normalize_digest(digest)
    if req.draft_quantize and not req.draft_files:
        raise BadRequest("--draft-quantize requires a DRAFT model")
    name = parse_name(req.target)
    if not req.target or not name.is_valid():
        raise InvalidModelName()
    if not req.from_ and req.files is not None and not req.files:
        raise BadRequest("unknown type")  # `files: {}` is a files create with nothing to detect
    return CreateSpec(
        name=name, from_=req.from_ or None, files=dict(req.files or {}), adapters=dict(req.adapters or {}),
        template=req.template or None, system=req.system or None, license=req.license,
        parameters=req.parameters, messages=[m.wire() for m in req.messages] if req.messages else None,
        quantize=(req.quantize or req.quantization) or None, convert=req.convert or None,
        renderer=req.renderer or None, parser=req.parser or None, requires=req.requires or None,
    )


@router.post("/api/create")
async def create(request: Request) -> Response:
    req = decode(await request.body(), CreateRequest)
    spec = _spec(req)
    store = services(request).store
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(obj: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(q.put_nowait, obj)

    def work() -> None:
        try:
            Creator(store, progress, pull_missing=lambda name: pull_blocking(store, name, progress)).run(spec)
        except OllmlxError as exc:
            progress({"error": exc.message, "status": exc.status})
        except Exception as exc:
            progress({"error": message_of(exc), "status": 500})
        finally:
            loop.call_soon_threadsafe(q.put_nowait, None)

    threading.Thread(target=work, name="create", daemon=True).start()

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        while (item := await q.get()) is not None:
            if "error" in item:
                err = BadRequest(item["error"]) if item.get("status") == 400 else OllmlxError(item["error"])
                raise err
            yield item

    if req.stream is False:
        return await _create_nonstream(chunks())
    return await ndjson(chunks(), True)


async def _create_nonstream(chunks: AsyncIterator[dict[str, Any]]) -> Response:
    last: dict[str, Any] = {}
    async for c in chunks:
        last = c
    return JSONResponse(last)
