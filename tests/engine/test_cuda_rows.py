"""ollmlx's few-row 4-bit product (cuda_rows.py): on an NVIDIA GPU, the same numbers as mlx's
`quantized_matmul` for 2-32 input rows, every supported group size, both 16-bit dtypes, and
through a flattened model layer. Its speed is measured in bench/probe_rows_kernel.py."""

from __future__ import annotations

from typing import Any

import pytest


def _on_cuda() -> bool:
    from ollmlx.runner.engines.mlx import fused_step

    return fused_step._on_cuda()


def test_only_few_rows_of_a_supported_layer_take_the_kernel() -> None:
    import mlx.core as mx
    import mlx.nn as nn

    from ollmlx.runner.engines.mlx import cuda_rows

    layer = nn.QuantizedLinear(256, 128, bias=False, group_size=64, bits=4)
    layer.set_dtype(mx.bfloat16)
    x = mx.zeros((5, 256), dtype=mx.bfloat16)
    assert cuda_rows.usable(layer, x)
    assert not cuda_rows.usable(layer, x[:1])  # one row: the decode step's own kernels
    assert not cuda_rows.usable(layer, mx.zeros((33, 256), dtype=mx.bfloat16))  # mlx's tile kernel
    assert not cuda_rows.usable(layer, x.astype(mx.float32))  # the kernel computes on 16-bit pairs
    eight = nn.QuantizedLinear(256, 128, bias=False, group_size=64, bits=8)
    assert not cuda_rows.usable(eight, x)


# bf16 with groups of 64 (what quantized models mostly hold) over every row bucket and both chunk
# widths (K = 576 is not a multiple of 128: lanes read two words); the other dtypes and group
# sizes on fewer rows, each kernel variant being one more NVRTC build
CASES = [("bfloat16", 64, ((1024, 4096), (1536, 576), (200, 14336)), (2, 5, 16, 28, 32)),
         ("bfloat16", 32, ((1536, 576), (200, 14336)), (5, 28)),
         ("bfloat16", 128, ((1024, 4096),), (5, 28)),
         ("float16", 64, ((1536, 576), (1024, 4096)), (3, 16))]


@pytest.mark.skipif(not _on_cuda(), reason="needs an NVIDIA GPU with mlx-cuda (absent on this CPU host)")
@pytest.mark.parametrize(("dtype", "group", "shapes", "row_counts"), CASES)
def test_few_row_products_match_mlx(dtype: str, group: int, shapes: tuple[tuple[int, int], ...],
                                    row_counts: tuple[int, ...]) -> None:
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_rows

    class Layer(dict):  # what rows_product reads of a quantized layer
        bits, mode = 4, "affine"

    mx.random.seed(3)
    dt = getattr(mx, dtype)
    for n, k in shapes:
        w = mx.random.normal((n, k)).astype(dt) * 0.05
        q, s, b = mx.quantize(w, group_size=group, bits=4)
        layer = Layer(weight=q, scales=s, biases=b)
        layer.group_size = group  # type: ignore[attr-defined]
        for rows in row_counts:
            x = mx.random.normal((rows, k)).astype(dt)
            want = mx.quantized_matmul(x, q, s, b, transpose=True, group_size=group, bits=4).astype(mx.float32)
            got = cuda_rows.rows_product(layer, x).astype(mx.float32)
            assert got.shape == want.shape
            err = mx.abs(got - want).max().item()
            assert err <= 0.02 * mx.abs(want).max().item(), (n, k, rows, err)


@pytest.mark.skipif(not _on_cuda(), reason="needs an NVIDIA GPU with mlx-cuda (absent on this CPU host)")
def test_a_flattened_layer_takes_the_kernel_for_a_batched_step() -> None:
    import mlx.core as mx
    import mlx.nn as nn

    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows, set_rows_kernel

    mx.random.seed(4)
    model = nn.Sequential(nn.Linear(512, 256, bias=True))
    model.set_dtype(mx.bfloat16)
    nn.quantize(model, group_size=64, bits=4)
    assert flatten_quantized_rows(model) == 1
    x = mx.random.normal((12, 1, 512)).astype(mx.bfloat16)  # 12 sequences, one token each
    try:
        set_rows_kernel(False)
        want = model(x).astype(mx.float32)
        set_rows_kernel(True)
        got = model(x).astype(mx.float32)
    finally:
        set_rows_kernel(False)
    assert got.shape == want.shape == (12, 1, 256)
    assert mx.abs(got - want).max().item() <= 0.02 * mx.abs(want).max().item()


def _two_layers(bits: int | None) -> Any:
    import mlx.core as mx
    import mlx.nn as nn

    m = nn.Sequential(nn.Linear(512, 256, bias=False), nn.Linear(256, 128, bias=False))
    m.set_dtype(mx.bfloat16)
    if bits is not None:
        nn.quantize(m, group_size=64, bits=bits)
    return m


def test_the_load_time_check_refuses_models_the_kernel_does_not_read() -> None:
    from ollmlx.runner.engines.mlx import cuda_rows

    assert not cuda_rows.agrees(_two_layers(8))  # refused before any kernel runs: also on this CPU
    assert not cuda_rows.agrees(_two_layers(None))


@pytest.mark.skipif(not _on_cuda(), reason="needs an NVIDIA GPU with mlx-cuda (absent on this CPU host)")
def test_the_load_time_check_takes_a_4_bit_model() -> None:
    from ollmlx.runner.engines.mlx import cuda_rows

    assert cuda_rows.agrees(_two_layers(4))
