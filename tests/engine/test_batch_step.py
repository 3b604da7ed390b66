"""The compiled batch decode step (batch_step.py): on this CPU through its reference attention (the
seam where the CUDA kernel plugs in), the same logits and tokens as mlx-lm's own batched forward,
inside the real BatchGenerator; on an NVIDIA GPU, the same with ollmlx's attention kernel. Its
speed is measured in bench/probe_batch_step.py and bench/RESULTS.md, not here."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import tiny_llama


def _llama(bits: int | None = 4, dtype: str = "bfloat16", layers: int = 2) -> Any:
    return tiny_llama(bits, 7, dtype, layers)


def _cuda() -> bool:
    from ollmlx.runner.engines.mlx import fused_step

    return fused_step._on_cuda()


def _greedy(model: Any, prompts: list[list[int]], tokens: int) -> dict[int, list[int]]:
    from mlx_lm.generate import BatchGenerator

    gen = BatchGenerator(model, max_tokens=tokens, completion_batch_size=len(prompts), prefill_batch_size=2)
    uids = gen.insert(prompts, max_tokens=[tokens] * len(prompts))
    out: dict[int, list[int]] = {u: [] for u in uids}
    live = len(prompts)
    while live:
        for r in gen.next_generated():
            out[r.uid].append(r.token)
            live -= r.finish_reason is not None
    gen.close()
    return {i: out[u] for i, u in enumerate(uids)}


def test_llama_blocks_with_16bit_activations_match_and_others_do_not() -> None:
    from ollmlx.runner.engines.mlx import batch_step

    assert batch_step.matches(_llama(4))
    assert batch_step.matches(_llama(8))  # any quantization: the projections are the model's own
    assert batch_step.matches(_llama(None))
    assert not batch_step.matches(_llama(4, dtype="float32"))  # the kernel computes on 16-bit values


@pytest.mark.parametrize("bits", [4, None])
def test_the_reference_step_agrees_with_the_models_batched_forward(bits: int | None) -> None:
    """Three left-padded prompts of different lengths, three steps (batch_step.agrees, the check a
    GPU runs once per model), through the reference attention."""
    from ollmlx.runner.engines.mlx import batch_step

    assert batch_step.agrees(_llama(bits), reference=True)


def test_the_step_grows_its_buffers_and_copies_caches_it_did_not_make() -> None:
    """Past a power-of-two capacity the buffers grow; a cache that arrives from elsewhere is copied
    before anything is written, so the original buffer keeps its contents."""
    import mlx.core as mx
    from mlx_lm.models.cache import BatchKVCache

    from ollmlx.runner.engines.mlx.batch_step import BatchStep

    model = _llama(4)
    pads = [2, 0]
    prompt = mx.array([[0, 0, *list(range(1, 253))], list(range(3, 257))])  # 254 positions: 2 to 256
    ours, theirs = ([BatchKVCache(pads) for _ in model.model.layers] for _ in range(2))
    model(prompt, cache=ours)
    model(prompt, cache=theirs)
    original = ours[0].keys
    before = mx.array(original)
    step = BatchStep(model, reference=True)
    for t in range(4):  # positions 254..257: the 256-capacity buffer fills, then grows to 512
        tokens = mx.array([[5 + t], [9 + t]])
        want = model(tokens, cache=theirs)[:, -1, :].astype(mx.float32)
        got = step(tokens, ours)[:, -1, :].astype(mx.float32)
        assert mx.abs(got - want).max().item() < 0.05 * mx.abs(want).max().item()
        assert ours[0]._idx == theirs[0]._idx
        assert mx.array_equal(ours[0].offset, theirs[0].offset)
    assert ours[0].keys.shape[2] == 512
    assert mx.array_equal(original, before)


def test_batch_generator_through_the_batched_model_decodes_the_same_tokens() -> None:
    """The real BatchGenerator, sequences of different prompt lengths and budgets joining and
    leaving: greedy tokens through BatchedModel (reference attention) equal the plain model's."""
    from ollmlx.runner.engines.mlx.batch_step import BatchedModel, BatchStep

    model = _llama(4)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17]]
    want = _greedy(model, prompts, 12)
    wrapped = BatchedModel(model, BatchStep(model, reference=True))
    got = _greedy(wrapped, prompts, 12)  # type: ignore[arg-type]
    assert got == want
    assert wrapped._step is not None and wrapped._step.steps >= 11  # it ran, and never fell back


def test_the_batch_step_is_cuda_only_and_off_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import batch_step

    if _cuda():
        monkeypatch.setenv("OLLMLX_MLX_BATCH_FUSED", "0")
        assert not batch_step.enabled()
    else:
        assert not batch_step.enabled()
        assert not batch_step.usable(_llama(4))


@pytest.mark.skipif("not _cuda()", reason="ollmlx's attention kernel runs on a CUDA GPU only (mlx-cuda)")
def test_on_cuda_the_kernel_step_agrees_and_decodes_the_same_tokens() -> None:
    from ollmlx.runner.engines.mlx import batch_step

    model = _llama(4, layers=3)
    assert batch_step.agrees(model, steps=4)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17]]
    want = _greedy(model, prompts, 300)  # past a capacity of 256: the buffers grow
    wrapped = batch_step.BatchedModel(model, batch_step.BatchStep(model))
    got = _greedy(wrapped, prompts, 300)  # type: ignore[arg-type]
    same = sum(a == b for i in want for a, b in zip(want[i], got[i]))
    assert same >= 0.9 * sum(len(v) for v in want.values())  # bf16 sums in another order may flip a near tie
    assert wrapped._step is not None and wrapped._step.steps >= 299


@pytest.mark.skipif("not _cuda()", reason="ollmlx's CUDA kernels run on a CUDA GPU only (mlx-cuda)")
def test_on_cuda_the_served_configuration_decodes_the_same_tokens() -> None:
    """What a CUDA runner serves: flattened layers whose 2-32 row products take the tensor-core
    kernel (cuda_rows.py), under the batch step, against mlx-lm's own layers and qmm."""
    from ollmlx.runner.engines.mlx import batch_step, cuda_rows
    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows, set_rows_kernel

    model = _llama(4, layers=3)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16, 17]]
    want = _greedy(model, prompts, 100)
    assert flatten_quantized_rows(model) > 0
    try:
        assert cuda_rows.agrees(model)
        set_rows_kernel(True)
        assert batch_step.agrees(model, steps=4)
        wrapped = batch_step.BatchedModel(model, batch_step.BatchStep(model))
        got = _greedy(wrapped, prompts, 100)  # type: ignore[arg-type]
    finally:
        set_rows_kernel(False)
    same = sum(a == b for i in want for a, b in zip(want[i], got[i]))
    assert same >= 0.9 * sum(len(v) for v in want.values())
    assert wrapped._step is not None and wrapped._step.steps >= 99
