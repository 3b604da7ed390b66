"""The fused CUDA decode step (fused_step.py, cuda_kernels.py): which models and hosts take it, and,
on an NVIDIA GPU, the same logits as mlx-lm's own forward. Its speed is measured in
bench/probe_fused_step.py and bench/RESULTS.md, not here."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import tiny_llama


def _llama(bits: int | None = 4, seed: int = 5, dtype: str = "bfloat16") -> Any:
    return tiny_llama(bits, seed, dtype)


def _on_cuda() -> bool:
    from ollmlx.runner.engines.mlx import fused_step

    return fused_step._on_cuda()


def test_a_4bit_llama_block_model_matches_and_others_do_not() -> None:
    import mlx.core as mx
    from mlx_lm.models import qwen3

    from ollmlx.runner.engines.mlx import fused_step

    assert fused_step.matches(_llama(4))
    assert not fused_step.matches(_llama(8))  # the kernels read 4-bit weights only
    assert not fused_step.matches(_llama(None))  # dense weights (a CPU host's float32 layout)
    assert not fused_step.matches(_llama(4, dtype="float32"))  # the kernels compute on 16-bit pairs
    mx.random.seed(0)
    args = qwen3.ModelArgs(model_type="qwen3", hidden_size=128, num_hidden_layers=1, intermediate_size=256,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, vocab_size=512,
                           max_position_embeddings=4096, rope_theta=10000.0, head_dim=32, tie_word_embeddings=True)
    import mlx.nn as nn

    other = qwen3.Model(args)
    nn.quantize(other, group_size=64, bits=4)
    assert not fused_step.matches(other)  # q/k norms: a block this step does not reproduce


def test_the_fused_step_is_cuda_only_and_a_cpu_host_reports_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import fused_step, host

    if _on_cuda():
        pytest.skip("this host has a CUDA GPU; the CPU case is checked on CPU hosts")
    monkeypatch.setenv("OLLMLX_MLX_FUSED", "1")
    model = _llama(4)
    assert not fused_step.enabled() and not fused_step.usable(model)
    assert "fused_steps" not in host.tune_for_host(model)


@pytest.mark.skipif(not _on_cuda(), reason="needs an NVIDIA GPU with mlx-cuda (absent on this CPU host)")
@pytest.mark.parametrize(("mode", "prompt_len"), [("layers", 37), ("whole", 37), ("whole", 250)])
def test_fused_steps_give_the_models_own_logits_on_cuda(monkeypatch: pytest.MonkeyPatch, mode: str,
                                                        prompt_len: int) -> None:
    """Per-layer calls and the whole step under one compile (ollmlx's attention over fixed-capacity
    buffers); from 250 tokens the whole step crosses a capacity (256) and is traced again."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx import fused_step

    monkeypatch.setenv("OLLMLX_MLX_FUSED", mode)
    model = _llama(4)
    assert fused_step.usable(model)
    ours, theirs = make_prompt_cache(model), make_prompt_cache(model)
    prompt = mx.array([(7 * j) % 500 + 3 for j in range(prompt_len)])[None]
    model(prompt, cache=ours)
    model(prompt, cache=theirs)
    decoder = fused_step.FusedDecoder(model, ours)
    assert decoder.whole == (mode == "whole")
    token = mx.array([42])
    for _ in range(12):
        want = model(token[None], cache=theirs)[:, -1, :].astype(mx.float32)
        got = decoder.forward(token).astype(mx.float32)
        assert got.shape == want.shape
        assert mx.abs(got - want).max().item() <= 0.03 * mx.abs(want).max().item()
        token = mx.argmax(want, axis=-1)
    assert ours[0].offset == theirs[0].offset == prompt_len + 12
    held = ours[0].state[0]  # what the cache holds is what the model's own cache holds
    assert mx.abs(held.astype(mx.float32) - theirs[0].state[0].astype(mx.float32)).max().item() < 0.05


@pytest.mark.skipif(not _on_cuda(), reason="needs an NVIDIA GPU with mlx-cuda (absent on this CPU host)")
def test_the_whole_step_writes_only_into_buffers_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole step's attention kernel writes each token's key and value in place. A cache that
    arrives from elsewhere may share its buffers (the prompt cache keeps them): the decoder copies
    it first, so what the other holder sees never changes. An empty cache starts on the model's
    own forward."""
    import mlx.core as mx
    import numpy as np
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

    from ollmlx.runner.engines.mlx import fused_step

    monkeypatch.setenv("OLLMLX_MLX_FUSED", "whole")
    model = _llama(4)
    cache = make_prompt_cache(model)
    model(mx.array([(7 * j) % 500 + 3 for j in range(40)])[None], cache=cache)
    kept = [(c.keys, c.values) for c in cache]  # another holder of the same arrays
    mx.eval(kept)
    before = [(np.array(k.astype(mx.float32)), np.array(v.astype(mx.float32))) for k, v in kept]
    trim_prompt_cache(cache, 10)  # the next tokens land on positions the other holder has
    decoder = fused_step.FusedDecoder(model, cache)
    assert decoder.whole
    token = mx.array([42])
    for _ in range(6):
        token = mx.argmax(decoder.forward(token), axis=-1)
    mx.eval(token)
    for (k, v), (k0, v0) in zip(kept, before):
        assert np.array_equal(np.array(k.astype(mx.float32)), k0) and np.array_equal(np.array(v.astype(mx.float32)), v0)
    empty = make_prompt_cache(model)
    first = fused_step.FusedDecoder(model, empty).forward(mx.array([7]))
    assert first.shape == (1, 512) and empty[0].offset == 1


def test_a_failing_decode_step_falls_back_to_the_models_forward() -> None:
    """A decoder that fails at run time (a kernel that does not build, say) costs no token: the
    stream goes on with the model's own forward and produces what it would have produced."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx.solo import SoloStream

    model = _llama(None, dtype="float32")
    prompt = [(5 * j) % 400 + 7 for j in range(9)]

    def greedy(x: mx.array) -> mx.array:
        return mx.argmax(x, axis=-1)

    def run(decoder: object | None) -> list[int]:
        solo = SoloStream(model, make_prompt_cache(model), [], prompt, greedy, [])
        solo._decoder = decoder
        solo.prefill()
        return [solo.step()[0] for _ in range(6)]

    class Failing:
        calls = 0

        def forward(self, token: mx.array) -> mx.array:
            Failing.calls += 1
            raise RuntimeError("kernel build failed")

    assert run(Failing()) == run(None)
    assert Failing.calls == 1  # tried once, then the stream stays on the model's forward


@pytest.mark.parametrize("scaling", [None, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}])
def test_rope_folded_into_the_product_rotates_like_the_models_rope(scaling: dict[str, Any] | None) -> None:
    """The fused q/k/v kernel rotates by position * angle; the angles read off the model's rope
    module give its rotation at any position (plain and Llama-3 RoPE)."""
    import mlx.core as mx
    from mlx_lm.models.rope_utils import initialize_rope

    from ollmlx.runner.engines.mlx.fused_step import rope_angles

    rope = initialize_rope(64, 500000.0, False, scaling, 131072)
    theta = rope_angles(rope, 64)
    assert theta is not None
    x = mx.random.normal((1, 3, 1, 64))
    for pos in (0, 7, 1234, 30000):
        c, s = mx.cos(pos * theta), mx.sin(pos * theta)
        a, b = x[..., :32], x[..., 32:]
        ours = mx.concatenate([a * c - b * s, b * c + a * s], axis=-1)
        assert mx.abs(ours - rope(x, offset=pos)).max().item() < 1e-2  # float32 angles at large positions
    assert rope_angles(initialize_rope(64, 10000.0, True, None, 4096), 64) is None  # interleaved pairs


def test_the_fused_step_is_wanted_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import fused_step

    monkeypatch.delenv("OLLMLX_MLX_FUSED", raising=False)
    assert fused_step.wanted() and fused_step.whole_wanted()  # the default on a CUDA host (bench/RESULTS.md)
    monkeypatch.setenv("OLLMLX_MLX_FUSED", "layers")
    assert fused_step.wanted() and not fused_step.whole_wanted()
    monkeypatch.setenv("OLLMLX_MLX_FUSED", "0")
    assert not fused_step.wanted() and not fused_step.enabled()


def test_tuning_settles_the_arrays_a_model_keeps_outside_its_parameters() -> None:
    """mlx-lm's Llama-3 RoPE keeps `_freqs` lazy after loading; tuning evaluates it before any
    request (computed inside one on another stream, mlx-cuda waits on its event every step)."""
    import mlx.core as mx
    from mlx_lm.models import llama

    from ollmlx.runner.engines.mlx.host import settle_constants

    args = llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=3, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, vocab_size=128,
                           max_position_embeddings=4096, rope_theta=500000.0,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    model = llama.Model(args)
    mx.eval(model.parameters())
    assert settle_constants(model) == 3  # one `_freqs` per layer's rope
    assert settle_constants(llama.Model(llama.ModelArgs(
        model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-5, vocab_size=128))) == 0  # plain RoPE keeps none
