"""Plumbing shared by the OpenAI and Anthropic translators: body decoding with the texts gin's
ShouldBindJSON gives, errors rendered in the route's own dialect, and collecting native chunks."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from starlette.responses import Response

from ollmlx.api.gojson import json_kind
from ollmlx.api.schemas import GoModel
from ollmlx.api.streaming import join_text
from ollmlx.api.wire import decode, parse_json
from ollmlx.errors import BadRequest, OllmlxError, message_of

log = logging.getLogger("ollmlx.api")
T = TypeVar("T", bound=GoModel)
P = ParamSpec("P")


def go_type_name(value: Any) -> str:
    """Go's `%T` of a value decoded into `any`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def decode_body(body: bytes, model: type[T], package: str) -> T:
    """gin's ShouldBindJSON: an empty body is `EOF`; otherwise Go encoding/json's texts."""
    if not body.strip():
        raise BadRequest("EOF")
    data = parse_json(body)
    if data is not None and not isinstance(data, dict):
        raise BadRequest(f"json: cannot unmarshal {json_kind(data)} into Go value of type {package}.{model.GO_NAME}")
    return decode(body, model)


def guarded(render: Callable[[int, str], Response]) -> Callable[
        [Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Answers the handler's errors with `render(status, message)` instead of the native
    `{"error": "..."}` body the app's global handler would give."""

    def wrap(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return await handler(*args, **kwargs)
            except OllmlxError as exc:
                return render(exc.status, exc.message)
            except Exception as exc:
                log.exception("unhandled error")
                return render(500, message_of(exc))

        return run

    return wrap


async def collect_chat(chunks: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The native non-stream chat answer: content, thinking, tool calls and logprobs joined."""
    collected = [c async for c in chunks]
    return join_text(collected, "message") if collected else {}


async def collect_generate(chunks: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    collected = [c async for c in chunks]
    return join_text(collected) if collected else {}
