"""OpenAI-compatible routes (spec §20): each one translates its request into a native chat, generate
or embed request, runs the native service, and translates the chunks back. Errors are answered in
OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with the native status."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api import openai_responses as responses
from ollmlx.api import openai_wire as wire
from ollmlx.api import sse
from ollmlx.api.compat import collect_chat, collect_generate, decode_body, guarded
from ollmlx.api.context import services
from ollmlx.api.schemas import EmbedRequest
from ollmlx.api.streaming import JSONResponse
from ollmlx.errors import BadRequest, InvalidModelName, ModelRequired, message_of, status_of
from ollmlx.serve.embed import Embeddings
from ollmlx.store.names import parse_name

router = APIRouter()
MAX_DECOMPRESSED_BODY = 20 << 20


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def openai_error(status: int, message: str) -> Response:
    return JSONResponse(error_body(status, message), status_code=status)


def stream_error(exc: BaseException) -> bytes:
    return sse.data(error_body(status_of(exc), message_of(exc)))


def _spec(model: type[Any]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}}}}


@router.post("/v1/chat/completions", openapi_extra=_spec(wire.ChatCompletionRequest))
@guarded(openai_error)
async def chat_completions(request: Request) -> Response:
    req = decode_body(await request.body(), wire.ChatCompletionRequest, "openai")
    native = wire.from_chat_request(req)
    chunks = services(request).inference.chat(native)
    cid = f"chatcmpl-{random.randrange(999)}"
    if not req.stream:
        joined = await collect_chat(chunks)
        return JSONResponse(wire.to_chat_completion(cid, joined, int(time.time())))
    state = wire.ChatStream(cid, bool(req.stream_options and req.stream_options.include_usage))

    async def frames() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for out in state.process(chunk):
                yield sse.data(out)
            if chunk.get("done"):
                yield sse.DONE

    return await sse.sse_response(frames(), stream_error)


@router.post("/v1/completions", openapi_extra=_spec(wire.CompletionRequest))
@guarded(openai_error)
async def completions(request: Request) -> Response:
    req = decode_body(await request.body(), wire.CompletionRequest, "openai")
    native = wire.from_completion_request(req)
    chunks = services(request).inference.generate(native)
    cid = f"cmpl-{random.randrange(999)}"
    if not req.stream:
        joined = await collect_generate(chunks)
        return JSONResponse(wire.to_completion(cid, joined, int(time.time())))
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    async def frames() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for out in wire.completion_chunks(cid, chunk, include_usage):
                yield sse.data(out)
            if chunk.get("done"):
                yield sse.DONE

    return await sse.sse_response(frames(), stream_error)


@router.post("/v1/embeddings", openapi_extra=_spec(wire.EmbedRequest))
@guarded(openai_error)
async def embeddings(request: Request) -> Response:
    req = decode_body(await request.body(), wire.EmbedRequest, "openai")
    inputs = wire.embed_input(req)
    svc = services(request)
    native = EmbedRequest.model_validate({"model": req.model, "input": inputs, "dimensions": req.dimensions or 0})
    result = await Embeddings(svc.store, svc.scheduler).embed(native)
    return JSONResponse(wire.to_embedding_list(req.model, result, req.encoding_format))


@router.get("/v1/models")
@guarded(openai_error)
async def list_models(request: Request) -> Response:
    store = services(request).store

    def build() -> list[dict[str, Any]]:
        out = []
        for entry in store.list():
            name = entry.name.display_shortest()
            out.append(wire.to_model(name, entry.mtime, parse_name(name).namespace))
        return out

    data = await asyncio.to_thread(build)
    return JSONResponse({"object": "list", "data": data or None})  # Ollama sends null for none


@router.get("/v1/models/{model:path}")
@guarded(openai_error)
async def retrieve_model(request: Request, model: str) -> Response:
    """`{model}` may hold `/` and `:` (`hf.co/org/repo:tag`), hence the path converter."""
    if not model:
        raise ModelRequired()
    name = parse_name(model)
    if not name.is_valid():
        raise InvalidModelName()
    loaded = await asyncio.to_thread(services(request).store.load, name, model)
    return JSONResponse(wire.to_model(model, loaded.entry.mtime, name.namespace))


async def _responses_body(request: Request) -> bytes:
    """zstd request bodies are accepted (Codex sends them), at most 20 MB once decompressed."""
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() != "zstd":
        return body
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body)
        out = reader.read(MAX_DECOMPRESSED_BODY + 1)
    except zstandard.ZstdError as exc:
        raise BadRequest("failed to decompress zstd body") from exc
    if len(out) > MAX_DECOMPRESSED_BODY:
        raise BadRequest("http: request body too large")
    return bytes(out)


@router.post("/v1/responses", openapi_extra=_spec(responses.ResponsesRequest))
@guarded(openai_error)
async def create_response(request: Request) -> Response:
    req = decode_body(await _responses_body(request), responses.ResponsesRequest, "openai")
    native = responses.from_responses_request(req)
    chunks = services(request).inference.chat(native)
    response_id = f"resp_{random.randrange(999999)}"
    item_id = f"msg_{random.randrange(999999)}"
    if not req.stream:  # the Responses API defaults to not streaming
        joined = await collect_chat(chunks)
        return JSONResponse(responses.to_response(req, response_id, item_id, joined, int(time.time())))
    state = responses.ResponsesStream(req, response_id, item_id)

    async def frames() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for name, payload in state.process(chunk):
                yield sse.event(name, payload)

    def failed(exc: BaseException) -> bytes:
        return sse.event(*state.failed(message_of(exc)))

    return await sse.sse_response(frames(), failed)
