"""Anthropic-compatible `POST /v1/messages` (spec §21): translated into a native chat, answered as
a message or its event stream. Errors come in Anthropic's shape with the native status. The API
key and `anthropic-version` header are not checked, as in Ollama."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from ollmlx.api import anthropic_wire as wire
from ollmlx.api import sse
from ollmlx.api.compat import collect_chat, decode_body, guarded
from ollmlx.api.context import services
from ollmlx.api.schemas import ChatRequest
from ollmlx.api.streaming import JSONResponse
from ollmlx.errors import OllmlxError, message_of, status_of
from ollmlx.serve.capabilities import capabilities
from ollmlx.serve.inference import Inference

router = APIRouter()


def anthropic_error(status: int, message: str) -> Response:
    return JSONResponse(wire.error_body(status, message), status_code=status)


def relax_thinking(inference: Inference, req: ChatRequest) -> None:
    """Claude Code asks for thinking from every model: on one without the capability the request
    goes on without it instead of failing (Ollama's `relax_thinking`)."""
    if req.think is None or req.think is False:
        return
    try:
        model = inference.resolve(req.model, chat=True)
    except OllmlxError:
        return  # the chat call reports it
    if "thinking" not in capabilities(model):
        req.think = None


@router.post("/v1/messages", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": wire.MessagesRequest.model_json_schema(by_alias=True)}}}})
@guarded(anthropic_error)
async def messages(request: Request) -> Response:
    req = decode_body(await request.body(), wire.MessagesRequest, "anthropic")
    wire.validate(req)
    native = wire.from_messages_request(req)
    inference = services(request).inference
    relax_thinking(inference, native)
    chunks = inference.chat(native)
    mid = wire.new_id("msg")
    if not req.stream:
        return JSONResponse(wire.to_messages_response(mid, await collect_chat(chunks)))
    state = wire.MessagesStream(mid, req.model, wire.estimate_input_tokens(req))

    async def frames() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for name, payload in state.process(chunk):
                yield sse.event(name, payload)

    def failed(exc: BaseException) -> bytes:
        return sse.event(*state.error(status_of(exc), message_of(exc)))

    return await sse.sse_response(frames(), failed)
