"""One sequence decoded on its own, outside mlx-lm's BatchGenerator.

A lone stream is the common case (one user, one editor), and BatchGenerator serves it slowly: its
batched KV cache builds a padding mask and per-sequence offsets every step. Measured on an H100
with a 1B 4-bit model: BatchGenerator at batch 1 decodes 350-383 tok/s, `generate_step` with a
plain KV cache 598-602 (bench/probe_single.py). So when one sequence is left in the batch, the
engine takes it out with its cache and steps it here, the way `generate_step` does (the next
token's forward is queued before the current one is read). When another request arrives, it goes
back into the batch with its cache. Both moves drop the token drawn ahead and draw it again, so
the output is the one the batch would have produced.
"""

from __future__ import annotations

from typing import Any, cast

import mlx.core as mx
from mlx_lm.generate import TokenBuffer, generation_stream
from mlx_lm.models.cache import trim_prompt_cache


class SoloStream:
    def __init__(self, model: Any, cache: list[Any], tokens: list[int], sampler: Any,
                 processors: list[Any]) -> None:
        """`cache` holds every token of `tokens`, and a token after them was drawn and dropped."""
        self.model = model
        self.cache = cache
        self.history = tokens
        self.sampler = sampler
        self.processors = processors
        self._undraw()
        self._context = TokenBuffer(tokens[:-1]) if processors else None
        self._next = self._forward(mx.array(tokens[-1:]))

    def _undraw(self) -> None:
        """Forget the last token read into the cache and the draw it led to: it is read again."""
        trim_prompt_cache(self.cache, 1)
        rewind = getattr(self.sampler, "rewind", None)
        if rewind is not None:
            rewind()

    def _forward(self, y: mx.array) -> tuple[mx.array, mx.array]:
        with mx.stream(generation_stream):  # the stream generate_step and BatchGenerator compute on
            logits = self.model(y[None], cache=self.cache)[:, -1, :]
            if self._context is not None:
                context = self._context.update_and_fetch(y)
                for processor in self.processors:
                    logits = processor(context, logits)
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            out = (self.sampler(logprobs), logprobs)
        mx.async_eval(*out)
        return out

    def step(self) -> tuple[int, mx.array]:
        """The next token and its log-probabilities; the one after it is already on its way."""
        token, logprobs = self._next
        self._next = self._forward(token)
        value = cast(int, token.item())
        self.history.append(value)
        return value, logprobs[0]

    def leave(self) -> tuple[list[Any], list[int]]:
        """(cache, tokens) to put the sequence back in the batch: the cache holds all tokens but
        the last, which the batch reads again."""
        mx.eval(self._next)
        self._undraw()
        return self.cache, self.history
