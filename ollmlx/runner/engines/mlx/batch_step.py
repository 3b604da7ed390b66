"""A batch's decode step on CUDA as one compiled call (on by default on CUDA;
OLLMLX_MLX_BATCH_FUSED=0 turns it off; issues 4 and 7).

mlx-lm's BatchGenerator decodes every live sequence together: each step calls the model on
(sequences, 1) tokens over BatchKVCaches. On mlx-cuda that step is bound by its many small
kernels, not by reading the weights: an 8B 4-bit model's 16-sequence step took 16.7 ms on an H100
where its matrix products take ~9 (bench/probe_batch_step.py). The cache slices, the mask built
each step and the cache writes make new shapes every token, so the step cannot be compiled as it
is.

Here the step sees each layer's KV buffers at a fixed capacity (a power of two), and the position
as an array; ollmlx's attention kernel (cuda_attention.py) reads each sequence's live positions,
from its left padding to the new token, and writes the tokens' keys and values into the buffers
in place. The rest of each block is the model's own modules (norms, projections, RoPE with
per-sequence offsets, MLP). So the whole step, every layer, is one mx.compile, traced once per
batch size and capacity: one call from Python, and the elementwise work fused.

It applies to mlx-lm's Llama blocks (Llama, Mistral, SmolLM2 and other `llama` model types) with
16-bit activations and a head size the attention kernel takes, at any weight quantization. `usable`
checks it against the model's own batched forward once per model and keeps the plain step when
they differ. The kernel writes only into buffers this step made (`_room`); a batch whose buffers
changed (a sequence joined or left, the cache grew) is copied once first.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx import decoder_check, fused_step
from ollmlx.runner.engines.mlx.compiled_step import capacity_for, extend

log = logging.getLogger("ollmlx.runner.mlx")

_VERDICT = "_ollmlx_batch_step_ok"


def enabled() -> bool:
    return os.environ.get("OLLMLX_MLX_BATCH_FUSED", "1") != "0" and fused_step._on_cuda()


def matches(model: Any) -> bool:
    """mlx-lm Llama blocks with 16-bit activations and heads the attention kernel reads."""
    from ollmlx.runner.engines.mlx.cuda_attention import takes

    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if inner is None or not layers or type(model).__module__ not in fused_step._BLOCK_MODULES:
        return False
    if not isinstance(getattr(inner, "norm", None), nn.RMSNorm) or inner.norm.weight.dtype not in (
            mx.bfloat16, mx.float16):
        return False
    for layer in layers:
        a = layer.self_attn
        if getattr(layer, "use_sliding", False) or not takes(a.n_heads, a.n_kv_heads, _head_dim(a)):
            return False
    return True


def _head_dim(attn: Any) -> int:
    return int(attn.q_proj.weight.shape[0]) // int(attn.n_heads)


def supports(cache: list[Any]) -> bool:
    """BatchKVCaches holding a prompt already, with nothing pending from a prompt's right padding."""
    from mlx_lm.models.cache import BatchKVCache

    return bool(cache) and all(
        type(c) is BatchKVCache and c.keys is not None and c._right_padding is None for c in cache)


class BatchStep:
    """step(tokens (B, 1), caches) -> logits (B, 1, vocab), advancing the BatchKVCaches as the
    model's forward would. One per engine thread (a function mx.compile traced in one thread is
    not run from another)."""

    def __init__(self, model: Any, compiled: bool = True, reference: bool = False) -> None:
        """`reference`: attention from mlx ops that returns new buffers instead of writing in
        place (ReferenceAttention; the seam that runs this step on hosts without CUDA)."""
        from ollmlx.runner.engines.mlx.cuda_attention import DecodeAttention

        self.model = model
        inner = model.model
        dtype = inner.norm.weight.dtype
        self.attend: list[Any] = [
            (ReferenceAttention(layer.self_attn.scale) if reference else
             DecodeAttention(layer.self_attn.n_heads, layer.self_attn.n_kv_heads, _head_dim(layer.self_attn),
                             layer.self_attn.scale, dtype))
            for layer in inner.layers]
        self._fn = mx.compile(self._forward) if compiled else self._forward
        self._owned: list[tuple[Any, Any]] | None = None
        self.steps = 0  # steps taken (tests, /info)

    def _forward(self, tokens: mx.array, pos: mx.array, first: mx.array, *buffers: mx.array) -> list[mx.array]:
        model, inner = self.model, self.model.model
        batch = tokens.shape[0]
        offsets = pos - first  # each sequence's position of its token, for RoPE
        h = inner.embed_tokens(tokens)
        written: list[mx.array] = []
        for i, layer in enumerate(inner.layers):
            a = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.rope(a.q_proj(x).reshape(batch, a.n_heads, 1, -1), offset=offsets)
            k = a.rope(a.k_proj(x).reshape(batch, a.n_kv_heads, 1, -1), offset=offsets)
            v = a.v_proj(x).reshape(batch, a.n_kv_heads, 1, -1)
            o = self.attend[i](q, k, v, buffers[2 * i], buffers[2 * i + 1], pos, first)
            if isinstance(o, tuple):  # the reference attention's new buffers
                o, *kv = o
                written += kv
            h = h + a.o_proj(o.reshape(batch, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        h = inner.norm(h)
        logits = model.lm_head(h) if hasattr(model, "lm_head") else inner.embed_tokens.as_linear(h)
        return [logits, *written]

    def __call__(self, tokens: mx.array, cache: list[Any]) -> mx.array:
        self._room(cache)
        self.steps += 1
        idx = cache[0]._idx
        first = cache[0].left_padding.astype(mx.int32)
        buffers = [b for c in cache for b in (c.keys, c.values)]
        logits, *written = self._fn(tokens.reshape(-1), mx.array([idx], dtype=mx.int32), first, *buffers)
        if written:
            for c, k, v in zip(cache, written[::2], written[1::2]):
                c.keys, c.values = k, v
            self._owned = [(c.keys, c.values) for c in cache]
        offset = (idx + 1) - first  # one lazy array shared by the layers, not a chain of adds
        for c in cache:
            c._idx = idx + 1
            c.offset = offset
        return logits[:, None, :]

    def _room(self, cache: list[Any]) -> None:
        """Buffers with room for the token, made here and shared with no other array: a batch
        whose buffers this step did not make (new, joined, filtered, grown by the model) is copied
        once into buffers of a power-of-two capacity."""
        idx = cache[0]._idx
        mine = self._owned is not None and len(self._owned) == len(cache) and all(
            c.keys is k and c.values is v for c, (k, v) in zip(cache, self._owned))
        if mine and idx < cache[0].keys.shape[2]:
            return
        cap = capacity_for(idx)
        for c in cache:
            c.keys, c.values = (extend(b, idx, cap) for b in (c.keys, c.values))
        self._owned = [(c.keys, c.values) for c in cache]

    def release(self) -> None:
        self._owned = None


class ReferenceAttention:
    """DecodeAttention's arithmetic from mlx ops, returning the written buffers: what tests run the
    batch step with where the CUDA kernel cannot run."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, q: mx.array, k: mx.array, v: mx.array, keys: mx.array, values: mx.array,
                 pos: mx.array, first: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        keys = mx.slice_update(keys, k, pos, axes=(2,))
        values = mx.slice_update(values, v, pos, axes=(2,))
        at = mx.arange(keys.shape[2])
        live = (at[None] >= first[:, None]) & (at[None] <= pos)
        o = mx.fast.scaled_dot_product_attention(q, keys, values, scale=self.scale, mask=live[:, None, None, :])
        return o, keys, values


class BatchedModel:
    """The model as BatchGenerator sees it: decode steps over BatchKVCaches go through the
    compiled batch step, every other call (prompts, other caches) to the model itself."""

    def __init__(self, model: Any, step: BatchStep) -> None:
        self._model = model
        self._step: BatchStep | None = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, inputs: mx.array, cache: Any = None, **kwargs: Any) -> mx.array:
        step = self._step
        if (step is not None and not kwargs and cache is not None and inputs.ndim == 2 and inputs.shape[1] == 1
                and supports(cache)):
            try:
                return step(inputs, cache)
            except Exception:  # a kernel that fails here: the plain step from now on
                log.exception("batched decode step failed; using the model's own forward")
                self._step = None
                disable(self._model)
        return self._model(inputs, cache=cache, **kwargs)


def disable(model: Any) -> None:
    object.__setattr__(model, _VERDICT, False)


def usable(model: Any) -> bool:
    """enabled(), matching, and agreeing with the model's own batched forward (once per model)."""
    return decoder_check.once(model, _VERDICT, lambda: enabled() and matches(model) and agrees(model))


def agrees(model: Any, steps: int = 3, reference: bool = False) -> bool:
    """The batch step against the model's forward over BatchKVCaches for three left-padded prompts
    of different lengths: every step's logits within 5% of the largest logit."""
    from mlx_lm.models.cache import BatchKVCache

    try:
        lengths = (3, 7, 5)
        longest = max(lengths)
        pads = [longest - n for n in lengths]
        prompt = mx.array([[0] * p + [(3 * j + 11 * i) % 50 + 1 for j in range(n)]
                           for i, (p, n) in enumerate(zip(pads, lengths))])
        layers = len(model.model.layers)
        ours, theirs = ([BatchKVCache(pads) for _ in range(layers)] for _ in range(2))
        model(prompt, cache=ours)
        model(prompt, cache=theirs)
        step = BatchStep(model, reference=reference)
        for t in range(steps):
            tokens = mx.array([[5 + t], [9 + t], [13 + t]])
            want = model(tokens, cache=theirs)[:, -1, :]
            if not decoder_check.close(step(tokens, ours)[:, -1, :], want, "batched decode step"):
                return False
        return True
    except Exception:
        log.exception("batched decode step unavailable for this model")
        return False
