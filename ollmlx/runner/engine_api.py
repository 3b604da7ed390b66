"""What the runner's HTTP layer needs from an engine. No engine imports here."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ollmlx.runner.protocol import CompletionRequest, EmbeddingRequest, EmbeddingResponse, RunnerInfo

Emit = Callable[[dict[str, Any]], None]


class Engine(Protocol):
    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        """Start a sequence; `emit` is called from the engine thread with chunk dicts
        (`{"content"...}`, finally `{"done": true, ...}` or `{"error": ..., "status": ...}`)."""

    def cancel(self, rid: int) -> None: ...

    def tokenize(self, text: str, add_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def info(self) -> RunnerInfo: ...

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse: ...


class EngineError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def final_chunk(req: CompletionRequest, reason: str, prompt: list[int], out: list[int], n_cached: int,
                t_insert: float, t_first: float) -> dict[str, Any]:
    """A sequence's last chunk, the same for every engine: counts and nanosecond durations
    (prompt eval from admission to the first token; eval from there to now)."""
    now = time.perf_counter()
    t_first = t_first or now
    t_insert = t_insert or now
    final: dict[str, Any] = {
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": max(1, len(prompt) - n_cached),
        "prompt_eval_duration": int((t_first - t_insert) * 1e9),
        "eval_count": len(out),
        "eval_duration": int((now - t_first) * 1e9),
        "cached_tokens": n_cached,
    }
    if req.return_tokens:
        final["tokens"] = prompt + out
    return final


class Inbox:
    """Commands from HTTP threads to an engine's own thread, which alone touches the model:
    ("submit", sequence), ("cancel", request id), ("wake", None). Request ids come from here."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._next_rid = 0

    def new_rid(self) -> int:
        with self._lock:
            rid = self._next_rid
            self._next_rid += 1
        return rid

    def put(self, cmd: str, arg: Any = None) -> None:
        self._queue.put((cmd, arg))

    def drain(self, apply: Callable[[str, Any], None], wait: float | None = 0) -> None:
        """Apply every queued command, waiting up to `wait` seconds for the first (None: until
        one comes)."""
        try:
            cmd, arg = self._queue.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            apply(cmd, arg)
            try:
                cmd, arg = self._queue.get_nowait()
            except queue.Empty:
                return
