"""The MLX engine behind the runner's Engine protocol."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ollmlx.runner.engine_api import Emit, EngineError
from ollmlx.runner.engines.mlx import host
from ollmlx.runner.engines.mlx.distributed import RankGroup, exit_soon, lead
from ollmlx.runner.engines.mlx.embed import (
    EmbedEngine,
    decoder_embedder,
    is_embedding_spec,
    load_embedding_model,
)
from ollmlx.runner.engines.mlx.engine import MLXEngine
from ollmlx.runner.engines.mlx.loader import load
from ollmlx.runner.engines.mlx.lockstep import LockstepEngine
from ollmlx.runner.engines.mlx.vision import VisionEngine, is_vision_spec, load_vision
from ollmlx.runner.protocol import (
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelSpec,
    RunnerInfo,
)

log = logging.getLogger("ollmlx.runner.mlx")


class MLXRunnerEngine:
    def __init__(self, spec: ModelSpec, num_ctx: int, parallel: int, group: RankGroup | None = None) -> None:
        self.spec = spec
        self.embedder: EmbedEngine | None = None
        self.engine: MLXEngine | None = None
        self.vision: VisionEngine | None = None
        self._embed_lock = threading.Lock()
        self.ranks: list[dict[str, Any]] = []  # the group's ranks when the model is split across them
        if group is not None and self._start_split(group, num_ctx, parallel):
            return
        if is_embedding_spec(spec):  # an embedding model: no generation engine at all
            self.embedder = load_embedding_model(spec, num_ctx)
            self.details = host.tune_for_host(self.embedder.model, generates=False)
            self.num_ctx, self.parallel = self.embedder.num_ctx, 1
            log.info("mlx embedding engine ready: %s num_ctx=%d %s", spec.name, self.num_ctx, self.details)
            return
        if is_vision_spec(spec):  # a vision-language model: mlx-vlm, one request at a time
            vlm = load_vision(spec)
            self.details = host.tune_for_host(vlm.model, generates=False)  # mlx-vlm decodes
            self.num_ctx = min(num_ctx, vlm.context_length) if num_ctx > 0 else vlm.context_length
            self.parallel = 1
            self.vision = VisionEngine(vlm, num_ctx=self.num_ctx)
            self.vision.start()
            log.info("mlx vision engine ready: %s num_ctx=%d %s", spec.name, self.num_ctx, self.details)
            return
        self.loaded = load(spec)
        self.details = host.tune_for_host(self.loaded.model)
        self.num_ctx = min(num_ctx, self.loaded.context_length) if num_ctx > 0 else self.loaded.context_length
        self.parallel = parallel if parallel > 0 else host.default_parallel(self.loaded.config, self.num_ctx)
        self.engine = MLXEngine(self.loaded, num_ctx=self.num_ctx, parallel=self.parallel)
        self.engine.start()
        log.info("mlx engine ready: %s num_ctx=%d parallel=%d %s", spec.name, self.num_ctx, self.parallel, self.details)

    def _start_split(self, group: RankGroup, num_ctx: int, parallel: int) -> bool:
        """Rank 0 of a group (docs/distributed.md): the model split across the ranks, served by a
        lock-step engine. False when the model is not split (embedding, vision): load it here."""
        sharded = lead(group, self.spec, num_ctx, parallel, os.environ.get("OLLMLX_DISTRIBUTED_MODE", "auto"))
        if sharded is None:
            return False
        self.loaded, self.details, self.ranks = sharded.loaded, sharded.details, sharded.ranks
        self.num_ctx, self.parallel = sharded.num_ctx, sharded.parallel
        self.engine = LockstepEngine(self.loaded, group, num_ctx=self.num_ctx, parallel=self.parallel,
                                     on_lost=exit_soon("a rank of the group is gone"))
        self.engine.start()
        log.info("mlx engine ready on %d ranks: %s num_ctx=%d parallel=%d %s", group.size, self.spec.name,
                 self.num_ctx, self.parallel, [r["role"] for r in self.ranks])
        return True

    def _generator(self) -> MLXEngine | VisionEngine:
        if self.vision is not None:
            return self.vision
        if self.engine is None:  # the server checks capabilities first; this guards the runner itself
            raise EngineError("this model does not support generate", 400)
        return self.engine

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        if req.images and self.vision is None:  # as Ollama's MLX runner answers a text-only model
            raise EngineError("this model does not support image input", 500)
        return self._generator().submit(req, emit)

    def cancel(self, rid: int) -> None:
        if self.engine is not None or self.vision is not None:
            self._generator().cancel(rid)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return (self.engine or self.vision or self._embedding()).tokenize(text, add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return (self.engine or self.vision or self._embedding()).detokenize(tokens)

    def info(self) -> RunnerInfo:
        mem = host.memory_bytes()
        gpu = host.device_name() == "gpu"
        return RunnerInfo(
            engine="mlx",
            device=host.device_name(),
            model=self.spec.name,
            context_length=self.vision.loaded.context_length if self.vision
            else self.embedder.context_length if self.engine is None and self.embedder
            else self.loaded.context_length,
            num_ctx=self.num_ctx,
            parallel=self.parallel,
            memory_bytes=mem,
            vram_bytes=mem if gpu else 0,
            embedding=self.engine is None and self.vision is None,
            details={**self.details, **({"ranks": self.ranks} if self.ranks else {}),
                     **({"prefix_cache_hits": self.engine.cache_hits,
                         "prefix_cache_bytes": self.engine.prompt_cache.nbytes} if self.engine else {})},
        )

    def _embedding(self) -> EmbedEngine:
        """The embedding engine; for a generation model it shares the loaded weights (decoder pooling)."""
        if self.vision is not None:
            raise EngineError("this model does not support embeddings", 400)
        if self.ranks:  # its forward passes belong to the lock-step loop of the group
            raise EngineError("embeddings are not available from a model split across ranks", 400)
        with self._embed_lock:
            if self.embedder is None:
                self.embedder = decoder_embedder(self.loaded, self.spec, self.num_ctx)
            return self.embedder

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        return self._embedding().embed(req)


def _default_parallel() -> int:
    # CPU hosts gain little past a few streams; GPUs batch many more for nearly free.
    return 4 if host.device_name() == "cpu" else int(os.environ.get("OLLMLX_GPU_PARALLEL", "16"))
