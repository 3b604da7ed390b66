"""One-token decode steps through `mx.compile`.

mlx-lm's KVCache hands attention its buffer sliced to the current length, so every decode step has
new shapes, and a compiled forward would be traced again each token. Here the step sees the whole
buffer at a fixed capacity, the position arrives as an array, and a mask hides the unused tail, so
one trace serves every step until the buffer has to grow (capacities are powers of two, so a
4,096-token context traces five times at most). The compiled graph fuses the elementwise work and
replays from C++ instead of rebuilding ~25 Python-level ops per layer per token.

Measured (bench/RESULTS.md): +7-12% on a 2-core CPU; 0.7-1.0x on an H100, where mlx-cuda's fused
decode attention takes no array mask and the masked full-buffer attention falls back to separate
kernels. Served on that CPU it gains 3%, so solo.py uses it only with OLLMLX_MLX_COMPILE=1.

The caller's KVCache objects stay valid throughout (buffer, integer offset), so a stream can leave
for the batch, be trimmed or go into the prompt cache at any step.
"""

from __future__ import annotations

import logging
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from ollmlx.runner.engines.mlx import decoder_check

log = logging.getLogger("ollmlx.runner.mlx")

_MIN_CAPACITY = 256


class Slot:
    """What the model sees of one layer's cache inside the compiled step: fixed-size buffers and
    the position as an array (an integer for prefill_buckets' window)."""

    def __init__(self, keys: mx.array, values: mx.array, offset: Any) -> None:
        self.keys, self.values, self.offset = keys, values, offset

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        self.keys = mx.slice_update(self.keys, keys, self.offset, axes=(2,))
        self.values = mx.slice_update(self.values, values, self.offset, axes=(2,))
        return self.keys, self.values

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None) -> mx.array:
        positions = mx.arange(self.keys.shape[2])
        mask = positions[None] <= (self.offset + mx.arange(n))[:, None]
        if window_size is not None:
            mask = mask & (positions[None] > (self.offset + mx.arange(n))[:, None] - window_size)
        return mask


def supports(cache: list[Any]) -> bool:
    """Every layer holds a plain KV cache (no rotating window, quantized or recurrent state)."""
    return bool(cache) and all(type(c) is KVCache for c in cache)


def usable(model: Any) -> bool:
    """Whether the compiled step gives this model's own logits, checked once per model on a short
    prompt. A model that builds its attention mask without asking the cache (or a backend missing
    a primitive) would otherwise decode garbage; it keeps mlx-lm's plain forward instead."""
    return decoder_check.once(model, "_ollmlx_compiled_ok", lambda: _agrees(model))


def _agrees(model: Any) -> bool:
    ok = decoder_check.agrees(model, lambda cache: CompiledDecoder(model, cache) if supports(cache) else None,
                              "compiled decode step")
    if not ok:
        log.warning("compiled decode steps disabled for this model: they disagree with its forward")
    return ok


def _step_function(model: Any, layers: int, compiled: bool = True) -> Any:
    """The model's compiled one-token forward, made once per model: mx.compile keeps a trace per
    input shape, so every stream (and every capacity) on this model shares them. Uncompiled, the
    same fixed-buffer step (bench/probe_compiled_step.py separates the two effects)."""
    cached = getattr(model, "_ollmlx_compiled_step", None)
    if cached is not None and compiled:
        return cached

    def forward(token: mx.array, offset: mx.array, *buffers: mx.array) -> list[mx.array]:
        slots = [Slot(buffers[2 * i], buffers[2 * i + 1], offset) for i in range(layers)]
        logits = model(token.reshape(1, 1), cache=slots)[:, -1, :]
        return [logits, *[b for s in slots for b in (s.keys, s.values)]]

    if not compiled:
        return forward
    step = mx.compile(forward)
    model._ollmlx_compiled_step = step
    return step


class CompiledDecoder:
    """Forward one token at a time through the model's compiled step, over `cache` (a list of
    KVCache that already holds the prompt)."""

    def __init__(self, model: Any, cache: list[KVCache], compiled: bool = True) -> None:
        self.model = model
        self.cache = cache
        self._step = _step_function(model, len(cache), compiled)

    def forward(self, token: mx.array) -> mx.array:
        """Logits (1, vocab) for `token` read at the cache's position; the cache then holds it."""
        if self.cache[0].keys is None:  # nothing read yet: the first token makes the buffers
            return self.model(token.reshape(1, 1), cache=self.cache)[:, -1, :]
        reserve(self.cache)
        offset = self.cache[0].offset
        buffers = [b for c in self.cache for b in (c.keys, c.values)]
        logits, *updated = self._step(token, mx.array([offset], mx.int32), *buffers)
        del buffers  # the step's buffer updates can then happen in place
        for i, c in enumerate(self.cache):
            c.keys, c.values = updated[2 * i], updated[2 * i + 1]
            c.offset = offset + 1
        return logits


def reserve(cache: list[KVCache], fresh: bool = False) -> None:
    """Room for one more token in every buffer, at a power-of-two capacity: each capacity is a
    trace (40-100 ms on a 2-core CPU for a 30-layer model), so a 4,096-token context sees five
    at most, and a buffer is never more than twice what it holds. `fresh`: new buffers even where
    there is room (ones no other array shares)."""
    first = cache[0]
    assert first.keys is not None
    held = first.keys.shape[2]
    if not fresh and first.offset < held and held >= _MIN_CAPACITY and held & (held - 1) == 0:
        return
    capacity = capacity_for(first.offset)
    for c in cache:
        assert c.keys is not None and c.values is not None
        c.keys = extend(c.keys, c.offset, capacity)
        c.values = extend(c.values, c.offset, capacity)


def capacity_for(used: int) -> int:
    """The power-of-two capacity (256 at least) with room for one more token after `used`."""
    return max(_MIN_CAPACITY, 1 << used.bit_length())


def extend(buffer: mx.array, used: int, capacity: int) -> mx.array:
    """A new (batch, heads, capacity, dim) buffer holding the first `used` positions of `buffer`."""
    tail = mx.zeros((*buffer.shape[:2], capacity - used, buffer.shape[3]), buffer.dtype)
    return mx.concatenate([buffer[..., :used, :], tail], axis=2)
