"""The llama.cpp engine behind the runner's Engine protocol (GGUF models)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ollmlx.runner.engine_api import Emit, EngineError
from ollmlx.runner.engines.llamacpp import host
from ollmlx.runner.engines.llamacpp.embed import LlamaCppEmbedder
from ollmlx.runner.engines.llamacpp.engine import LlamaCppEngine
from ollmlx.runner.engines.llamacpp.model import LlamaCppModel
from ollmlx.runner.protocol import (
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelSpec,
    RunnerInfo,
)
from ollmlx.serve.capabilities import is_embedding_gguf
from ollmlx.store.gguf_info import read_gguf

log = logging.getLogger("ollmlx.runner.llamacpp")

# CPU hosts gain little past a few streams; a GPU build batches more for nearly free.
_DEFAULT_PARALLEL_CPU = 4
_DEFAULT_PARALLEL_GPU = 16


class LlamaCppRunnerEngine:
    def __init__(self, spec: ModelSpec, num_ctx: int, parallel: int) -> None:
        if spec.format != "gguf" or not spec.gguf_path:
            raise ValueError("the llamacpp engine runs GGUF models only")
        if spec.adapters:
            raise ValueError("the llamacpp engine does not load adapters; use the mlx engine")
        self.spec = spec
        info = read_gguf(Path(spec.gguf_path))
        self.model_pooling = info.arch_value("pooling_type") is not None
        self.model = LlamaCppModel(spec.gguf_path)
        self.num_ctx = min(num_ctx, self.model.context_length) if num_ctx > 0 else self.model.context_length
        self.details = host.details()
        self.engine: LlamaCppEngine | None = None
        self.embedder: LlamaCppEmbedder | None = None
        self._embed_lock = threading.Lock()
        if is_embedding_gguf(info):  # an embedding model: no generation context at all
            self.parallel = 1
            self._embedding()
            log.info("llamacpp embedding engine ready: %s num_ctx=%d %s", spec.name, self.num_ctx, self.details)
            return
        gpu = self.details["device"] == "gpu"
        self.parallel = parallel if parallel > 0 else (_DEFAULT_PARALLEL_GPU if gpu else _DEFAULT_PARALLEL_CPU)
        self.engine = LlamaCppEngine(self.model, num_ctx=self.num_ctx, parallel=self.parallel)
        self.engine.start()
        log.info("llamacpp engine ready: %s num_ctx=%d parallel=%d %s",
                 spec.name, self.num_ctx, self.parallel, self.details)

    def _generator(self) -> LlamaCppEngine:
        if self.engine is None:  # the server checks capabilities first; this guards the runner itself
            raise EngineError("this model does not support generate", 400)
        return self.engine

    def _embedding(self) -> LlamaCppEmbedder:
        """Made on first use for a generation model: its context costs memory only when asked for."""
        with self._embed_lock:
            if self.embedder is None:
                self.embedder = LlamaCppEmbedder(self.model, num_ctx=self.num_ctx, model_pooling=self.model_pooling)
            return self.embedder

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        return self._generator().submit(req, emit)

    def cancel(self, rid: int) -> None:
        if self.engine is not None:
            self.engine.cancel(rid)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_special and self.model.add_bos)

    def detokenize(self, tokens: list[int]) -> str:
        try:
            return self.model.detokenize(tokens)
        except ValueError as exc:
            raise EngineError(str(exc), 400) from exc

    def info(self) -> RunnerInfo:
        kv = self.model.kv_bytes_per_token() * self.num_ctx * (self.parallel if self.engine else 0)
        if self.embedder is not None:
            kv += self.model.kv_bytes_per_token() * self.num_ctx
        mem = self.model.size_bytes + kv
        gpu = self.details["device"] == "gpu"
        return RunnerInfo(
            engine="llamacpp",
            device=self.details["device"],
            model=self.spec.name,
            context_length=self.model.context_length,
            num_ctx=self.num_ctx,
            parallel=self.parallel,
            memory_bytes=mem,
            vram_bytes=mem if gpu else 0,
            embedding=self.engine is None,
            details={**self.details, "kv_cache_bytes": kv,
                     **({"prefix_cache_hits": self.engine.cache_hits} if self.engine else {})},
        )

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        try:
            return self._embedding().embed(req)
        except ValueError as exc:
            raise EngineError(str(exc), 400) from exc
        except RuntimeError as exc:
            raise EngineError(f"embedding failed: {exc}", 500) from exc
