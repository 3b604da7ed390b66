"""Streaming clients for the benchmarks: Ollama's native /api/chat and OpenAI-style SSE."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamResult:
    ttft_s: float
    tokens: int
    first_s: float  # wall-clock of the first token
    last_s: float  # wall-clock of the last token
    final: dict[str, Any] = field(default_factory=dict)  # /api/chat's done chunk (prompt_eval_count, ...)

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / (self.last_s - self.first_s) if self.tokens > 1 and self.last_s > self.first_s else 0.0


async def ollama_chat(client: httpx.AsyncClient, url: str, model: str, messages: list[dict[str, str]],
                      tokens: int) -> StreamResult:
    body = {"model": model, "messages": messages, "stream": True,
            "options": {"temperature": 0, "num_predict": tokens}}
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    final: dict[str, Any] = {}
    async with client.stream("POST", url + "/api/chat", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if chunk.get("message", {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
            if chunk.get("done"):
                n = int(chunk.get("eval_count", 0))
                final = {k: v for k, v in chunk.items() if k.endswith(("_count", "_duration"))}
    return StreamResult(first - t0, n, first, last, final)


async def openai_chat(client: httpx.AsyncClient, url: str, model: str, messages: list[dict[str, str]],
                      tokens: int) -> StreamResult:
    body = {"model": model, "messages": messages, "stream": True, "temperature": 0, "max_tokens": tokens,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = 0.0
    n = chunks = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                n = int(chunk["usage"].get("completion_tokens", 0))
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    chunks += 1
    return StreamResult(first - t0, n or chunks, first, last)


async def concurrent(fn, url: str, model: str, prompts: list[str], tokens: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=None) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(fn(client, url, model, [{"role": "user", "content": p}], tokens)
                                         for p in prompts))
        wall = time.perf_counter() - t0
    total = sum(r.tokens for r in results)
    return {"clients": len(prompts), "tokens": total, "wall_s": wall, "aggregate_tps": total / wall,
            "mean_ttft_s": sum(r.ttft_s for r in results) / len(results)}
