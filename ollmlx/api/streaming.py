"""NDJSON streaming with Ollama's rules (spec §0): an error before the first byte is a plain
status + `{"error"}`; after it, a final `{"error"}` line on a 200 stream. `stream:false` collects."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response, StreamingResponse

from ollmlx.errors import message_of

log = logging.getLogger("ollmlx.api")
NDJSON = "application/x-ndjson"


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class JSONResponse(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode()


async def ndjson(chunks: AsyncIterator[dict[str, Any]], stream: bool,
                 aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> Response:
    if not stream:
        collected = [c async for c in chunks]
        if not collected:
            return JSONResponse({})
        return JSONResponse(aggregate(collected) if aggregate else collected[-1])
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return StreamingResponse(iter(()), media_type=NDJSON)

    async def body() -> AsyncIterator[bytes]:
        yield (dumps(first) + "\n").encode()
        try:
            async for chunk in chunks:
                yield (dumps(chunk) + "\n").encode()
        except Exception as exc:  # after bytes were sent the status stays 200
            log.warning("stream ended with an error: %s", message_of(exc))
            yield (dumps({"error": message_of(exc)}) + "\n").encode()

    return StreamingResponse(body(), media_type=NDJSON)


def join_text(chunks: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
    """The non-stream response: joined content/thinking/logprobs, everything else from the last chunk."""
    last = dict(chunks[-1])
    if key is None:  # generate
        last["response"] = "".join(c.get("response", "") for c in chunks)
        thinking = "".join(c.get("thinking", "") for c in chunks)
        if thinking:
            last["thinking"] = thinking
    else:
        msg = dict(last.get(key) or {})
        msg["content"] = "".join((c.get(key) or {}).get("content", "") for c in chunks)
        thinking = "".join((c.get(key) or {}).get("thinking", "") or "" for c in chunks)
        if thinking:
            msg["thinking"] = thinking
        calls = [tc for c in chunks for tc in ((c.get(key) or {}).get("tool_calls") or [])]
        if calls:
            msg["tool_calls"] = calls
        last[key] = msg
    logprobs = [lp for c in chunks for lp in (c.get("logprobs") or [])]
    if logprobs:
        last["logprobs"] = logprobs
    return last
