"""The MLX engine on real mlx (CPU here): GGUF loading, tokenizer, batching, stops, cancel."""

from __future__ import annotations

import time
from typing import Any

import pytest

from helpers import COUNT_PROMPT, assert_counts_on, chat_prompt, greedy, run, smollm2_gguf

QUESTION = "What is the capital of France? Answer briefly."


def test_gguf_tokenizer_matches_llama_cpp(smol_loaded: Any) -> None:
    # the tokenizer rebuilt from tokenizer.ggml.* must encode exactly as llama.cpp does
    import llama_cpp

    ref = llama_cpp.Llama(model_path=str(smollm2_gguf()), vocab_only=True, verbose=False)
    texts = ["Hello world", "  leading spaces and\ttabs\n\nnewlines", "numbers 12345 and 3.14159",
             "unicode: café naïve 日本語 🙂", "<|im_start|>user\nhi<|im_end|>", "don't won't it's"]
    for text in texts:
        ours = smol_loaded.tokenizer.encode(text, add_special_tokens=False)
        theirs = ref.tokenize(text.encode(), add_bos=False, special=True)
        assert ours == theirs, text
        assert smol_loaded.tokenizer.decode(ours) == text


def test_greedy_answer_paris(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(smol_loaded)
    c = run(engine, collector, greedy(chat_prompt(smol_loaded, QUESTION)))
    assert "Paris" in c.text
    assert c.final["done_reason"] == "stop" and c.final["eval_count"] >= 5
    assert c.final["prompt_eval_count"] > 10


def test_concurrent_sequences_match_solo_runs(tiny_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(tiny_loaded, parallel=4)
    prompts = [f"Sequence number {i} says" for i in range(4)]
    solo = [run(engine, collector, greedy(p, 16)).text for p in prompts]
    cs = [collector() for _ in prompts]
    for p, c in zip(prompts, cs):
        engine.submit(greedy(p, 16), c)
    for c in cs:
        assert c.done.wait(120)
    assert [c.text for c in cs] == solo
    assert all(c.final["eval_count"] == 16 for c in cs)


def _sampled(prompt: str, n: int, **opts: Any) -> Any:
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    return CompletionRequest(prompt=prompt, options=SamplingOptions(num_predict=n, **opts))


@pytest.mark.parametrize("opts", [{"temperature": 0}, {"temperature": 0.9, "seed": 7}], ids=["greedy", "seeded"])
def test_lone_sequence_leaves_the_batch_and_comes_back(tiny_loaded: Any, engine_factory: Any, collector: Any,
                                                       opts: dict[str, Any]) -> None:
    """A sequence alone decodes off the batch on a plain KV cache (solo.py) and goes back into the
    batch when another request arrives. Its tokens are the batch's either way, also with a seed:
    each move draws the token drawn ahead again, with the same key."""
    batch_only = engine_factory(tiny_loaded, parallel=4)
    batch_only.solo_enabled = False
    reference = run(batch_only, collector, _sampled("The lone sequence", 300, **opts))
    assert batch_only.solo_tokens == 0
    engine = engine_factory(tiny_loaded, parallel=4)
    alone = run(engine, collector, _sampled("The lone sequence", 300, **opts))
    assert engine.solo_tokens >= 290 and alone.text == reference.text
    a = collector()
    engine.submit(_sampled("The lone sequence", 300, **opts), a)
    deadline = time.monotonic() + 60
    while len(a.chunks) < 40 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert not a.done.is_set(), "the first request ended before the second came"
    solo_before = engine.solo_tokens
    b = run(engine, collector, _sampled("A second request", 20, **opts))
    assert a.done.wait(120)
    assert b.final["eval_count"] == 20 and a.final["eval_count"] == 300
    assert a.text == reference.text
    assert engine.solo_tokens > solo_before  # alone again after the second finished


def test_request_arriving_during_a_solo_prefill(tiny_loaded: Any, engine_factory: Any, collector: Any) -> None:
    """A request that finds the engine idle reads its prompt off the batch, in chunks; one that
    arrives meanwhile sends the half-read prompt into the batch with its cache. Both outputs are
    the batch's, and the first one's prompt is not read twice."""
    long_prompt = " ".join(f"w{i}" for i in range(600))
    batch_only = engine_factory(tiny_loaded, parallel=4, prefill_step=16)
    batch_only.solo_enabled = False
    want_a = run(batch_only, collector, greedy(long_prompt, 12)).text
    want_b = run(batch_only, collector, greedy("Another one", 12)).text
    engine = engine_factory(tiny_loaded, parallel=4, prefill_step=16)
    a, b = collector(), collector()
    engine.submit(greedy(long_prompt, 12), a)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        solo = engine._solo
        if solo is not None and solo.tokens and not solo.ready:
            break
        time.sleep(0.001)
    else:
        pytest.fail("the first request was never seen half-way through its prompt")
    engine.submit(greedy("Another one", 12), b)
    assert a.done.wait(120) and b.done.wait(120)
    assert (a.text, b.text) == (want_a, want_b)
    assert a.final["cached_tokens"] == 0 and a.final["prompt_eval_count"] > 600


def test_stop_string_across_tokens_is_not_leaked(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(smol_loaded)
    full = run(engine, collector, greedy(chat_prompt(smol_loaded, QUESTION))).text
    assert "France is Paris" in full
    c = run(engine, collector, greedy(chat_prompt(smol_loaded, QUESTION), stop=["ce is Par"]))
    assert c.text == full[: full.index("ce is Par")]
    assert c.final["done_reason"] == "stop"


def test_cancel_frees_the_sequence(tiny_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(tiny_loaded)
    c = collector()
    rid = engine.submit(greedy("cancel me", 2000), c)
    import time

    deadline = time.monotonic() + 30
    while not c.chunks and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.cancel(rid)
    deadline = time.monotonic() + 10
    while engine.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active == 0
    assert not c.done.is_set() and len(c.chunks) < 2000


def test_prefix_cache_hit_skips_prefill(tiny_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(tiny_loaded)
    prefix = "You are a helpful assistant. " * 20
    first = run(engine, collector, greedy(prefix + "Question one?", 4))
    second = run(engine, collector, greedy(prefix + "Question two?", 4))
    assert first.final["cached_tokens"] == 0
    assert second.final["cached_tokens"] > 100
    assert second.final["prompt_eval_count"] < first.final["prompt_eval_count"] // 2


def test_prompt_counted_by_the_server_is_not_tokenized_again(tiny_loaded: Any, engine_factory: Any,
                                                             collector: Any) -> None:
    # the server's num_ctx check (/tokenize) and the engine read the same long prompt
    engine = engine_factory(tiny_loaded)
    prompt = "fact: the red box holds seven marbles. " * 60
    counted = engine.tokenize(prompt, add_special=True)
    done = run(engine, collector, greedy(prompt, 2))
    assert engine.encode.hits == 1
    assert done.final["prompt_eval_count"] == len(counted)


def test_prompt_longer_than_context(tiny_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(tiny_loaded, num_ctx=64)
    long = "word " * 200
    c = run(engine, collector, greedy(long, 4))
    assert c.final["done"] and c.final["prompt_eval_count"] < 64
    no_shift = greedy(long, 4)
    no_shift.shift = False
    c = run(engine, collector, no_shift)
    assert "error" in c.final and "longer than the context length" in c.final["error"]


def test_context_shift_keeps_generating(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    """§2 shift: a sequence that fills num_ctx keeps num_keep tokens, drops half of the rest and
    goes on, still making sense (the count continues); shift false ends it with "length"."""
    engine = engine_factory(smol_loaded, num_ctx=64, parallel=2)
    shifted = run(engine, collector, greedy(COUNT_PROMPT, 120))
    assert shifted.final["done_reason"] == "length" and shifted.final["eval_count"] == 120
    assert_counts_on(shifted.text)
    no_shift = greedy(COUNT_PROMPT, 120)
    no_shift.shift = False
    c = run(engine, collector, no_shift)
    assert c.final["done_reason"] == "length"
    # the window holds 64; the last token drawn need not fit, it is never read back
    assert c.final["prompt_eval_count"] + c.final["cached_tokens"] + c.final["eval_count"] <= 65


def test_context_shift_keeps_the_grammar_in_step(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    """A schema-constrained sequence shifted several times writes what it writes unshifted: the
    grammar matcher neither loses nor repeats a token across the re-entry."""
    # a 32-token window: the 14-token prompt fills it after 18 tokens, then every 14 (3 shifts in 60)
    req = greedy("Count from 1 to 100 as a JSON array:", 60)
    req.format = {"type": "array", "items": {"type": "integer"}}
    shifted = run(engine_factory(smol_loaded, num_ctx=32, parallel=1), collector, req)
    whole = run(engine_factory(smol_loaded, num_ctx=1024, parallel=1), collector, req)
    assert shifted.final["eval_count"] == whole.final["eval_count"] == 60
    assert shifted.text == whole.text and shifted.text.startswith("[1, 2, 3")


@pytest.mark.parametrize("n", [1, 7])
def test_num_predict_limits_tokens(tiny_loaded: Any, engine_factory: Any, collector: Any, n: int) -> None:
    engine = engine_factory(tiny_loaded)
    c = run(engine, collector, greedy("limit", n))
    assert c.final["eval_count"] == n and c.final["done_reason"] == "length"


def test_format_json_and_schema_always_parse(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    import json

    engine = engine_factory(smol_loaded)
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    for fmt in ("json", schema):
        req = greedy(chat_prompt(smol_loaded, "Give me a city and its population as JSON."), 60)
        req.format = fmt
        c = run(engine, collector, req)
        data = json.loads(c.text)
        assert isinstance(data, dict)
        if fmt is schema:
            assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_bad_schema_is_a_400(smol_loaded: Any, engine_factory: Any, collector: Any) -> None:
    engine = engine_factory(smol_loaded)
    req = greedy("x", 4)
    req.format = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    c = run(engine, collector, req)
    assert c.final.get("status") == 400 and "schema" in c.final["error"]
    req.format = "yaml"
    c = run(engine, collector, req)
    assert c.final.get("status") == 400 and c.final["error"].startswith('invalid format: "yaml"')
