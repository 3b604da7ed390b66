"""Compiled one-token decode steps (compiled_step.py): the same logits as mlx-lm's own forward on a
plain KV cache, across buffer growth, and the cache stays a plain KVCache the rest of the engine
can use. The speed-up is measured in bench/probe_compiled_step.py, not here."""

from __future__ import annotations

from typing import Any

import pytest


def _tiny(seed: int = 3) -> Any:
    import mlx.core as mx
    from mlx_lm.models import llama

    mx.random.seed(seed)
    args = llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                           vocab_size=512, max_position_embeddings=4096, tie_word_embeddings=True)
    model = llama.Model(args)
    mx.eval(model.parameters())
    return model


def test_compiled_steps_give_the_plain_forwards_logits_across_buffer_growth() -> None:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx.compiled_step import CompiledDecoder, supports

    model = _tiny()
    prompt = mx.array([(7 * j) % 500 + 3 for j in range(1020)])[None]  # 4 steps short of 1,024
    plain, compiled = make_prompt_cache(model), make_prompt_cache(model)
    assert supports(compiled)
    model(prompt, cache=plain)
    model(prompt, cache=compiled)
    decoder = CompiledDecoder(model, compiled)
    token = mx.array([42])
    for _ in range(12):  # past 1,024: the buffers grow to 2,048 and the step is traced again
        want = model(token[None], cache=plain)[:, -1, :]
        got = decoder.forward(token)
        assert got.shape == want.shape
        assert mx.allclose(got, want, atol=1e-4).item()
        token = mx.argmax(want, axis=-1)
    assert compiled[0].offset == plain[0].offset == 1032
    assert compiled[0].keys.shape[2] == 2048
    # still a plain KVCache: mlx-lm's own forward carries on from it (a prompt read after a move)
    more = mx.array([[5, 6, 7]])
    assert mx.allclose(model(more, cache=compiled), model(more, cache=plain), atol=1e-4).item()


def test_a_trimmed_cache_steps_from_the_trimmed_position() -> None:
    """The solo path takes a token back (trim by one) when a sequence moves to the batch; the
    compiled step reads the position from the cache each time."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

    from ollmlx.runner.engines.mlx.compiled_step import CompiledDecoder

    model = _tiny(4)
    prompt = mx.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    plain, compiled = make_prompt_cache(model), make_prompt_cache(model)
    model(prompt, cache=plain)
    model(prompt, cache=compiled)
    decoder = CompiledDecoder(model, compiled)
    decoder.forward(mx.array([77]))
    trim_prompt_cache(compiled, 1)
    assert mx.allclose(decoder.forward(mx.array([88])), model(mx.array([[88]]), cache=plain)[:, -1, :],
                       atol=1e-4).item()


def test_windowed_and_empty_caches_are_not_compiled() -> None:
    from mlx_lm.models.cache import KVCache, RotatingKVCache

    from ollmlx.runner.engines.mlx.compiled_step import supports

    assert supports([KVCache(), KVCache()])
    assert not supports([KVCache(), RotatingKVCache(max_size=64)])
    assert not supports([])


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_engine_lone_stream_is_the_same_compiled_or_not(compiled: str, smol_loaded: Any, engine_factory: Any,
                                                        collector: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import compiled_step
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    monkeypatch.setenv("OLLMLX_MLX_COMPILE", compiled)
    assert compiled_step.usable(smol_loaded.model)  # checked once per model, before counting steps
    steps: list[int] = []
    forward = compiled_step.CompiledDecoder.forward
    monkeypatch.setattr(compiled_step.CompiledDecoder, "forward",
                        lambda self, token: steps.append(1) or forward(self, token))
    engine = engine_factory(smol_loaded)
    got = collector()
    engine.submit(CompletionRequest(prompt="<|im_start|>user\nWrite a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n",
                                    options=SamplingOptions(temperature=0, num_predict=24)), got)
    assert got.done.wait(300)
    assert engine.solo_tokens >= 20  # decoded on the solo path
    assert got.final["eval_count"] == 24
    # every token after the prompt's forward, and the one queued ahead when the stream ends
    assert len(steps) == (24 if compiled == "1" else 0)
    reference = smol_reference(smol_loaded)
    assert got.text == reference


_REFERENCE: dict[int, str] = {}


def smol_reference(loaded: Any) -> str:
    """SmolLM2's greedy 24 tokens for the prompt above, from mlx-lm's own `generate_step`."""
    if id(loaded) not in _REFERENCE:
        import mlx.core as mx
        from mlx_lm.generate import generate_step

        ids = loaded.tokenizer.encode(
            "<|im_start|>user\nWrite a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
        out = [int(t) for t, _ in generate_step(mx.array(ids), loaded.model, max_tokens=24)]
        _REFERENCE[id(loaded)] = loaded.tokenizer.decode(out)
    return _REFERENCE[id(loaded)]


def test_a_model_that_masks_without_its_cache_keeps_the_plain_forward() -> None:
    """A model that sets no mask for a one-token step would attend to the buffer's unused tail:
    the once-per-model check catches it and the solo path keeps mlx-lm's forward."""
    from mlx_lm.models import llama

    from ollmlx.runner.engines.mlx.compiled_step import usable

    class MasksOnItsOwn(llama.Model):
        def __call__(self, inputs: Any, cache: Any = None, input_embeddings: Any = None) -> Any:
            h = self.model.embed_tokens(inputs)
            for layer, c in zip(self.model.layers, cache, strict=True):
                h = layer(h, None if inputs.shape[1] == 1 else "causal", cache=c)
            return self.model.embed_tokens.as_linear(self.model.norm(h))

    good = _tiny(5)
    bad = MasksOnItsOwn(good.args)
    bad.update(good.parameters())
    assert usable(good)
    assert not usable(bad)


def test_buffers_take_power_of_two_capacities() -> None:
    """A prompt leaves mlx-lm's buffer at a multiple of 256 (768 here); the first compiled step
    moves it to 1,024, so that the traces a model collects are few."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx.compiled_step import CompiledDecoder

    model = _tiny(6)
    plain, compiled = make_prompt_cache(model), make_prompt_cache(model)
    prompt = mx.array([(5 * j) % 500 + 3 for j in range(600)])[None]
    model(prompt, cache=plain)
    model(prompt, cache=compiled)
    assert compiled[0].keys.shape[2] == 768
    got = CompiledDecoder(model, compiled).forward(mx.array([9]))
    assert compiled[0].keys.shape[2] == 1024
    assert mx.allclose(got, model(mx.array([[9]]), cache=plain)[:, -1, :], atol=1e-4).item()
