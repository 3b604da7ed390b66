"""Pooled embeddings on llama.cpp (`/api/embed`, `/api/embeddings`), for embedding models and,
like Ollama, for generation models too.

A second llama context with embeddings on serves them, so generation streams keep their own
context. The pooling is the GGUF's `pooling_type` when it has one (BERT-style models), else mean
over the final hidden states (a generation model: the same rule as the mlx engine). Vectors are
returned raw; the server normalises them for /api/embed.
"""

from __future__ import annotations

import threading
from typing import Any

import llama_cpp
import numpy as np

from ollmlx.runner.context_window import fit_embedding_input
from ollmlx.runner.engines.llamacpp import host
from ollmlx.runner.engines.llamacpp.model import LlamaCppModel, free_context
from ollmlx.runner.protocol import EmbeddingRequest, EmbeddingResponse


class LlamaCppEmbedder:
    def __init__(self, model: LlamaCppModel, *, num_ctx: int, model_pooling: bool, max_seqs: int = 8) -> None:
        self.model = model
        self.num_ctx = num_ctx
        self.max_seqs = max_seqs
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = num_ctx
        # a sequence's pooled vector comes from one micro-batch, and non-causal (BERT) attention
        # needs the whole sequence at once: a batch holds num_ctx tokens
        params.n_batch = params.n_ubatch = num_ctx
        params.n_seq_max = max_seqs
        params.kv_unified = True  # the inputs of one pass share the num_ctx cells
        params.embeddings = True
        params.pooling_type = (llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED if model_pooling
                               else llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        params.n_threads = params.n_threads_batch = host.threads()
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model.ptr, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create an embedding context")
        self.ctx: Any = ctx
        self.memory: Any = llama_cpp.llama_get_memory(ctx)
        self.batch: Any = llama_cpp.llama_batch_init(num_ctx, 0, 1)
        self.n_embd = int(llama_cpp.llama_model_n_embd_out(model.ptr) or llama_cpp.llama_model_n_embd(model.ptr))
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            free_context(self.ctx, self.batch)
            self.ctx = self.batch = None

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        """Raises ValueError for inputs it refuses (too long without truncation, empty)."""
        limit = min(n for n in (req.num_ctx, self.num_ctx, self.model.context_length) if n and n > 0)
        seqs = [fit_embedding_input(self.model.tokenize(text, True), self.model.tokenize(text, False), limit,
                                    truncate=req.truncate) for text in req.inputs]
        if any(not s for s in seqs):
            raise ValueError("cannot embed an empty input: it has no tokens")
        vectors: list[list[float]] = [[] for _ in seqs]
        with self._lock:
            group: list[int] = []
            used = 0
            for i, s in enumerate(seqs):
                if group and (used + len(s) > self.num_ctx or len(group) == self.max_seqs):
                    self._pass(group, seqs, vectors)
                    group, used = [], 0
                group.append(i)
                used += len(s)
            if group:
                self._pass(group, seqs, vectors)
        return EmbeddingResponse(embeddings=vectors, prompt_eval_count=sum(len(s) for s in seqs))

    def _pass(self, group: list[int], seqs: list[list[int]], vectors: list[list[float]]) -> None:
        """One llama_decode over several inputs, each its own sequence id; pooled per sequence."""
        if not self.ctx:
            raise RuntimeError("the embedding context is closed")
        llama_cpp.llama_memory_clear(self.memory, True)
        batch = self.batch
        batch.n_tokens = 0
        for seq_id, i in enumerate(group):
            for pos, token in enumerate(seqs[i]):
                j = batch.n_tokens
                batch.token[j] = token
                batch.pos[j] = pos
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq_id
                batch.logits[j] = True
                batch.n_tokens = j + 1
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            why = host.take_errors()
            raise RuntimeError(why[0] if why else f"llama_decode returned {rc}")
        for seq_id, i in enumerate(group):
            ptr = llama_cpp.llama_get_embeddings_seq(self.ctx, seq_id)
            if not ptr:
                raise RuntimeError("llama.cpp returned no pooled embedding")
            vectors[i] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).astype(np.float64).tolist()
