"""Quantized matmuls over a batch of sequences, as one matrix product.

A batched decode step feeds every linear layer an input of shape (sequences, 1, hidden). mlx's
CUDA `quantized_matmul` reads that as `sequences` separate products of one row each: its qmm kernel
launches a grid slice per sequence, pads each one-row product to a 16-row tile and reads the weights
once per sequence. Folding the leading axes into rows, (sequences * 1, hidden), gives the same
numbers from one product that reads the weights once. The layers keep their weights; only the
shape of their input changes. A lone sequence, (1, tokens, hidden), is already one product and is
passed as it is: the two reshapes per layer would cost a single stream ~10% in graph overhead.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx import cuda_rows


def _batched(x: mx.array) -> bool:
    return x.ndim > 2 and x.size // (x.shape[-1] * x.shape[-2]) > 1


def _rows(x: mx.array) -> mx.array:
    return x.reshape(-1, x.shape[-1])


class _DenseCopy:
    """A layer's weight dequantized once, held outside the module's parameter tree (not saved, not
    counted as a parameter, not updated by `model.update`)."""

    def __init__(self, weight: mx.array) -> None:
        self.weight = weight


def _dequantized(layer: nn.Module) -> mx.array:
    return mx.dequantize(layer["weight"], layer["scales"], layer.get("biases"), group_size=layer.group_size,
                         bits=layer.bits, mode=getattr(layer, "mode", "affine"))


class FlatQuantizedLinear(nn.QuantizedLinear):
    # Row counts (lo, hi) whose product dequantizes the weight and runs a dense matmul instead of
    # mlx-cuda's few-row qmm tile kernel (OLLMLX_MLX_DEQUANT_ROWS; bench/probe_dequant.py).
    dequant_rows: tuple[int, int] | None = None
    # Products of 2-32 rows through ollmlx's few-row 4-bit kernel (cuda_rows.py; CUDA only)
    rows_kernel = False
    # a class default, so that the per-token lookup never goes through nn.Module.__getattr__
    _dense_copy: _DenseCopy | None = None

    def __call__(self, x: mx.array) -> mx.array:
        copy, window = self._dense_copy, self.dequant_rows
        if copy is not None or window is not None:
            rows = x.size // x.shape[-1]
            if (copy is not None and rows > 1) or (window is not None and window[0] <= rows <= window[1]):
                y = x @ (copy.weight if copy is not None else _dequantized(self)).T
                return y + self["bias"] if "bias" in self else y
        if self.rows_kernel and cuda_rows.usable(self, x):
            y = cuda_rows.rows_product(self, x)
            return y + self["bias"] if "bias" in self else y
        if not _batched(x):
            return super().__call__(x)
        return super().__call__(_rows(x)).reshape(*x.shape[:-1], -1)


class FlatQuantizedEmbedding(nn.QuantizedEmbedding):
    _dense_copy: _DenseCopy | None = None

    def as_linear(self, x: mx.array) -> mx.array:
        copy = self._dense_copy
        if copy is not None and x.size // x.shape[-1] > 1:
            return x @ copy.weight.T
        if FlatQuantizedLinear.rows_kernel and cuda_rows.usable(self, x):
            return cuda_rows.rows_product(self, x)
        if not _batched(x):
            return super().as_linear(x)
        return super().as_linear(_rows(x)).reshape(*x.shape[:-1], -1)


def keep_dense_copies(model: nn.Module) -> int:
    """Give every flattened quantized layer a dense copy of its weight (OLLMLX_MLX_DENSE_COPY):
    products of two rows or more (prompts, batched decoding) then read 16-bit weights through a
    dense matmul, while a lone stream's one-row steps keep the 4-bit kernel, which reads a quarter
    of the bytes. Costs the weights' size again four times over. Returns the bytes kept."""
    kept = 0
    for _, module in model.named_modules():
        if isinstance(module, FlatQuantizedLinear | FlatQuantizedEmbedding):
            dense = _dequantized(module)
            mx.eval(dense)
            module._dense_copy = _DenseCopy(dense)
            kept += dense.nbytes
    return kept


_FLAT: dict[type, type] = {nn.QuantizedLinear: FlatQuantizedLinear, nn.QuantizedEmbedding: FlatQuantizedEmbedding}


def set_dequant_rows(setting: str) -> tuple[int, int] | None:
    """The window from OLLMLX_MLX_DEQUANT_ROWS: "lo-hi", "lo-" (lo rows and up), or "" / "0" for
    never. Returns the window in force."""
    window = None
    if setting not in ("", "0"):
        lo, dash, hi = setting.partition("-")
        window = (int(lo), int(hi) if hi else (1 << 62) if dash else int(lo))
    FlatQuantizedLinear.dequant_rows = window
    return window


def set_rows_kernel(on: bool) -> bool:
    """Products of 2-32 rows through cuda_rows.py's kernel (OLLMLX_MLX_ROWS_KERNEL; CUDA only)."""
    FlatQuantizedLinear.rows_kernel = on
    return on


def flatten_quantized_rows(model: nn.Module) -> int:
    """Make the model's quantized linear layers (and tied quantized embeddings used as the output
    head) fold batch axes into rows. Only exact mlx classes change: a subclass may have its own
    call. Returns how many layers changed."""
    n = 0
    for _, module in model.named_modules():
        flat = _FLAT.get(type(module))
        if flat is not None:
            module.__class__ = flat
            n += 1
    return n
