"""The llama.cpp engine on the packaged SmolLM2 GGUF (real llama.cpp, CPU): one context shared by
several sequences, prefix reuse per sequence, Ollama's sampling options on llama.cpp's sampler
chain, grammar-enforced `format`, logprobs, stops, cancellation (spec §7 options, §4 generate:
format/logprobs/context; runner protocol in docs/architecture.md)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from helpers import COUNT_PROMPT, assert_counts_on, chat_prompt, greedy, run, run_together, smollm2_gguf
from ollmlx.runner.protocol import CompletionRequest, ModelSpec, SamplingOptions

QUESTION = "What is the capital of France? Answer briefly."


@pytest.fixture(scope="module")
def smol() -> Any:
    from ollmlx.runner.engines.llamacpp.model import LlamaCppModel

    model = LlamaCppModel(str(smollm2_gguf()))
    yield model
    model.close()


@pytest.fixture
def make_engine(smol: Any, engine_factory: Any) -> Any:
    from ollmlx.runner.engines.llamacpp.engine import LlamaCppEngine

    def make(num_ctx: int = 1024, parallel: int = 4) -> LlamaCppEngine:
        return engine_factory(smol, engine=LlamaCppEngine, num_ctx=num_ctx, parallel=parallel)

    return make


def test_greedy_answer_paris(smol: Any, make_engine: Any, collector: Any) -> None:
    c = run(make_engine(), collector, greedy(chat_prompt(smol, QUESTION)))
    assert "Paris" in c.text
    assert c.final["done_reason"] == "stop" and c.final["eval_count"] >= 5
    assert c.final["prompt_eval_count"] > 10 and c.final["eval_duration"] > 0


def test_runner_engine_info_and_tokenizer() -> None:
    from ollmlx.runner.engines.llamacpp.runner_engine import LlamaCppRunnerEngine

    spec = ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smollm2:135m")
    runner = LlamaCppRunnerEngine(spec, 512, 2)
    try:
        info = runner.info()
        assert (info.engine, info.device, info.num_ctx, info.parallel) == ("llamacpp", "cpu", 512, 2)
        assert info.context_length == 8192 and info.memory_bytes > 50_000_000
        text = "<|im_start|>user\nhi there<|im_end|>"
        ids = runner.tokenize(text)
        assert ids[0] == 1 and len(ids) == 6  # special-token text becomes its token
        assert runner.detokenize(ids) == text
    finally:
        runner.engine.stop()


def test_embeddings_of_a_generation_model() -> None:
    """§4 /api/embed on a chat model: mean-pooled final hidden states from a second context."""
    import numpy as np

    from ollmlx.runner.engine_api import EngineError
    from ollmlx.runner.engines.llamacpp.runner_engine import LlamaCppRunnerEngine
    from ollmlx.runner.protocol import EmbeddingRequest

    spec = ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smollm2:135m")
    runner = LlamaCppRunnerEngine(spec, 256, 1)
    try:
        texts = ["The sky is blue.", "Paris is the capital of France.", "def f(x): return x * 2"]
        out = runner.embed(EmbeddingRequest(inputs=texts))
        vecs = np.array(out.embeddings)
        assert vecs.shape == (3, 576) and np.isfinite(vecs).all()
        assert out.prompt_eval_count == sum(len(runner.tokenize(t, True)) for t in texts)
        solo = np.array(runner.embed(EmbeddingRequest(inputs=[texts[1]])).embeddings[0])
        assert solo @ vecs[1] / np.linalg.norm(solo) / np.linalg.norm(vecs[1]) > 0.99999  # batching changes nothing
        unit = vecs / np.linalg.norm(vecs, axis=-1, keepdims=True)
        assert (unit @ unit.T)[np.triu_indices(3, 1)].max() < 0.99  # distinct inputs, distinct vectors
        with pytest.raises(EngineError) as err:
            runner.embed(EmbeddingRequest(inputs=["word " * 400], truncate=False))
        assert err.value.status == 400 and "context length" in str(err.value)
        cut = runner.embed(EmbeddingRequest(inputs=["word " * 400]))
        assert cut.prompt_eval_count == 256
        assert runner.info().embedding is False  # it generates too
    finally:
        runner.engine.stop()
        runner.embedder.close()


def test_concurrent_sequences_match_solo_runs(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine(parallel=4)
    prompts = [chat_prompt(smol, q) for q in (QUESTION, "Name three colors.", "What is 2+2?", "Say hello to Bob.")]
    solo = [run(engine, collector, greedy(p, 16)).text for p in prompts]
    together = run_together(engine, collector, [greedy(p, 16) for p in prompts])
    assert [c.text for c in together] == solo
    assert len(set(solo)) == 4


def test_more_requests_than_slots_wait_their_turn(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine(parallel=2)
    cs = run_together(engine, collector, [greedy(f"Count from {i} to {i + 5}:", 6) for i in range(5)])
    assert all(c.final["done"] and c.final["eval_count"] == 6 for c in cs)
    assert engine.active == 0


def test_stop_string_across_tokens_is_not_leaked(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    full = run(engine, collector, greedy(chat_prompt(smol, QUESTION))).text
    assert "France is Paris" in full
    c = run(engine, collector, greedy(chat_prompt(smol, QUESTION), stop=["ce is Par"]))
    assert c.text == full[: full.index("ce is Par")]
    assert c.final["done_reason"] == "stop"


@pytest.mark.parametrize("n", [1, 7])
def test_num_predict_limits_tokens(smol: Any, make_engine: Any, collector: Any, n: int) -> None:
    c = run(make_engine(), collector, greedy("Once upon a time", n))
    assert c.final["eval_count"] == n and c.final["done_reason"] == "length"


def test_seed_reproduces_under_batching(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    prompt = chat_prompt(smol, "Write a sentence about the sea.")

    def sampled(seed: int) -> CompletionRequest:
        return CompletionRequest(prompt=prompt, options=SamplingOptions(temperature=1.0, seed=seed, num_predict=20))

    alone = run(engine, collector, sampled(42)).text
    batched = run_together(engine, collector, [sampled(42), greedy(chat_prompt(smol, QUESTION)), sampled(7)])
    assert batched[0].text == alone
    others = {run(engine, collector, sampled(s)).text for s in (1, 2, 3)}
    assert len(others | {alone}) > 1, "different seeds never changed the output"


def test_repeat_penalty_changes_greedy_output(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    prompt = "one one one one one one one one"

    def repeats(req: CompletionRequest) -> int:
        req.return_tokens = True
        final = run(engine, collector, req).final
        out = final["tokens"][-final["eval_count"]:]
        return len(out) - len(set(out))

    assert repeats(greedy(prompt, 8)) > repeats(greedy(prompt, 8, repeat_penalty=3.0))


def test_format_json_and_schema_always_parse(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    for fmt in ("json", schema):
        req = greedy(chat_prompt(smol, "Reply with a JSON object with keys city and population for Paris."), 80)
        req.format = fmt
        c = run(engine, collector, req)
        assert c.final["done_reason"] == "stop", c.text  # the grammar ended the object
        data = json.loads(c.text)
        assert isinstance(data, dict)
        if fmt is schema:
            assert set(data) == {"city", "population"}
            assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_bad_format_is_a_400(make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    req = greedy("x", 4)
    req.format = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    c = run(engine, collector, req)
    assert c.final.get("status") == 400 and "schema" in c.final["error"]
    req.format = "yaml"
    c = run(engine, collector, req)
    assert c.final.get("status") == 400 and c.final["error"].startswith('invalid format: "yaml"')


def test_logprobs_and_top_logprobs(smol: Any, make_engine: Any, collector: Any) -> None:
    req = greedy(chat_prompt(smol, QUESTION), 5)
    req.logprobs, req.top_logprobs = True, 3
    c = run(make_engine(), collector, req)
    entries = [e for ch in c.chunks for e in ch.get("logprobs", [])]
    assert len(entries) == 5
    for e in entries:
        top = e["top_logprobs"]
        assert len(top) == 3 and [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert top[0]["token"] == e["token"] and e["logprob"] == pytest.approx(top[0]["logprob"])  # greedy
        assert e["logprob"] <= 0 and sum(math.exp(t["logprob"]) for t in top) <= 1.0 + 1e-6
        assert bytes(e["bytes"]).decode(errors="replace") == e["token"]
    assert "".join(e["token"] for e in entries) == c.text


def test_prefix_reuse_per_sequence(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine(parallel=2)
    prefix = "You are a helpful assistant. " * 20
    first = run(engine, collector, greedy(prefix + "Question one?", 4))
    second = run(engine, collector, greedy(prefix + "Question two?", 4))
    assert first.final["cached_tokens"] == 0
    assert second.final["cached_tokens"] > 100
    assert second.final["prompt_eval_count"] < first.final["prompt_eval_count"] // 2
    # the same prompt again: all but its last token come from the cache, and the text is unchanged
    again = run(engine, collector, greedy(prefix + "Question two?", 4))
    assert again.text == second.text and again.final["prompt_eval_count"] == 1
    # an unrelated prompt takes the other (empty) slot, leaving the cached prefix in place
    other = run(engine, collector, greedy("Something else entirely.", 4))
    assert other.final["cached_tokens"] == 0
    assert run(engine, collector, greedy(prefix + "Question two?", 4)).final["prompt_eval_count"] == 1
    assert engine.cache_hits == 3


def test_prompt_longer_than_context(make_engine: Any, collector: Any) -> None:
    engine = make_engine(num_ctx=64, parallel=1)
    long = "word " * 200
    c = run(engine, collector, greedy(long, 4))
    assert c.final["done"] and c.final["prompt_eval_count"] < 64
    no_shift = greedy(long, 4)
    no_shift.shift = False
    c = run(engine, collector, no_shift)
    assert c.final.get("status") == 400 and "longer than the context length" in c.final["error"]


def test_context_shift_keeps_generating(make_engine: Any, collector: Any) -> None:
    """§2 shift: a full window keeps num_keep tokens and moves the newer half of the rest down in
    the KV cache (llama.cpp's seq_rm + seq_add); the count goes on. shift false ends with "length"."""
    engine = make_engine(num_ctx=64, parallel=2)
    shifted = run(engine, collector, greedy(COUNT_PROMPT, 120))
    assert shifted.final["done_reason"] == "length" and shifted.final["eval_count"] == 120
    assert_counts_on(shifted.text)
    no_shift = greedy(COUNT_PROMPT, 120)
    no_shift.shift = False
    c = run(engine, collector, no_shift)
    assert c.final["done_reason"] == "length"
    # the window holds 64; the last token drawn need not fit, it is never read back
    assert c.final["prompt_eval_count"] + c.final["cached_tokens"] + c.final["eval_count"] <= 65


def test_return_tokens_gives_prompt_and_output(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine()
    req = greedy(chat_prompt(smol, QUESTION), 6)
    req.return_tokens = True
    c = run(engine, collector, req)
    tokens = c.final["tokens"]
    assert engine.detokenize(tokens).endswith(c.text)
    assert len(tokens) == c.final["prompt_eval_count"] + c.final["cached_tokens"] + c.final["eval_count"]


def test_cancel_frees_the_sequence(smol: Any, make_engine: Any, collector: Any) -> None:
    engine = make_engine(parallel=1)
    c = collector()
    rid = engine.submit(greedy("one one one one one one one one", 900), c)  # greedy repeats, never ends
    deadline = time.monotonic() + 30
    while len(c.chunks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.cancel(rid)
    deadline = time.monotonic() + 10
    while engine.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active == 0
    assert not c.done.is_set() and len(c.chunks) < 900
    # the only slot is free again
    assert "Paris" in run(engine, collector, greedy(chat_prompt(smol, QUESTION))).text


@pytest.mark.slow
def test_greedy_agrees_with_mlx_engine(smol: Any, smol_loaded: Any, engine_factory: Any, make_engine: Any,
                                       collector: Any) -> None:
    """Both engines run the same GGUF weights: greedy text agrees, and where it does not, the two
    best tokens were nearly tied at the first divergence (quantized kernels differ slightly)."""
    mlx_engine = engine_factory(smol_loaded, num_ctx=1024, parallel=1)
    lc_engine = make_engine(parallel=1)
    questions = [QUESTION, "Name three colors.", "What is 2+2?", "Write a haiku about rain.",
                 "Explain what a CPU does in one sentence."]
    report = []
    for q in questions:
        prompt = chat_prompt(smol, q)
        outs = []
        for engine in (mlx_engine, lc_engine):
            req = greedy(prompt, 32)
            req.logprobs, req.top_logprobs, req.return_tokens = True, 2, True
            c = run(engine, collector, req, timeout=300)
            entries = [e for ch in c.chunks for e in ch.get("logprobs", [])]
            outs.append((c.text, c.final["tokens"][-c.final["eval_count"]:] if c.final["eval_count"] else [], entries))
        (mtext, mtoks, mlp), (ltext, ltoks, llp) = outs
        if mtoks == ltoks:
            assert mtext == ltext  # and both detokenize them alike
            report.append((q, "same", None))
            continue
        i = next(k for k in range(min(len(mtoks), len(ltoks)) + 1)
                 if k >= len(mtoks) or k >= len(ltoks) or mtoks[k] != ltoks[k])
        margins = [lp[i]["top_logprobs"][0]["logprob"] - lp[i]["top_logprobs"][1]["logprob"]
                   for lp in (mlp, llp) if i < len(lp)]
        report.append((q, f"diverge at token {i}", margins))
        assert margins and min(margins) < 0.5, f"{q!r}: engines disagree at a confident token {i}: {margins}"
    print("\ncross-engine greedy agreement:", *report, sep="\n  ")


@pytest.mark.slow
def test_embeddings_agree_with_mlx_engine(smol_loaded: Any) -> None:
    """Mean pooling of the same GGUF on both engines gives the same direction (§4)."""
    import numpy as np

    from ollmlx.runner.engines.llamacpp.runner_engine import LlamaCppRunnerEngine
    from ollmlx.runner.engines.mlx.embed import decoder_embedder
    from ollmlx.runner.protocol import EmbeddingRequest

    spec = ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smollm2:135m")
    texts = ["The sky is blue.", "Paris is the capital of France.", "def f(x): return x * 2"]
    runner = LlamaCppRunnerEngine(spec, 256, 1)
    try:
        ours = np.array(runner.embed(EmbeddingRequest(inputs=texts)).embeddings)
    finally:
        runner.engine.stop()
        runner.embedder.close()
    mlx_embedder = decoder_embedder(smol_loaded, spec, 256)
    try:
        theirs = np.array(mlx_embedder.embed(EmbeddingRequest(inputs=texts)).embeddings)
    finally:
        mlx_embedder.stop()
    cos = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cos.min() > 0.999, cos
