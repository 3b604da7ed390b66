"""One sequence decoded on its own, outside mlx-lm's BatchGenerator.

A lone stream is the common case (one user, one editor), and BatchGenerator serves it slowly: its
batched KV cache builds a padding mask and per-sequence offsets every step. Measured on an H100
with a 1B 4-bit model: BatchGenerator at batch 1 decodes 350-383 tok/s, `generate_step` with a
plain KV cache 598-602 (bench/probe_single.py). So when one sequence is left in the batch, the
engine takes it out with its cache and steps it here, the way `generate_step` does (the next
token's forward is queued before the current one is read). When another request arrives, it goes
back into the batch with its cache. Both moves drop the token drawn ahead and draw it again, so
the output is the one the batch would have produced. A request that finds the engine idle starts
here: its prompt is read in chunks (the engine checks for new requests between them) and the last
chunk's forward draws the first token (on CUDA at a few fixed shapes: prefill_buckets.py). On CUDA
(unless OLLMLX_MLX_FUSED=0), a 4-bit Llama-family model's decode steps run fused kernels as one
compiled step (fused_step.py); with OLLMLX_MLX_COMPILE=1, other models a compiled forward
(compiled_step.py).
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import mlx.core as mx
from mlx_lm.generate import TokenBuffer, generation_stream
from mlx_lm.models.cache import trim_prompt_cache

from ollmlx.runner.engines.mlx import compiled_step, fused_step, prefill_buckets

log = logging.getLogger(__name__)


class SoloStream:
    """A sequence's cache, the tokens it holds, and the prompt tokens still to read."""

    def __init__(self, model: Any, cache: list[Any], cached: list[int], rest: list[int], sampler: Any,
                 processors: list[Any], prefill_step: int = 512) -> None:
        """`cache` holds `cached`; `rest` (at least one token) is read by `prefill`, in chunks."""
        self.model = model
        self.cache = cache
        self.tokens = list(cached)  # what the cache holds (or has queued)
        self.sampler = sampler
        self.processors = processors
        self.prefill_step = prefill_step
        self._pending = list(rest)
        self._context = TokenBuffer(cached) if processors else None
        self._next: tuple[mx.array, mx.array] | None = None
        self._first = True  # no token handed out yet
        self._held: mx.array | None = None  # a token read without its forward queued (step)
        self._decoder = _decoder(model, cache)
        self._buckets = prefill_buckets.wanted() and prefill_buckets.usable(model)

    @classmethod
    def from_batch(cls, model: Any, cache: list[Any], tokens: list[int], sampler: Any,
                   processors: list[Any]) -> SoloStream:
        """A sequence out of BatchGenerator: `cache` holds all `tokens`, and a token after them was
        drawn and dropped. The last token is read again, to draw that one again."""
        _undraw(cache, sampler)
        solo = cls(model, cache, tokens[:-1], tokens[-1:], sampler, processors)
        solo._first = False  # the sequence's first token went out from the batch: keep the pipelining
        solo.prefill()
        return solo

    @property
    def ready(self) -> bool:
        """The prompt is read: `step` gives tokens."""
        return self._next is not None

    def prefill(self) -> None:
        """Read the next chunk of the prompt; the last chunk also draws the first token (one
        forward, where BatchGenerator spends a second one on the prompt's last token)."""
        chunk, self._pending = self._pending[:self.prefill_step], self._pending[self.prefill_step:]
        if self._pending:
            with mx.stream(generation_stream):
                self.model(mx.array(chunk)[None], cache=self.cache)
                if self._context is not None:
                    self._context.update_and_fetch(mx.array(chunk))
                mx.eval([c.state for c in self.cache])
        else:
            self._next = self._forward(mx.array(chunk))
        self.tokens += chunk

    def _forward(self, y: mx.array) -> tuple[mx.array, mx.array]:
        with mx.stream(generation_stream):  # the stream generate_step and BatchGenerator compute on
            logits = self._decoded(y) if self._decoder is not None and y.size == 1 else None
            if logits is None and self._buckets and prefill_buckets.supports(self.cache, y.size):
                logits = prefill_buckets.forward(self.model, self.cache, y)
            if logits is None:
                logits = self.model(y[None], cache=self.cache)[:, -1, :]
            if self._context is not None:
                context = self._context.update_and_fetch(y)
                for processor in self.processors:
                    logits = processor(context, logits)
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            out = (self.sampler(logprobs), logprobs)
        mx.async_eval(*out)
        return out

    def _decoded(self, y: mx.array) -> mx.array | None:
        """The decoder's logits for one token, or None after taking the stream (and, for the fused
        step, the model) back to the model's own forward when the decoder fails."""
        offset = self.cache[0].offset
        try:
            return cast(mx.array, self._decoder.forward(y))
        except Exception:
            log.exception("decode step fell back to the model's forward")
            trim_prompt_cache(self.cache, self.cache[0].offset - offset)
            if isinstance(self._decoder, fused_step.FusedDecoder):
                fused_step.disable(self.model)
            self._decoder = None
            return None

    def step(self) -> tuple[int, mx.array]:
        """The next token and its log-probabilities; the one after it is already on its way,
        except after the first token, whose successor's forward waits for the next call."""
        self.settle()
        assert self._next is not None
        token, logprobs = self._next
        if self._first:
            # The first token goes out before the second's forward is queued: queued first, that
            # forward came before the first token (time to first token) - on a CPU all of it
            # (SmolLM2 on a 2-core host: ~120 ms of a ~570 ms warm turn 2).
            self._first = False
            self._held = token
        else:
            self._next = self._forward(token)
        value = cast(int, token.item())
        self.tokens.append(value)
        return value, logprobs[0]

    def settle(self) -> None:
        """Queue the forward step() held back after the first token: then, as after every other
        step, the cache holds all `tokens` and the token after them is drawn."""
        if self._held is not None:
            self._next = self._forward(self._held)
            self._held = None

    def leave(self) -> tuple[list[Any], list[int], list[int]]:
        """(cache, the tokens it holds, the tokens still to read) to put the sequence in the batch.
        Once decoding, the last token is handed back unread and its draw taken back."""
        if self._next is None:
            return self.cache, self.tokens, self._pending
        self.settle()
        mx.eval(self._next)
        _undraw(self.cache, self.sampler)
        return self.cache, self.tokens[:-1], self.tokens[-1:]


def _decoder(model: Any, cache: list[Any]) -> Any:
    """What steps a lone stream one token at a time: the fused CUDA step (fused_step.py), the
    compiled step (OLLMLX_MLX_COMPILE=1), or None for the model's own forward."""
    if fused_step.supports(cache) and fused_step.usable(model):
        return fused_step.FusedDecoder(model, cache)
    if compile_enabled() and compiled_step.supports(cache) and compiled_step.usable(model):
        return compiled_step.CompiledDecoder(model, cache)
    return None


def compile_enabled() -> bool:
    """Off unless OLLMLX_MLX_COMPILE=1. Measured (bench/RESULTS.md): +7-12% at engine level on a
    2-core CPU but +3% served, for ~0.6 s more per model load and 0.1-0.2 s per new buffer
    capacity; 0.7-1.0x on an H100, where the masked full-buffer attention loses mlx-cuda's fused
    decode kernel."""
    return os.environ.get("OLLMLX_MLX_COMPILE", "0") == "1"


def _undraw(cache: list[Any], sampler: Any) -> None:
    """Forget the last token read into the cache and the draw it led to: it is read again."""
    trim_prompt_cache(cache, 1)
    rewind = getattr(sampler, "rewind", None)
    if rewind is not None:
        rewind()
