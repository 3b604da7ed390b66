"""What the runner's HTTP layer needs from an engine. No engine imports here."""

from __future__ import annotations

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
