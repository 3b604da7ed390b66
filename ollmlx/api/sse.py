"""Server-sent events for the OpenAI and Anthropic routes (spec §20, §21).

An error before the first event keeps its HTTP status (the route turns it into its dialect's error
body); once events were sent the status is 200, so the error becomes a last event instead."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response, StreamingResponse

from ollmlx.api.streaming import dumps
from ollmlx.errors import message_of

log = logging.getLogger("ollmlx.api")
EVENT_STREAM = "text/event-stream"
DONE = b"data: [DONE]\n\n"


def data(obj: Any) -> bytes:
    """An unnamed event, as OpenAI's chat and completion streams send them."""
    return f"data: {dumps(obj)}\n\n".encode()


def event(name: str, obj: Any) -> bytes:
    """A named event, as the Responses API and Anthropic's Messages API send them."""
    return f"event: {name}\ndata: {dumps(obj)}\n\n".encode()


async def sse_response(frames: AsyncIterator[bytes], error_frame: Callable[[BaseException], bytes]) -> Response:
    """Waits for the first frame before answering, so that a failure to start (unknown model,
    bad option) raises here and the caller answers it with a status and an error body."""
    try:
        first = await anext(frames)
    except StopAsyncIteration:
        first = b""

    async def body() -> AsyncIterator[bytes]:
        yield first
        try:
            async for frame in frames:
                yield frame
        except Exception as exc:  # after bytes were sent the status stays 200
            log.warning("event stream ended with an error: %s", message_of(exc))
            yield error_frame(exc)

    return StreamingResponse(body(), media_type=EVENT_STREAM,
                             headers={"Cache-Control": "no-cache", "Connection": "keep-alive"})
