"""A prompt's last chunk read at bucketed shapes (runner/engines/mlx/prefill_buckets.py): on CUDA by
default; on the CPU with OLLMLX_MLX_PREFILL_BUCKETS=1, the same logits and the same tokens as the
model's own forward. The logits tests use a random 4-bit bfloat16 Llama (helpers.tiny_llama), so
they also run on the GPU machine (bench/gpu_warm.sh TEST=1), where the path is on by default."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import greedy, run, tiny_llama


def _cache_after(model: Any, ids: list[int]) -> Any:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    model(mx.array(ids)[None], cache=cache)
    return cache


@pytest.mark.parametrize("compiled", ["0", "1"])
@pytest.mark.parametrize(("history", "new"), [(5, 3), (200, 28), (250, 7), (700, 33), (40, 128), (480, 32)])
def test_a_bucketed_chunk_gives_the_models_own_logits(history: int, new: int, compiled: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Also through mx.compile (OLLMLX_MLX_PREFILL_COMPILE=1)."""
    import mlx.core as mx

    monkeypatch.setenv("OLLMLX_MLX_PREFILL_COMPILE", compiled)
    from ollmlx.runner.engines.mlx import decoder_check, prefill_buckets

    model = tiny_llama()
    ids = [(i * 37 + 11) % 500 + 10 for i in range(history + new)]
    theirs, ours = _cache_after(model, ids[:history]), _cache_after(model, ids[:history])
    want = model(mx.array(ids[history:])[None], cache=theirs)[:, -1, :]
    assert prefill_buckets.supports(ours, new)
    got = prefill_buckets.forward(model, ours, mx.array(ids[history:]))
    assert decoder_check.close(got, want, "bucketed chunk", 0.02)
    capacity = ours[0].keys.shape[2]
    assert ours[0].offset == history + new
    assert capacity >= history + prefill_buckets.padded_length(new) and capacity & (capacity - 1) == 0
    # the padding's keys and values lie past the offset: a token read next sees none of them
    after = mx.array([[42]])
    assert decoder_check.close(model(after, cache=ours)[:, -1], model(after, cache=theirs)[:, -1], "after it", 0.02)


def test_longer_chunks_and_empty_caches_are_left_to_the_model() -> None:
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx import prefill_buckets

    model = tiny_llama()
    assert not prefill_buckets.supports(make_prompt_cache(model), 8)
    assert not prefill_buckets.supports(_cache_after(model, [5, 6, 7]), prefill_buckets.MAX_TOKENS + 1)
    assert not prefill_buckets.supports(_cache_after(model, [5, 6, 7]), 1)
    assert prefill_buckets.usable(model)


def test_warm_reads_a_chunk_at_every_capacity_up_to_num_ctx() -> None:
    from ollmlx.runner.engines.mlx import prefill_buckets

    assert prefill_buckets.warm(tiny_llama(), 1024) == 3  # 256, 512, 1024
    assert prefill_buckets.warm(tiny_llama(), 100) == 1


def test_warm_first_reads_a_prompt_chunk_through_the_models_own_forward() -> None:
    """So the first long prompt after load finds the plain forward's kernels built (the compiled
    chunks run fused ones instead)."""
    from ollmlx.runner.engines.mlx import prefill_buckets

    class Recorded:
        def __init__(self, model: Any) -> None:
            self.model, self.shapes = model, []

        def __call__(self, ids: Any, cache: Any = None) -> Any:
            self.shapes.append(tuple(ids.shape))
            return self.model(ids, cache=cache)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.model, name)

    model = Recorded(tiny_llama())
    assert prefill_buckets.warm(model, 1024, 512) == 3
    assert model.shapes[0] == (1, 512)
    short = Recorded(tiny_llama())
    prefill_buckets.warm(short, 100, 512)
    assert short.shapes[0] == (1, 100)


def test_a_warm_turn_gives_the_same_tokens_with_and_without_buckets(
        smol_loaded: Any, engine_factory: Any, collector: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import chat_prompt

    turn1 = chat_prompt(smol_loaded, "Name three colours of the rainbow.")
    texts = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("OLLMLX_MLX_PREFILL_BUCKETS", setting)
        engine = engine_factory(smol_loaded)
        first = run(engine, collector, greedy(turn1, 12))
        turn2 = turn1 + first.text + "<|im_end|>\n<|im_start|>user\nAnd two more?<|im_end|>\n<|im_start|>assistant\n"
        second = run(engine, collector, greedy(turn2, 16))
        assert engine.cache_hits >= 1 and second.final["prompt_eval_count"] <= 40  # read on top of turn 1's cache
        texts[setting] = (first.text, second.text)
    assert texts["1"] == texts["0"]


def test_the_bucketed_forward_is_compiled_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled by default (its host time on an H100: 1.5-2.6 ms against 5.0-8.1 built in Python)."""
    from ollmlx.runner.engines.mlx import prefill_buckets

    monkeypatch.delenv("OLLMLX_MLX_PREFILL_COMPILE", raising=False)
    assert prefill_buckets.compiled_wanted()
    monkeypatch.setenv("OLLMLX_MLX_PREFILL_COMPILE", "0")
    assert not prefill_buckets.compiled_wanted()
