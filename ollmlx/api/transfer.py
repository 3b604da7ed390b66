"""POST /api/pull, POST /api/push (spec §6, §17) and GET /api/search (ollmlx's own discovery).

Like Ollama's PullHandler/PushHandler, every failure of the transfer itself is a 500: as a plain
`{"error"}` when nothing was streamed yet or with `stream:false`, else as the stream's last line.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import StrictBool, StrictStr
from starlette.responses import Response

from ollmlx.api.context import services
from ollmlx.api.schemas import GoModel
from ollmlx.api.streaming import JSONResponse, ndjson
from ollmlx.api.wire import decode
from ollmlx.errors import BadRequest, InvalidModelName, ModelRequired, OllmlxError, message_of
from ollmlx.registry import search as discovery
from ollmlx.serve import pull as transfer
from ollmlx.store.names import ModelName, parse_name
from ollmlx.store.store import Store

router = APIRouter()


class PullRequest(GoModel):
    """api.PullRequest / api.PushRequest, plus ollmlx's `source` ("ollama" or "hf")."""

    GO_NAME = "PullRequest"
    GO_TYPES = {"model": "string", "name": "string", "insecure": "bool", "stream": "bool",
                "username": "string", "password": "string", "source": "string"}
    model: StrictStr = ""
    name: StrictStr = ""
    insecure: StrictBool = False
    stream: StrictBool | None = None
    username: StrictStr = ""  # deprecated, ignored (as in Ollama)
    password: StrictStr = ""
    source: StrictStr = ""

    @property
    def target(self) -> str:
        return self.model or self.name


def existing_name(store: Store, name: ModelName) -> ModelName:
    """Ollama's getExistingName: a stored name matching case-insensitively keeps its casing."""
    found = store.manifests.resolve(name)
    return dataclasses.replace(found, scheme=name.scheme) if found is not None else name


async def as_server_errors(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    try:
        async for chunk in chunks:
            yield chunk
    except OllmlxError as exc:
        raise OllmlxError(exc.message) from exc
    except Exception as exc:
        raise OllmlxError(message_of(exc)) from exc


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    req = decode(await request.body(), PullRequest)
    name = parse_name(req.target)
    if not req.target or not name.is_valid():
        raise InvalidModelName()
    store = services(request).store
    name = existing_name(store, name)
    transfer.resolve_source(name, req.source or None)  # a bad `source` is a 400 before any work

    async def work(emit: transfer.Emit) -> None:
        await transfer.pull(store, name, emit, insecure=req.insecure, source=req.source or None)

    return await ndjson(as_server_errors(transfer.events(work)), req.stream is not False)


@router.post("/api/push")
async def push(request: Request) -> Response:
    req = decode(await request.body(), PullRequest)
    if not req.target:
        raise ModelRequired()
    name = parse_name(req.target)
    if not name.is_valid():
        raise InvalidModelName()
    store = services(request).store
    name = existing_name(store, name)

    async def work(emit: transfer.Emit) -> None:
        await transfer.push(store, name, emit, insecure=req.insecure)

    return await ndjson(as_server_errors(transfer.events(work)), req.stream is not False)


@router.get("/api/search")
async def search(request: Request) -> Response:
    q = request.query_params.get("q", "")
    fmt = request.query_params.get("format", "").lower()
    if fmt not in ("", "mlx", "gguf", "safetensors"):
        raise BadRequest(f'invalid format "{fmt}": use mlx, gguf or safetensors')
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError as exc:
        raise BadRequest("limit must be an integer") from exc
    return JSONResponse(await asyncio.to_thread(discovery.search, q, fmt, limit))
