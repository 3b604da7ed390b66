"""The MLX engine behind the runner's Engine protocol."""

from __future__ import annotations

import logging
import os

from ollmlx.runner.engine_api import Emit, EngineError
from ollmlx.runner.engines.mlx import host
from ollmlx.runner.engines.mlx.engine import MLXEngine
from ollmlx.runner.engines.mlx.loader import load
from ollmlx.runner.protocol import (
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelSpec,
    RunnerInfo,
)

log = logging.getLogger("ollmlx.runner.mlx")


class MLXRunnerEngine:
    def __init__(self, spec: ModelSpec, num_ctx: int, parallel: int) -> None:
        self.spec = spec
        self.loaded = load(spec)
        self.details = host.tune_for_host(self.loaded.model)
        self.num_ctx = min(num_ctx, self.loaded.context_length) if num_ctx > 0 else self.loaded.context_length
        self.parallel = parallel if parallel > 0 else _default_parallel()
        self.engine = MLXEngine(self.loaded, num_ctx=self.num_ctx, parallel=self.parallel)
        self.engine.start()
        log.info("mlx engine ready: %s num_ctx=%d parallel=%d %s", spec.name, self.num_ctx, self.parallel, self.details)

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        return self.engine.submit(req, emit)

    def cancel(self, rid: int) -> None:
        self.engine.cancel(rid)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return self.engine.tokenize(text, add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.engine.detokenize(tokens)

    def info(self) -> RunnerInfo:
        mem = host.memory_bytes()
        gpu = host.device_name() == "gpu"
        return RunnerInfo(
            engine="mlx",
            device=host.device_name(),
            model=self.spec.name,
            context_length=self.loaded.context_length,
            num_ctx=self.num_ctx,
            parallel=self.parallel,
            memory_bytes=mem,
            vram_bytes=mem if gpu else 0,
            details={**self.details, "prefix_cache_hits": self.engine.cache_hits,
                     "prefix_cache_bytes": self.engine.prompt_cache.nbytes},
        )

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        raise EngineError("this model does not support embeddings", 400)


def _default_parallel() -> int:
    # CPU hosts gain little past a few streams; GPUs batch many more for nearly free.
    return 4 if host.device_name() == "cpu" else int(os.environ.get("OLLMLX_GPU_PARALLEL", "16"))
