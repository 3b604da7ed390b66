"""GET /api/tags, POST /api/show, GET /api/ps, DELETE /api/delete, POST /api/copy (spec §6)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api.context import services
from ollmlx.api.schemas import CopyRequest, NameRequest
from ollmlx.api.streaming import JSONResponse
from ollmlx.api.wire import decode, local_time
from ollmlx.errors import BadRequest, InvalidModelName, ModelNotFound, ModelRequired, NotFound
from ollmlx.serve import describe
from ollmlx.store.names import parse_name

router = APIRouter()


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    svc = services(request)

    def build() -> list[dict[str, Any]]:
        return [describe.tag_entry(svc.store, e) for e in svc.store.list()]

    return JSONResponse({"models": await asyncio.to_thread(build)})


@router.post("/api/show")
async def show(request: Request) -> Response:
    req = decode(await request.body(), NameRequest)
    if not req.target:
        raise ModelRequired()
    name = parse_name(req.target)
    if not name.is_valid():
        raise InvalidModelName()
    svc = services(request)
    model = svc.store.load(name)
    out = await asyncio.to_thread(describe.show, model, verbose=req.verbose, system=req.system,
                                  user_agent=request.headers.get("user-agent", ""), requested=req.target,
                                  options=req.options)
    return JSONResponse(out)


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    svc = services(request)
    models = []
    for loaded in svc.scheduler.ps():
        info = await loaded.runner.refresh_info()
        model = loaded.req.extra.get("model")
        size = info.memory_bytes if info else 0
        entry: dict[str, Any] = {
            "name": loaded.req.name,
            "model": loaded.req.name,
            "size": size or (model.size if model else 0),
            "digest": loaded.req.key,
            "details": {**(describe.details(model) if model else {}), "parent_model": ""},
            "expires_at": local_time(loaded.expires_at or 0),
            "size_vram": info.vram_bytes if info else 0,
            "context_length": info.num_ctx if info else loaded.req.num_ctx,
        }
        if info:
            entry["engine"] = info.engine
            if info.details.get("ranks"):  # a model split across the ranks of a group (docs/distributed.md)
                entry["ranks"] = info.details["ranks"]
        models.append(entry)
    return JSONResponse({"models": models})


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    req = decode(await request.body(), NameRequest)
    if not req.target:
        raise ModelRequired()
    name = parse_name(req.target)
    if not name.is_valid():
        raise BadRequest(f'name "{req.target}" is invalid')
    svc = services(request)
    entry = svc.store.entry(name)
    if entry is None:
        raise ModelNotFound(req.target)
    await asyncio.to_thread(svc.store.delete, entry.name)
    return Response(status_code=200)


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    req = decode(await request.body(), CopyRequest)
    src, dst = parse_name(req.source), parse_name(req.destination)
    if not req.source or not src.is_valid():
        raise BadRequest(f'source "{req.source}" is invalid')
    if not req.destination or not dst.is_valid():
        raise BadRequest(f'destination "{req.destination}" is invalid')
    svc = services(request)
    entry = svc.store.entry(src)
    if entry is None:
        raise NotFound(f'model "{req.source}" not found')
    # CopyModel copies the manifest file's bytes (same digest); blobs are shared. A destination
    # matching a stored name case-insensitively takes that name's casing (getExistingName).
    target = svc.store.manifests.resolve(dst) or dst
    await asyncio.to_thread(svc.store.write_manifest_bytes, target, entry.path.read_bytes())
    return Response(status_code=200)
