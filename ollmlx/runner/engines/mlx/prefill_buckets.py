"""A prompt's last chunk read at a few fixed shapes, so that mlx-cuda's CUDA graphs repeat.

mlx-cuda records a forward's kernels into CUDA graphs and keeps the executable graphs it made,
keyed by their shape of nodes and edges. A forward at shapes it has not seen (a warm turn 2: a few
new tokens over a history of a length no earlier turn had) builds and instantiates new ones: on
an H100, queueing a 28-token forward of an 8B model took 13 ms of host time at a seen shape and
27-45 ms at a new one (bench/RESULTS.md "per-shape costs on mlx-cuda"). Here the last chunk is
padded to a multiple of `TOKENS` tokens, and attention reads the cache's buffer at a power-of-two
capacity with a mask hiding what lies past each token, so a conversation's turns meet the same
few shapes again and again. The padding tokens come after the real ones, so causal attention
keeps them out of every real token's result; their keys and values land past the cache's offset,
where the next write overwrites them.

CUDA only: on a CPU or Metal nothing is recorded into graphs and the padding would only cost.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from ollmlx.runner.engines.mlx import compiled_step, decoder_check
from ollmlx.runner.engines.mlx.compiled_step import Slot, capacity_for, extend

log = logging.getLogger("ollmlx.runner.mlx")

TOKENS = 32  # a chunk's tokens are padded to a multiple of this
MAX_TOKENS = 128  # longer chunks are read as they are: their products, not the host, set the time
_VERDICT = "_ollmlx_prefill_buckets_ok"


def compiled_wanted() -> bool:
    """The bucketed forward through `mx.compile` (one trace per chunk bucket and capacity),
    replayed from C++ instead of built in Python each time; OLLMLX_MLX_PREFILL_COMPILE=0 turns it
    off. Served on an H100 (8B shape, bench/RESULTS.md "A warm turn 2's host time, compiled"),
    building the warm turn's 32-token forward took 1.5-2.6 ms of host time compiled against
    5.0-8.1 ms built in Python."""
    return os.environ.get("OLLMLX_MLX_PREFILL_COMPILE", "1") != "0"


def wanted() -> bool:
    """OLLMLX_MLX_PREFILL_BUCKETS: 1 on, 0 off; unset: on where mlx runs on a CUDA GPU."""
    setting = os.environ.get("OLLMLX_MLX_PREFILL_BUCKETS", "")
    if setting in ("0", "1"):
        return setting == "1"
    from ollmlx.runner.engines.mlx.fused_step import _on_cuda

    return _on_cuda()


def supports(cache: list[Any], n: int) -> bool:
    """A chunk of `n` tokens (2 to MAX_TOKENS) over plain KV caches that already hold tokens: the
    buffers' heads and head size are known (a first chunk makes them, as mlx-lm's cache does)."""
    return 1 < n <= MAX_TOKENS and compiled_step.supports(cache) and cache[0].keys is not None and cache[0].offset > 0


def usable(model: Any) -> bool:
    """Whether the bucketed forward gives the model's own logits, checked once per model: a model
    that builds its attention mask without asking the cache would read the buffer's stale tail."""
    return decoder_check.once(model, _VERDICT, lambda: _agrees(model))


def _agrees(model: Any) -> bool:
    from mlx_lm.models.cache import make_prompt_cache

    try:
        ours, theirs = make_prompt_cache(model), make_prompt_cache(model)
        prompt = mx.array([[1, 2, 3, 4, 5]])
        model(prompt, cache=ours)
        model(prompt, cache=theirs)
        chunk = mx.array([6, 7, 8])
        want = model(chunk[None], cache=theirs)[:, -1, :]
        if not supports(ours, chunk.size):
            return False
        ok = decoder_check.close(forward(model, ours, chunk), want, "bucketed prefill")
        # and a token after it, read through mlx-lm's own cache path: the padding left nothing behind
        ok = ok and decoder_check.close(model(mx.array([[9]]), cache=ours)[:, -1, :],
                                        model(mx.array([[9]]), cache=theirs)[:, -1, :], "after bucketed prefill")
    except Exception:
        log.exception("bucketed prefill unavailable for this model")
        ok = False
    if not ok:
        log.warning("bucketed prefill disabled for this model: it disagrees with its forward")
    return ok


class _Window(Slot):
    """One layer's cache as the bucketed forward sees it: the whole buffer (Slot's mask hides its
    tail), written at an integer offset."""

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        # mlx writes in place where nothing else holds the buffer (forward() dropped the cache's
        # reference) and copies it first otherwise: an array someone else holds never changes
        end = self.offset + keys.shape[2]
        self.keys[..., self.offset:end, :] = keys
        self.values[..., self.offset:end, :] = values
        return self.keys, self.values


def padded_length(n: int) -> int:
    return -(-n // TOKENS) * TOKENS


def forward(model: Any, cache: list[KVCache], tokens: mx.array) -> mx.array:
    """Logits (1, vocab) of the last of `tokens` (1-D) read after what `cache` holds (`supports`);
    the cache then holds them, as after the model's own forward."""
    n = tokens.size
    padded = padded_length(n)
    offset = cache[0].offset
    capacity = capacity_for(offset + padded - 1)
    held = [(c.keys, c.values) for c in cache]
    buffers = []
    for keys, values in held:
        assert keys is not None and values is not None
        if keys.shape[2] > capacity:
            keys, values = keys[..., :capacity, :], values[..., :capacity, :]
        elif keys.shape[2] < capacity:
            keys, values = extend(keys, offset, capacity), extend(values, offset, capacity)
        buffers += [keys, values]
    for c in cache:  # the forward then holds the buffers alone: the writes can happen in place
        c.keys = c.values = None
    ids = mx.concatenate([tokens, mx.zeros((padded - n,), tokens.dtype)]) if padded > n else tokens
    try:
        if compiled_wanted():
            logits, *buffers = _compiled(model, len(cache))(ids[None], mx.array([offset], mx.int32),
                                                            mx.array([n - 1], mx.int32), *buffers)
        else:
            windows = [_Window(buffers[2 * i], buffers[2 * i + 1], offset) for i in range(len(cache))]
            buffers.clear()
            logits = model(ids[None], cache=windows)[:, n - 1, :]
            buffers = [b for w in windows for b in (w.keys, w.values)]
    except BaseException:
        for c, (keys, values) in zip(cache, held):
            c.keys, c.values = keys, values
        raise
    del held
    for i, c in enumerate(cache):
        c.keys, c.values, c.offset = buffers[2 * i], buffers[2 * i + 1], offset + n
    return logits


def _compiled(model: Any, layers: int) -> Any:
    """The model's bucketed forward under mx.compile, made once per model and thread (a function
    traced in one thread is not run from another); mx.compile keeps a trace per input shape."""
    key = f"_ollmlx_bucketed_{threading.get_ident()}"
    step = getattr(model, key, None)
    if step is None:
        def forward(ids: mx.array, offset: mx.array, last: mx.array, *buffers: mx.array) -> list[mx.array]:
            slots = [Slot(buffers[2 * i], buffers[2 * i + 1], offset) for i in range(layers)]
            logits = mx.take(model(ids, cache=slots)[0], last, axis=0)
            return [logits, *[b for s in slots for b in (s.keys, s.values)]]

        step = mx.compile(forward)
        object.__setattr__(model, key, step)
    return step


WARM_UP_TO = 8192  # capacities warmed at load: past this, the scratch cache's memory (1 GB for an 8B)


def warm(model: Any, num_ctx: int, prompt_chunk: int = 0) -> int:
    """Read a short chunk once at every capacity up to `num_ctx` (WARM_UP_TO at most), at load: a
    conversation's first short turn at a capacity then finds its graphs built. Returns how many
    capacities.

    First, `prompt_chunk` tokens through the model's own forward, as a long prompt's chunks are
    read: the compiled chunks below run fused kernels in place of the plain ones, and what they
    left unbuilt the first long prompt built instead (an 8B on an H100: the first cold 2,000-token
    prompt after load took 294 ms with the compiled warm-up, 205 ms with the plain one, 154 ms the
    second time)."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    if not compiled_step.supports(cache):
        return 0
    if prompt_chunk > 1:
        mx.eval(model(mx.ones((1, min(prompt_chunk, num_ctx)), mx.int32), cache=make_prompt_cache(model)))
    model(mx.array([[1]]), cache=cache)
    chunk = mx.ones((TOKENS,), mx.int32)
    capacities = 0
    capacity = capacity_for(0)
    while capacity <= max(min(num_ctx, WARM_UP_TO), capacity_for(0)):
        offset = capacity - TOKENS
        for c in cache:
            c.keys, c.values = extend(c.keys, 1, capacity), extend(c.values, 1, capacity)
            c.offset = offset
        mx.eval(forward(model, cache, chunk))
        capacities += 1
        capacity *= 2
    return capacities
