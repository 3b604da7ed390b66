"""The runner's wire protocol (HTTP over a Unix socket, NDJSON streams). No engine imports.

Server → runner: `CompletionRequest` on POST /completion; the runner streams `CompletionChunk`
lines, the last one with `done: true` and the metrics, or a line `{"error": "..."}`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class SamplingOptions(BaseModel):
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    num_predict: int = -1
    num_keep: int = 4
    stop: list[str] = Field(default_factory=list)


class CompletionRequest(BaseModel):
    prompt: str = ""
    tokens: list[int] | None = None  # pre-tokenized prompt (wins over `prompt`)
    images: list[str] = Field(default_factory=list)
    options: SamplingOptions = Field(default_factory=SamplingOptions)
    format: Any = None  # None, "json", or a JSON schema
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True
    truncate: bool = True
    return_tokens: bool = False  # include prompt + output tokens in the final chunk (generate's `context`)
    # the server's truncation budget, when it left the count to the runner: a prompt of more
    # tokens is refused with 413 and its count, and nothing runs
    fit_tokens: int | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class Logprob(TokenLogprob):
    top_logprobs: list[TokenLogprob] | None = None


class CompletionChunk(BaseModel):
    content: str = ""
    logprobs: list[Logprob] | None = None
    done: bool = False
    done_reason: Literal["stop", "length"] | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0  # nanoseconds
    eval_count: int = 0
    eval_duration: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache
    tokens: list[int] | None = None


class TokenizeRequest(BaseModel):
    content: str
    add_special: bool = False


class TokenizeResponse(BaseModel):
    tokens: list[int]


class DetokenizeRequest(BaseModel):
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    content: str


class EmbeddingRequest(BaseModel):
    inputs: list[str]
    truncate: bool = True
    num_ctx: int | None = None


class EmbeddingResponse(BaseModel):
    embeddings: list[list[float]]
    prompt_eval_count: int


class RunnerInfo(BaseModel):
    engine: str
    device: str
    model: str
    context_length: int  # the model's trained context
    num_ctx: int  # per-sequence context this runner serves
    parallel: int
    memory_bytes: int = 0  # resident bytes of weights + caches
    vram_bytes: int = 0  # the GPU part of memory_bytes
    embedding: bool = False
    details: dict[str, Any] = Field(default_factory=dict)  # engine choices (BLAS, dtype, compile)


class Health(BaseModel):
    status: Literal["loading", "ok", "error"]
    error: str | None = None
    progress: float = 0.0


class ModelSpec(BaseModel):
    """What a runner loads: a GGUF file, or Ollama tensor layers + json layers (MLX safetensors)."""

    format: Literal["gguf", "safetensors"]
    gguf_path: str | None = None
    tensors: list[str] = Field(default_factory=list)  # blob paths of tensor layers
    files: dict[str, str] = Field(default_factory=dict)  # json layer name → blob path
    adapters: list[str] = Field(default_factory=list)
    name: str = ""
