"""Ollama's sampling options on top of mlx-lm's filters and logits processors.

Order as llama.cpp (what Ollama runs): penalties → top_k → typical_p → top_p → min_p →
temperature → draw. Each sequence owns its PRNG key, so a seed reproduces its output whatever
else shares the batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors

from ollmlx.runner.protocol import SamplingOptions

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


def greedy(logprobs: mx.array) -> mx.array:
    return mx.argmax(logprobs, axis=-1)


def apply_typical(logprobs: mx.array, typical_p: float) -> mx.array:
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy."""
    probs = mx.exp(logprobs)
    entropy = -mx.sum(mx.where(probs > 0, probs * logprobs, 0.0), axis=-1, keepdims=True)
    shifted = mx.abs(-logprobs - entropy)
    order = mx.argsort(shifted, axis=-1)
    sorted_probs = mx.take_along_axis(probs, order, axis=-1)
    cum = mx.cumsum(sorted_probs, axis=-1)
    # keep a token while the mass before it is below typical_p (always keep the first)
    keep_sorted = (cum - sorted_probs) < typical_p
    inverse = mx.argsort(order, axis=-1)
    keep = mx.take_along_axis(keep_sorted, inverse, axis=-1)
    return mx.where(keep, logprobs, -float("inf"))


class SeededSampler:
    """Ollama's filters, then a draw with this sequence's own key. `rewind` takes back the last
    draw's key: a sequence moving between the batch and the solo path (solo.py) drops a token
    drawn ahead and draws it again, and must get the same one."""

    def __init__(self, opts: SamplingOptions) -> None:
        self.opts = opts
        seed = opts.seed if opts.seed >= 0 else random.getrandbits(63)
        self._key = mx.random.key(seed)
        self._prev = self._key

    def __call__(self, logprobs: mx.array) -> mx.array:
        opts, x = self.opts, logprobs
        if opts.top_k > 0:
            x = apply_top_k(x, opts.top_k)
        if 0 < opts.typical_p < 1:
            x = apply_typical(x, opts.typical_p)
        if 0 < opts.top_p < 1:
            x = apply_top_p(x, opts.top_p)
        if opts.min_p > 0:
            x = apply_min_p(x, opts.min_p)
        self._prev = self._key
        self._key, sub = mx.random.split(self._key)
        return mx.random.categorical(x * (1.0 / opts.temperature), key=sub)

    def rewind(self) -> None:
        self._key = self._prev


def make_sampler(opts: SamplingOptions) -> Sampler:
    return greedy if opts.temperature <= 0 else SeededSampler(opts)


def make_processors(opts: SamplingOptions, num_ctx: int) -> list[LogitsProcessor]:
    window = num_ctx if opts.repeat_last_n < 0 else opts.repeat_last_n
    if window == 0:
        return []
    return make_logits_processors(
        repetition_penalty=opts.repeat_penalty if opts.repeat_penalty not in (0, 1) else None,
        repetition_context_size=window,
        presence_penalty=opts.presence_penalty or None,
        presence_context_size=window,
        frequency_penalty=opts.frequency_penalty or None,
        frequency_context_size=window,
    )
