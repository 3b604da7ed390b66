"""A model laid out for ollmlx's CPU kernels: quantized layers keep their 4/8-bit codes and read
them through `quantized_rows`; rotary embeddings and attention run as one op each; every other
floating parameter (norms, biases) and so every activation is float32.

`apply` changes a model in place after checking each kernel against mlx's own op on the model's
shapes; it returns what it did for /info. Layers the kernels do not take (other widths or modes)
are dequantized to float32 as before, so BLAS runs them.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import Any

import mlx.core as mx
import mlx.nn as nn

log = logging.getLogger("ollmlx.runner")

_TOLERANCE = 1e-3  # relative to the largest output; rope and attention are float32 on both sides (~1e-6)
# a few rows' products take x as int8 per block of 32, as llama.cpp does: ~0.5% of the largest output
_PRODUCT_TOLERANCE = 3e-2


def takes(module: nn.Module) -> bool:
    """A quantized layer whose codes `quantized_rows` reads."""
    return (getattr(module, "mode", "affine") == "affine" and int(getattr(module, "bits", 0)) in (4, 8)
            and int(getattr(module, "group_size", 1)) % 32 == 0 and getattr(module, "biases", None) is not None
            and module.weight.dtype == mx.uint32)


def product_layer(model: nn.Module) -> nn.QuantizedLinear | None:
    """The model's first linear layer the kernels take, if any."""
    return next((m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear) and takes(m)), None)


class KernelLinear(nn.Module):
    """nn.QuantizedLinear's parameters, its product by ollmlx's kernel (float32 out)."""

    def __init__(self, layer: nn.QuantizedLinear, kernels: ModuleType) -> None:
        super().__init__()
        self.weight, self.scales, self.biases = layer.weight, layer.scales, layer.biases
        if "bias" in layer:
            self.bias = layer.bias.astype(mx.float32)
        self.group_size, self.bits = int(layer.group_size), int(layer.bits)
        self._kernels = kernels

    def __call__(self, x: mx.array) -> mx.array:
        y = self._kernels.quantized_rows(x.astype(mx.float32), self["weight"], self["scales"], self["biases"],
                                         self.group_size, self.bits)
        return y + self["bias"] if "bias" in self else y


class KernelEmbedding(nn.Module):
    """nn.QuantizedEmbedding's parameters: rows looked up as mlx does, `as_linear` (tied output
    heads) by ollmlx's kernel."""

    def __init__(self, layer: nn.QuantizedEmbedding, kernels: ModuleType) -> None:
        super().__init__()
        self.weight, self.scales, self.biases = layer.weight, layer.scales, layer.biases
        self.group_size, self.bits = int(layer.group_size), int(layer.bits)
        self._kernels = kernels

    def __call__(self, x: mx.array) -> mx.array:
        # float32 scales: mlx dequantizes 16-bit scales to 16-bit values, which would round them
        f32 = mx.float32
        return mx.dequantize(self["weight"][x], self["scales"][x].astype(f32), self["biases"][x].astype(f32),
                             group_size=self.group_size, bits=self.bits)

    def as_linear(self, x: mx.array) -> mx.array:
        return self._kernels.quantized_rows(x.astype(mx.float32), self["weight"], self["scales"], self["biases"],
                                            self.group_size, self.bits)


class KernelRoPE(nn.Module):
    """nn.RoPE, or mlx-lm's Llama3RoPE (given frequencies), as one op."""

    def __init__(self, rope: nn.Module, kernels: ModuleType) -> None:
        super().__init__()
        self.dims, self.traditional = int(rope.dims), bool(rope.traditional)
        self._freqs = getattr(rope, "_freqs", None)
        self.base = None if self._freqs is not None else float(rope.base)
        self.scale = float(getattr(rope, "scale", 1.0))
        self._kernels = kernels

    def __call__(self, x: mx.array, offset: int | mx.array = 0) -> mx.array:
        if x.dtype != mx.float32:
            return self._fallback(x, offset)
        offsets = offset if isinstance(offset, mx.array) else mx.array(offset, dtype=mx.int32)
        return self._kernels.rope(x, self.dims, self.traditional, self.base, self.scale, offsets, self._freqs)

    def _fallback(self, x: mx.array, offset: int | mx.array) -> mx.array:
        return mx.fast.rope(x, self.dims, traditional=self.traditional, base=self.base, scale=self.scale,
                            offset=offset, freqs=self._freqs)


def _ropes() -> tuple[type, ...]:
    from mlx_lm.models.rope_utils import Llama3RoPE

    return nn.RoPE, Llama3RoPE


def attention_for(kernels: ModuleType, fallback: Any) -> Any:
    """mlx-lm's scaled_dot_product_attention, with float32 rows (mask none, causal or boolean, as
    a batch's left padding gives; no sinks; a plain cache) going to the kernel, however many.

    The kernel computes each row on its own, in one order, so a token's numbers do not depend on
    how its prompt was cut into chunks (a prefix cache hit, mlx-lm's generate_step reading the
    last token alone) or on its batch: with x read in int8 by the products, mlx's attention for
    long chunks (other float rounding per shape) changed a greedy answer with the cache's state
    (logits ~2% apart; 0 with the kernel)."""

    def attention(queries: mx.array, keys: mx.array, values: mx.array, cache: Any = None, scale: float = 1.0,
                  mask: Any = None, sinks: Any = None) -> mx.array:
        causal = isinstance(mask, str) and mask == "causal"
        boolean = isinstance(mask, mx.array) and mask.dtype == mx.bool_
        if (sinks is None and not hasattr(cache, "bits") and (mask is None or causal or boolean)
                and queries.dtype == keys.dtype == values.dtype == mx.float32
                and mx.default_device() == mx.cpu):
            return kernels.attention(queries, keys, values, scale, causal, mask if boolean else None)
        return fallback(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)

    attention.ollmlx_kernel = True  # type: ignore[attr-defined]
    return attention


def _patch_attention(model: nn.Module, kernels: ModuleType) -> int:
    """Point the attention function of each mlx-lm model module this model's layers come from at
    the kernel. Module globals: mlx-lm's layers call `scaled_dot_product_attention` by name."""
    from mlx_lm.models import base

    patched = 0
    for name in {type(m).__module__ for _, m in model.named_modules()}:
        module = sys.modules.get(name)
        current = getattr(module, "scaled_dot_product_attention", None)
        if module is None or current is None:
            continue
        if getattr(current, "ollmlx_kernel", False):
            patched += 1
        elif current is base.scaled_dot_product_attention:
            module.scaled_dot_product_attention = attention_for(kernels, current)  # type: ignore[attr-defined]
            patched += 1
    return patched


def _relative(a: mx.array, b: mx.array) -> float:
    return (mx.abs(a - b).max() / mx.maximum(mx.abs(b).max(), 1e-6)).item()  # type: ignore[return-value]


def agrees(model: nn.Module, kernels: ModuleType) -> str | None:
    """None when each kernel matches mlx's op on this model's shapes; else what differed."""
    layer = product_layer(model)
    if layer is not None:
        x = mx.random.normal((3, layer.weight.shape[1] * 32 // int(layer.bits)), key=mx.random.key(0))
        dense = mx.dequantize(layer.weight, layer.scales, layer.biases, group_size=layer.group_size, bits=layer.bits)
        got = kernels.quantized_rows(x, layer.weight, layer.scales, layer.biases, int(layer.group_size), int(layer.bits))
        if (err := _relative(got, x @ dense.astype(mx.float32).T)) > _PRODUCT_TOLERANCE:
            return f"quantized_rows differs from mlx by {err:.1e}"
    rope = next((m for _, m in model.named_modules() if type(m) in _ropes()), None)
    if rope is not None:
        ours = KernelRoPE(rope, kernels)
        x = mx.random.normal((1, 2, 3, max(ours.dims, 8)), key=mx.random.key(1))
        if (err := _relative(ours(x, 5), ours._fallback(x, 5))) > _TOLERANCE:
            return f"rope differs from mlx by {err:.1e}"
    q = mx.random.normal((1, 4, 2, 64), key=mx.random.key(2))
    k, v = (mx.random.normal((1, 2, 9, 64), key=mx.random.key(s)) for s in (3, 4))
    ref = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask="causal")
    if (err := _relative(kernels.attention(q, k, v, 0.125, True), ref)) > _TOLERANCE:
        return f"attention differs from mlx by {err:.1e}"
    return None


def cast_floats(model: nn.Module, dtype: mx.Dtype, keep: tuple[type, ...] = ()) -> None:
    """Every floating parameter to `dtype`, except those of modules of the `keep` types."""
    for _, module in model.named_modules():
        if isinstance(module, keep):
            continue
        for key, value in list(module.items()):
            if isinstance(value, mx.array) and mx.issubdtype(value.dtype, mx.floating) and value.dtype != dtype:
                module[key] = value.astype(dtype)


def apply(model: nn.Module, kernels: ModuleType) -> dict[str, Any]:
    """Lay the model out for the kernels (see the module docstring); returns /info's details."""
    from mlx.utils import tree_unflatten

    from ollmlx.runner.engines.mlx.build import dequantize_for_cpu

    swaps: list[tuple[str, nn.Module]] = []
    counts = {"products": 0, "ropes": 0}
    for name, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear) and takes(module):
            swaps.append((name, KernelLinear(module, kernels)))
            counts["products"] += 1
        elif isinstance(module, nn.QuantizedEmbedding) and takes(module):
            swaps.append((name, KernelEmbedding(module, kernels)))
            counts["products"] += 1
        elif type(module) in _ropes():
            swaps.append((name, KernelRoPE(module, kernels)))
            counts["ropes"] += 1
    if swaps:
        model.update_modules(tree_unflatten(swaps))
    dense = dequantize_for_cpu(model, mx.float32, cast=False)  # layers of other widths or modes
    cast_floats(model, mx.float32, keep=(KernelLinear, KernelEmbedding))
    mx.eval(model.parameters())
    attention = _patch_attention(model, kernels)
    details = {"weights": f"as stored: {counts['products']} quantized layers read by ollmlx's CPU kernels"
                          + (f", {dense} dequantized to float32" if dense else ""),
               "cpu_kernels": f"products, {counts['ropes']} rotary embeddings"
                              + (f", attention ({attention} model module)" if attention else "")}
    log.info("CPU kernels: %s", details)
    return details
