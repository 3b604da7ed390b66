"""A lone stream's decode step on CUDA with fewer, fused kernels (on by default on CUDA;
OLLMLX_MLX_FUSED=0 turns it off, =layers keeps the per-layer form; issue 7).

mlx-lm's Llama block runs ~18 kernels per layer for one token; on mlx-cuda a step of a 4-bit
model is bound by those launches and by the host building them, not by reading the weights.
This step runs the same block as five kernels (cuda_kernels.py, cuda_attention.py):

    q, k, v = rope([Wq; Wk; Wv] @ rmsnorm(h)) one kernel (norm and RoPE folded in)
    k, v into the cache; attention            one kernel (fixed-capacity buffers, in place)
    h = h + Wo @ attn                         one kernel (residual folded in)
    m = silu(Wg @ rmsnorm(h)) * (Wu @ rmsnorm(h))   one kernel
    h = h + Wd @ m                            one kernel

and the whole step, every layer, is one mx.compile traced once per buffer capacity: one call
from Python per token. Served on an H100 (bench/RESULTS.md "The whole step as one compiled
call"): 8B shape 263-270 tok/s against raw mlx-lm's 153-167 (1.58-1.74x), 1B 1.26-1.71x.
With OLLMLX_MLX_FUSED=layers, the four products run as compiled calls per layer around the
model's own KV cache and mlx's attention (1.43-1.61x the model's forward, 8B).

It applies to models whose blocks are mlx-lm's Llama blocks (Llama, Mistral, SmolLM2 and other
`llama` model types) with 4-bit affine weights, and to plain KV caches. `usable` checks the fused
step against the model's own forward once per model and keeps the plain path when they differ.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx import decoder_check
from ollmlx.runner.engines.mlx.compiled_step import reserve

_VERDICT = "_ollmlx_fused_ok"  # kept on the model object: one check per loaded model
_BLOCK_MODULES = ("mlx_lm.models.llama",)


def enabled() -> bool:
    """On a CUDA GPU unless OLLMLX_MLX_FUSED=0; 9-30 s more at the first load on a machine (the
    kernels' builds, then cached by mlx)."""
    return wanted() and _on_cuda()


def wanted() -> bool:
    return os.environ.get("OLLMLX_MLX_FUSED", "1") != "0"


def whole_wanted() -> bool:
    """The whole step under one mx.compile (the default), or one compiled call per layer around
    mlx's attention and the model's own cache (OLLMLX_MLX_FUSED=layers)."""
    return os.environ.get("OLLMLX_MLX_FUSED", "1") != "layers"


def _on_cuda() -> bool:
    try:
        return mx.default_device() == mx.gpu and mx.cuda.is_available()
    except AttributeError:  # an mlx without the cuda module (Metal, CPU builds)
        return False


def matches(model: Any) -> bool:
    """The model's blocks are ones this step reproduces, with weights its kernels read."""
    from ollmlx.runner.engines.mlx.cuda_kernels import supported

    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if inner is None or not layers or type(model).__module__ not in _BLOCK_MODULES:
        return False
    if not isinstance(getattr(inner, "norm", None), nn.RMSNorm) or not supported(_head(model)):
        return False
    if inner.norm.weight.dtype not in (mx.bfloat16, mx.float16):  # the kernels' 16-bit pair math
        return False
    for layer in layers:
        a, m = layer.self_attn, layer.mlp
        if getattr(layer, "use_sliding", False):
            return False
        if not (isinstance(layer.input_layernorm, nn.RMSNorm) and isinstance(layer.post_attention_layernorm, nn.RMSNorm)):
            return False
        if not all(supported(p) for p in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)):
            return False
    return True


def supports(cache: list[Any]) -> bool:
    from mlx_lm.models.cache import KVCache

    return all(type(c) is KVCache for c in cache)


def _head(model: Any) -> Any:
    return model.lm_head if hasattr(model, "lm_head") else model.model.embed_tokens


def rope_angles(rope: Any, head_dim: int) -> mx.array | None:
    """RoPE's angle per position for each rotated pair (i, i + head_dim/2), read off the model's
    own rope module at position 1, for the rotations that are linear in the position (plain,
    linearly scaled and Llama-3 RoPE, non-interleaved, over the whole head); None otherwise."""
    if type(rope).__name__ not in ("RoPE", "Llama3RoPE") or getattr(rope, "traditional", True):
        return None
    if getattr(rope, "dims", None) != head_dim:
        return None
    half = head_dim // 2
    y = rope(mx.eye(half, head_dim).reshape(1, half, 1, head_dim), offset=1).reshape(half, head_dim)
    return mx.arctan2(mx.diagonal(y[:, half:]), mx.diagonal(y[:, :half]))


class _Layer:
    """One block's fused calls, built once."""

    def __init__(self, layer: Any, dtype: mx.Dtype) -> None:
        from ollmlx.runner.engines.mlx.cuda_attention import DecodeAttention
        from ollmlx.runner.engines.mlx.cuda_kernels import QkvRope, Qmv, QmvSwiglu

        a, m = layer.self_attn, layer.mlp
        self.attn = a
        self.heads, self.kv_heads = a.n_heads, a.n_kv_heads
        self.head_dim = a.q_proj["weight"].shape[0] // a.n_heads
        self.nq = self.heads * self.head_dim
        self.nk = self.kv_heads * self.head_dim
        self.o = Qmv([a.o_proj], dtype, residual=True)
        try:  # the whole-step path's attention (None: a head size it has no kernel for)
            self.attend: Any = DecodeAttention(self.heads, self.kv_heads, self.head_dim, a.scale, dtype)
        except ValueError:
            self.attend = None
        self.gate_up = QmvSwiglu(m.gate_proj, m.up_proj, dtype, norm=layer.post_attention_layernorm)
        self.down = Qmv([m.down_proj], dtype, residual=True)
        # The parts around the attention have the same shapes every token, so each is compiled
        # once: one call from Python replaces ~10 (graph building, not the GPU, bounds a step on
        # a slow host CPU). The attention and the KV cache, whose length grows, stay outside.
        self.after = mx.compile(self._after)
        theta = rope_angles(a.rope, self.head_dim)
        if theta is not None:
            # RoPE folded into the q/k/v product where the rotation is a plain one (one kernel,
            # no slices or reshapes)
            self.qkv_rope: Any = QkvRope(a.q_proj, a.k_proj, a.v_proj, self.heads, self.kv_heads, theta, dtype,
                                         layer.input_layernorm)
        else:  # the model's own rope module after the product
            self.qkv = Qmv([a.q_proj, a.k_proj, a.v_proj], dtype, norm=layer.input_layernorm)
            self.qkv_rope = None
            self.before = mx.compile(self._before)

    def _before(self, h: mx.array, offset: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        a, d = self.attn, self.head_dim
        qkv = self.qkv(h)
        q = qkv[: self.nq].reshape(1, self.heads, 1, d)
        k = qkv[self.nq: self.nq + self.nk].reshape(1, self.kv_heads, 1, d)
        v = qkv[self.nq + self.nk:].reshape(1, self.kv_heads, 1, d)
        return a.rope(q, offset=offset), a.rope(k, offset=offset), v

    def _after(self, o: mx.array, h: mx.array) -> mx.array:
        h = self.o(o, residual=h)  # (1, heads, 1, head_dim) is the row o_proj reads, in order
        return self.down(self.gate_up(h), residual=h)

    def step(self, h: mx.array, pos: mx.array, keys: mx.array, values: mx.array) -> mx.array:
        """The block over fixed-capacity KV buffers, for the token at position `pos` (an array, so
        every step has the same shapes): the attention kernel also writes the token's key and
        value into the buffers, in place (cuda_attention.py says why and when that is safe)."""
        q, k, v = self.qkv_rope(h, pos) if self.qkv_rope is not None else self._before(h, pos)
        return self._after(self.attend(q, k, v, keys, values, pos), h)

    def __call__(self, h: mx.array, cache: Any, offset: mx.array, compiled: bool = True) -> mx.array:
        if self.qkv_rope is not None:
            q, k, v = self.qkv_rope(h, offset)
        else:
            q, k, v = (self.before if compiled else self._before)(h, offset)
        k, v = cache.update_and_fetch(k, v)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.attn.scale)
        return (self.after if compiled else self._after)(o, h)


class FusedDecoder:
    """forward(token) -> logits (1, vocab) for one token, advancing `cache` like model(token).

    With `whole`, the step is one mx.compile over every layer, fed fixed-capacity KV buffers and
    the position as an array, with ollmlx's attention kernel (cuda_attention.py) reading the live
    part of each buffer and writing the token's row into it: one call from Python per token, where
    the per-layer path makes ~10 per layer (a served 8B step on an H100 host spent ~1.5 ms
    building its graph in Python). The kernel writes only into buffers this decoder made itself
    (`_room`): a cache that arrives from elsewhere (the prompt cache, the batch) is copied once."""

    def __init__(self, model: Any, cache: list[Any], compiled: bool = True, keep: bool = True,
                 whole: bool | None = None) -> None:
        """`whole`: the whole-step path (default: whole_wanted())."""
        from ollmlx.runner.engines.mlx.cuda_kernels import Qmv

        self.compiled = compiled
        self.model = model
        self.cache = cache
        # Kept on the model object (not a parameter): one build per loaded model and thread. A
        # function mx.compile traced in one thread is not run from another (the load thread's
        # check and the engine thread each trace their own).
        key = f"_ollmlx_fused_{threading.get_ident()}"
        built = getattr(model, key, None)
        if built is None:
            inner = model.model
            dtype = inner.norm.weight.dtype
            built = ([_Layer(layer, dtype) for layer in inner.layers], Qmv([_head(model)], dtype, norm=inner.norm), {})
            if keep:
                object.__setattr__(model, key, built)
        self.layers: list[_Layer] = built[0]
        self.head: Any = built[1]
        self._steps: dict[bool, Any] = built[2]  # the whole step, compiled or not
        self._owned: list[tuple[Any, Any]] | None = None
        wanted = whole_wanted() if whole is None else whole
        self.whole = wanted and all(layer.attend is not None for layer in self.layers)

    def forward(self, token: mx.array) -> mx.array:
        if self.whole:
            if self.cache[0].keys is None:  # nothing read yet: the model makes the buffers
                return self.model(token.reshape(1, 1), cache=self.cache)[:, -1, :]
            self._room()
            offset = self.cache[0].offset
            buffers = [b for c in self.cache for b in (c.keys, c.values)]
            logits = self._whole_step()(token, mx.array([offset], mx.int32), *buffers)[0]
            for c in self.cache:
                c.offset = offset + 1
            return logits
        h = _embed(self.model, token)
        offset = mx.array(self.cache[0].offset, dtype=mx.int32)
        for layer, cache in zip(self.layers, self.cache):
            h = layer(h, cache, offset, self.compiled)
        return self.head(h).reshape(1, -1)

    def _room(self) -> None:
        """Buffers with room for the token, made by this decoder and shared with no other array."""
        mine = self._owned is not None and all(
            c.keys is k and c.values is v for c, (k, v) in zip(self.cache, self._owned))
        reserve(self.cache, fresh=not mine)
        self._owned = [(c.keys, c.values) for c in self.cache]

    def _whole_step(self) -> Any:
        step = self._steps.get(self.compiled)
        if step is None:
            # kept with the model's build: the closure holds the model's parts, never a cache
            model, layers, head = self.model, self.layers, self.head

            def forward(token: mx.array, pos: mx.array, *buffers: mx.array) -> list[mx.array]:
                h = _embed(model, token)
                for i, layer in enumerate(layers):
                    h = layer.step(h, pos, buffers[2 * i], buffers[2 * i + 1])
                return [head(h).reshape(1, -1)]

            step = self._steps[self.compiled] = mx.compile(forward) if self.compiled else forward
        return step


def _embed(model: Any, token: mx.array) -> mx.array:
    return model.model.embed_tokens(token.reshape(1)).reshape(-1)


def disable(model: Any) -> None:
    """Take the model off the fused path (a step failed at run time)."""
    object.__setattr__(model, _VERDICT, False)


def usable(model: Any) -> bool:
    """Whether this model's decode steps take the fused path: enabled, matching, and agreeing with
    the model's own forward (checked once per model)."""
    return decoder_check.once(model, _VERDICT, lambda: enabled() and matches(model) and decoder_check.agrees(
        model, lambda cache: FusedDecoder(model, cache, keep=False), "fused decode step"))
