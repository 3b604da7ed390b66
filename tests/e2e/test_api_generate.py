"""POST /api/generate against a live server (spec §2; §8 keep_alive 0, §13 templates, §18 context
limits): chunks and metrics, load/unload, prompt construction (system, MESSAGEs, images, `template`,
`suffix`, `raw`, the deprecated `context`), `_debug_render_only`, truncation and `shift`, and the
order in which Ollama checks a request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from helpers import COUNT_PROMPT, Server, assert_counts_on

MODEL = "smollm2:135m"
LONG = "registry.ollama.ai/library/smollm2:135m"
CHATML_HI = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
PROMPT_TOO_LONG = ("the prompt is longer than the context length currently available to the model; shorten the "
                   "prompt, adjust the context length in settings, or use a model with a longer context length")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def generate(server: Server, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    body.setdefault("stream", False)
    return httpx.post(server.url + "/api/generate", json=body, timeout=300)


def rendered(server: Server, **body: Any) -> str:
    r = generate(server, _debug_render_only=True, **body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] is False and out["response"] == "" and "done_reason" not in out
    return str(out["_debug_info"]["rendered_template"])


def create(server: Server, **body: Any) -> None:
    r = httpx.post(server.url + "/api/create", json={**body, "stream": False}, timeout=300)
    assert r.status_code == 200 and r.json() == {"status": "success"}, r.text


def delete(server: Server, name: str) -> None:
    """Unload (other modules share the session server) and delete."""
    httpx.post(server.url + "/api/generate", json={"model": name, "keep_alive": 0}, timeout=60)
    httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=60)


@pytest.fixture(scope="module")
def history_model(server: Server) -> Iterator[str]:
    """smollm2 with a SYSTEM and six MESSAGEs (each ~25 tokens)."""
    name = "smol-history:latest"
    turns = []
    for i in range(3):
        turns += [{"role": "user", "content": f"Question number {i}: " + "tell me about the weather " * 3},
                  {"role": "assistant", "content": f"Answer number {i}: " + "it is sunny and warm " * 3}]
    create(server, model=name, **{"from": MODEL}, system="You are terse.", messages=turns)
    yield name
    delete(server, name)


@pytest.fixture(scope="module")
def fim_model(server: Server) -> Iterator[str]:
    """smollm2 with a template that uses .Suffix (the insert capability)."""
    name = "smol-fim:latest"
    create(server, model=name, **{"from": MODEL},
           template="{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}")
    yield name
    delete(server, name)


def test_stream_chunks_final_metrics_and_done_reasons(server: Server) -> None:
    """§2: `done:false` deltas, then one final chunk with done_reason and integer-nanosecond
    metrics (load ≤ total); "length" when num_predict runs out, "stop" at the end of the answer."""
    with httpx.stream("POST", server.url + "/api/generate", timeout=300, json={
            "model": MODEL, "prompt": "Count: one, two,", "options": {"temperature": 0, "num_predict": 4}}) as r:
        chunks = [json.loads(x) for x in r.iter_lines() if x]
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    final = chunks[-1]
    assert final["done_reason"] == "length" and final["eval_count"] == 4
    assert 0 < final["load_duration"] <= final["total_duration"]
    assert final["prompt_eval_count"] > 0 and final["eval_duration"] > 0
    whole = generate(server, prompt="What is the capital of France? Answer briefly.",
                     options={"temperature": 0, "num_predict": 60}).json()
    assert whole["done_reason"] == "stop" and "Paris" in whole["response"]
    # non-stream: the responses of all chunks joined, the rest from the last one
    same = generate(server, prompt="Count: one, two,", options={"temperature": 0, "num_predict": 4}).json()
    assert same["response"] == "".join(c["response"] for c in chunks)


def test_load_and_unload_with_an_empty_prompt(server: Server) -> None:
    """§2, §8: an empty prompt loads (`done_reason` "load"); with keep_alive 0 it unloads, and
    that is decided before any capability check (think on a non-thinking model, a suffix)."""
    r = generate(server, prompt="")
    assert r.status_code == 200
    assert list(r.json()) == ["model", "created_at", "response", "done", "done_reason"]
    assert r.json()["done_reason"] == "load" and r.json()["response"] == ""
    assert [m["name"] for m in httpx.get(server.url + "/api/ps").json()["models"]] == [MODEL]
    for extra in ({}, {"think": True}, {"suffix": "x"}, {"_debug_render_only": True}):
        r = generate(server, prompt="", keep_alive=0, **extra)
        assert r.status_code == 200, (extra, r.text)
        assert r.json()["done_reason"] == "unload" and r.json()["done"] is True
    assert httpx.get(server.url + "/api/ps").json() == {"models": []}
    # an empty prompt with `_debug_render_only` or a suffix still only loads (Ollama checks prompt == "")
    assert generate(server, prompt="", _debug_render_only=True).json()["done_reason"] == "load"
    # streaming a load gives that one object as the only NDJSON line
    with httpx.stream("POST", server.url + "/api/generate", json={"model": MODEL}, timeout=300) as s:
        lines = [json.loads(x) for x in s.iter_lines() if x]
    assert len(lines) == 1 and lines[0]["done_reason"] == "load"


def test_prompt_construction_and_debug_render(server: Server) -> None:
    """§2: not raw, the prompt is the chat render of system + MESSAGEs + user (the model's
    autodetected chatml template here); `system` overrides; images get [img-N] tags and are
    counted; `raw` sends the prompt untouched; `template` runs directly on the values."""
    assert rendered(server, prompt="Hi") == CHATML_HI
    assert rendered(server, prompt="Hi", system="Be brief.") == \
        "<|im_start|>system\nBe brief.<|im_end|>\n" + CHATML_HI
    r = generate(server, prompt="What is this?", images=[PNG], _debug_render_only=True).json()
    assert r["_debug_info"] == {"rendered_template": "<|im_start|>user\n[img-0]What is this?<|im_end|>\n"
                                                     "<|im_start|>assistant\n", "image_count": 1}
    r = generate(server, prompt="Look: [img] and [img]", images=[PNG, PNG], _debug_render_only=True).json()
    assert "Look: [img-0] and [img-1]" in r["_debug_info"]["rendered_template"]
    assert rendered(server, prompt="<raw text>", raw=True) == "<raw text>"
    assert rendered(server, prompt="Hi", template="Q: {{ .Prompt }} A:") == "Q: Hi A:"
    assert rendered(server, prompt="Hi", system="S", template="{{ .System }}|{{ .Prompt }}") == "S|Hi"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"prompt": "Hi", "raw": True, "system": "x"}, 400, "raw mode does not support template, system, or context"),
    ({"prompt": "Hi", "raw": True, "template": "{{ .Prompt }}"}, 400,
     "raw mode does not support template, system, or context"),
    ({"prompt": "Hi", "raw": True, "context": [1, 2]}, 400, "raw mode does not support template, system, or context"),
    ({"prompt": "Hi", "template": "{{ .Prompt }"}, 500, 'template: :1: unexpected "}" in operand'),
    ({"prompt": "Hi", "template": "{{ if .Prompt }}"}, 500, "template: :1: unexpected EOF"),
    ({"prompt": "def f(", "suffix": "return 1"}, 400, f"{LONG} does not support insert"),
    ({"prompt": "Hi", "think": True}, 400, f'"{MODEL}" does not support thinking'),
    ({"prompt": "Hi", "think": "high"}, 400, f'"{MODEL}" does not support thinking'),
    ({"prompt": "Hi", "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    ({"prompt": "Hi", "top_logprobs": -1}, 400, "top_logprobs must be between 0 and 20"),
    ({"model": "no-such-model", "top_logprobs": 99}, 400, "top_logprobs must be between 0 and 20"),
    ({"model": "no-such-model"}, 404, "model 'no-such-model' not found"),
    ({"model": ""}, 404, "model '' not found"),
    ({"model": "bad name!"}, 400, "invalid model name"),
])
def test_request_errors(server: Server, body: dict[str, Any], status: int, message: str) -> None:
    """§2, §19: exact status and text, checked in Ollama's order (top_logprobs before the model)."""
    r = generate(server, **body)
    assert (r.status_code, r.json()) == (status, {"error": message})


def test_think_false_is_always_accepted(server: Server) -> None:
    """§2, §9: think:false on a model without the thinking capability is fine."""
    r = generate(server, prompt="Hi", think=False, options={"temperature": 0, "num_predict": 2})
    assert r.status_code == 200 and "thinking" not in r.json()


def test_suffix_on_a_model_with_insert(server: Server, fim_model: str) -> None:
    """§2, §13: with `suffix` the template runs with {Prompt, Suffix} (FIM mode)."""
    assert rendered(server, model=fim_model, prompt="def f(", suffix="    return x") == \
        "<PRE> def f( <SUF>    return x <MID>"
    caps = httpx.post(server.url + "/api/show", json={"model": fim_model}).json()["capabilities"]
    assert caps == ["completion", "insert"]


def test_deprecated_context_is_detokenized_and_prepended(server: Server, history_model: str) -> None:
    """§2, §26: `context` from a final chunk comes back as text in front of the next prompt; with
    it the model's MESSAGEs are left out. Shown by _debug_render_only too."""
    first = generate(server, prompt="Hi", options={"temperature": 0, "num_predict": 3}).json()
    ctx = first["context"]
    assert isinstance(ctx, list) and all(isinstance(t, int) for t in ctx) and len(ctx) > 5
    text = rendered(server, prompt="And then?", context=ctx)
    assert text.startswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" + first["response"])
    assert text.endswith("<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n")
    with_history = rendered(server, model=history_model, prompt="Hi")
    assert "Question number 0" in with_history and with_history.startswith("<|im_start|>system\nYou are terse.")
    without = rendered(server, model=history_model, prompt="Hi", context=ctx)
    assert "Question number" not in without and "You are terse." in without
    follow = generate(server, prompt="And then?", context=ctx, options={"temperature": 0, "num_predict": 3})
    assert follow.status_code == 200 and len(follow.json()["context"]) > len(ctx)
    # raw mode returns no context
    assert "context" not in generate(server, prompt="Hi", raw=True, options={"num_predict": 2}).json()


def test_truncation_drops_the_oldest_messages(server: Server, history_model: str) -> None:
    """§2 truncate (server/prompt.go chatPrompt): when the rendered prompt exceeds num_ctx the
    oldest MESSAGEs go first; the system message and the prompt stay; truncate:false keeps all."""
    full = rendered(server, model=history_model, prompt="Hi", options={"num_ctx": 4096})
    assert all(f"number {i}" in full for i in range(3))
    cut = rendered(server, model=history_model, prompt="Hi", options={"num_ctx": 110})
    assert cut.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n") and cut.endswith(CHATML_HI)
    assert "Question number 0" not in cut and "Answer number 2" in cut
    assert rendered(server, model=history_model, prompt="Hi", truncate=False, options={"num_ctx": 110}) == full
    # a real generation: the runner refuses the whole history (over num_ctx in tokens) before
    # running anything, the server truncates and asks again; `context` holds exactly `cut`'s tokens
    # and the output's (the runner's own cut would have dropped the system prompt instead)
    out = generate(server, model=history_model, prompt="Hi", options={"num_ctx": 110, "num_predict": 1,
                                                                       "temperature": 0}).json()
    again = rendered(server, model=history_model, prompt="x", context=out["context"], options={"num_ctx": 4096})
    assert again.startswith(cut) and out["prompt_eval_count"] + 1 == len(out["context"])


def test_prompt_longer_than_the_context(server: Server) -> None:
    """§2 shift, §18: with shift:false an over-long prompt is a 400 with Ollama's text; by default
    the runner keeps num_keep tokens and the newest part, and shifts the context while generating
    (num_keep tokens stay, half of the rest goes), so output goes on past num_ctx."""
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 20
    opts = {"num_ctx": 64, "temperature": 0, "num_predict": 100}
    r = generate(server, prompt=long_prompt, raw=True, shift=False, options=opts)
    assert (r.status_code, r.json()) == (400, {"error": PROMPT_TOO_LONG})
    r = generate(server, prompt=long_prompt, raw=True, options=opts)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["prompt_eval_count"] < 64
    assert out["done_reason"] == "stop" or out["eval_count"] == 100  # no early "length" at the window


def test_context_shift_while_generating(server: Server) -> None:
    """§2 shift: generation that fills num_ctx goes on after a context shift, and still makes
    sense (the count continues); with shift:false it ends with "length" at the window."""
    opts = {"num_ctx": 64, "temperature": 0, "num_predict": 120}
    out = generate(server, prompt=COUNT_PROMPT, raw=True, options=opts).json()
    assert out["done_reason"] == "length" and out["eval_count"] == 120
    assert_counts_on(out["response"])
    out = generate(server, prompt=COUNT_PROMPT, raw=True, shift=False, options=opts).json()
    assert out["done_reason"] == "length"
    assert out["prompt_eval_count"] + out["eval_count"] <= 65  # the last token drawn is never read back
