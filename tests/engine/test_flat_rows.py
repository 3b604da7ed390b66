"""Batched quantized matmuls as one product per layer (flat_rows.py): same numbers, fewer products.
The speed-up is a CUDA one (bench/RESULTS.md); here we hold the layers to giving what they gave."""

from __future__ import annotations

from typing import Any

import pytest


def _quantized_tiny() -> Any:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama

    mx.random.seed(1)
    args = llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                           vocab_size=512, max_position_embeddings=256, tie_word_embeddings=True)
    model = llama.Model(args)
    nn.quantize(model, group_size=64, bits=4)
    mx.eval(model.parameters())
    return model


def test_batched_forward_is_unchanged_and_layers_are_flat() -> None:
    import mlx.core as mx
    import mlx.nn as nn

    from ollmlx.runner.engines.mlx.flat_rows import (
        FlatQuantizedEmbedding,
        FlatQuantizedLinear,
        flatten_quantized_rows,
    )

    model = _quantized_tiny()
    batch = mx.array([[5, 9, 17, 33, 2], [7, 7, 100, 4, 8], [300, 1, 2, 3, 4]])
    lone = mx.array([[11, 12, 13]])
    before_batch, before_lone = model(batch), model(lone)
    quantized = sum(isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding) for _, m in model.named_modules())

    assert flatten_quantized_rows(model) == quantized > 0
    kinds = {type(m) for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding)}
    assert kinds == {FlatQuantizedLinear, FlatQuantizedEmbedding}

    after_batch, after_lone = model(batch), model(lone)
    assert after_batch.shape == before_batch.shape
    assert mx.allclose(after_batch, before_batch, atol=1e-4).item()
    assert mx.array_equal(after_lone, before_lone).item()
    # one decode step of the batch: (sequences, 1, hidden) through every layer
    step = batch[:, -1:]
    assert mx.allclose(model(step), _quantized_tiny()(step), atol=1e-4).item()


def test_subclasses_keep_their_own_call() -> None:
    import mlx.nn as nn

    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows

    class Custom(nn.QuantizedLinear):
        pass

    layer = Custom(64, 64, bias=False, group_size=64, bits=4)
    assert flatten_quantized_rows(layer) == 0 and type(layer) is Custom


@pytest.mark.parametrize("flat", ["1", "0"])
def test_host_tuning_reports_the_batched_layout(flat: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import host

    monkeypatch.setenv("OLLMLX_CPU_WEIGHTS", "as-stored")
    monkeypatch.setenv("OLLMLX_MLX_FLAT_ROWS", flat)
    details = host.tune_for_host(_quantized_tiny())
    assert details["weights"] == "as stored"
    assert details["compiled_steps"] == "off"  # the default
    monkeypatch.setenv("OLLMLX_MLX_COMPILE", "1")
    assert host.tune_for_host(_quantized_tiny())["compiled_steps"] == "on (a lone stream's decode steps)"
    if flat == "1":
        assert details["batched_matmul"] == "one product per layer (15 quantized layers)"
    else:
        assert "batched_matmul" not in details


def test_few_row_products_can_run_dense_with_the_same_numbers() -> None:
    """OLLMLX_MLX_DEQUANT_ROWS: products of a row count in the window dequantize the weight and run
    a dense matmul (mlx-cuda's few-row qmm is slow); others keep the quantized kernel."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import flat_rows

    model = _quantized_tiny()
    prompt, step = mx.array([[5, 9, 17, 33, 2, 8, 8, 1]]), mx.array([[4]])
    before_prompt, before_step = model(prompt), model(step)
    flat_rows.flatten_quantized_rows(model)
    calls: list[int] = []
    dequantized = flat_rows._dequantized
    try:
        assert flat_rows.set_dequant_rows("2-64") == (2, 64)
        flat_rows._dequantized = lambda layer: calls.append(1) or dequantized(layer)
        assert mx.allclose(model(prompt), before_prompt, atol=1e-3).item()
        assert len(calls) == 2 * 7  # every linear layer of both blocks
        assert mx.array_equal(model(step), before_step).item()  # one row: the quantized kernel
        assert len(calls) == 14
    finally:
        flat_rows._dequantized = dequantized
        assert flat_rows.set_dequant_rows("128-") == (128, 1 << 62)
        assert flat_rows.set_dequant_rows("0") is None
        assert flat_rows.set_dequant_rows("") is None


def test_dense_copies_serve_multi_row_products_and_stay_out_of_the_parameters() -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from ollmlx.runner.engines.mlx import flat_rows

    model = _quantized_tiny()
    batch, step = mx.array([[5, 9, 17, 33], [7, 7, 100, 4]]), mx.array([[4]])
    before_batch, before_step = model(batch), model(step)
    params = {k for k, _ in tree_flatten(model.parameters())}
    flat_rows.flatten_quantized_rows(model)
    kept = flat_rows.keep_dense_copies(model)
    assert kept == sum(4 * m.weight.size * 32 // m.bits for _, m in model.named_modules()
                       if isinstance(m, flat_rows.FlatQuantizedLinear | flat_rows.FlatQuantizedEmbedding))
    assert {k for k, _ in tree_flatten(model.parameters())} == params
    assert mx.allclose(model(batch), before_batch, atol=1e-3).item()
    assert mx.array_equal(model(step), before_step).item()  # one row: still the 4-bit kernel
    # the dense path is the one taken: spoil the copies and the batch's numbers change
    for _, m in model.named_modules():
        if isinstance(m, flat_rows.FlatQuantizedLinear):
            m._dense_copy = flat_rows._DenseCopy(mx.zeros_like(m._dense_copy.weight))
    assert not mx.allclose(model(batch), before_batch, atol=1e-3).item()
    assert mx.array_equal(model(step), before_step).item()
