"""The spine through the official `ollama` client against a live `ollmlx serve` (spec §1-§3, §6, §19)."""

from __future__ import annotations

import httpx
import ollama
import pytest

from helpers import Server

QUESTION = "What is the capital of France? Answer briefly."
GREEDY = {"temperature": 0, "num_predict": 24}


@pytest.fixture(scope="module")
def client(server: Server) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_root_head_and_version(server: Server) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/api/version").json()["version"]


def test_chat_greedy_answers_paris(client: ollama.Client) -> None:
    r = client.chat(model="smollm2:135m", messages=[{"role": "user", "content": QUESTION}], options=GREEDY)
    assert "Paris" in r.message.content
    assert r.done and r.done_reason == "stop" and r.message.role == "assistant"
    assert r.model == "smollm2:135m"
    for metric in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                   "eval_count", "eval_duration"):
        assert getattr(r, metric) and getattr(r, metric) > 0, metric


def test_chat_streaming_chunks(client: ollama.Client) -> None:
    chunks = list(client.chat(model="SmolLM2:135m", messages=[{"role": "user", "content": QUESTION}],
                              options=GREEDY, stream=True))
    assert len(chunks) > 2
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert chunks[-1].eval_count and chunks[-1].done_reason == "stop"
    # the model field echoes the request verbatim (spec §0)
    assert {c.model for c in chunks} == {"SmolLM2:135m"}
    assert "Paris" in "".join(c.message.content for c in chunks)


def test_generate_returns_context_and_respects_num_predict(client: ollama.Client) -> None:
    r = client.generate(model="smollm2:135m", prompt="Count from one to twenty:",
                        options={"temperature": 0, "num_predict": 5})
    assert r.done_reason == "length" and r.eval_count == 5
    assert r.context and len(r.context) > r.eval_count
    r2 = client.generate(model="smollm2:135m", prompt=QUESTION, options=GREEDY)
    assert "Paris" in r2.response


def test_stop_strings_are_not_leaked(client: ollama.Client) -> None:
    r = client.generate(model="smollm2:135m", prompt=QUESTION, options={**GREEDY, "stop": ["Paris"]})
    assert "Paris" not in r.response and r.done_reason == "stop"
    assert r.response.strip().startswith("The capital of France is")


def test_seed_reproduces_sampled_output(client: ollama.Client) -> None:
    opts = {"temperature": 1.0, "seed": 42, "num_predict": 16}
    a = client.generate(model="smollm2:135m", prompt="Write a word:", options=opts).response
    b = client.generate(model="smollm2:135m", prompt="Write a word:", options=opts).response
    assert a == b


def test_list_show_ps(client: ollama.Client) -> None:
    client.generate(model="smollm2:135m", prompt="hi", options={"num_predict": 1})
    names = [m.model for m in client.list().models]
    assert "smollm2:135m" in names
    show = client.show("smollm2:135m")
    assert show.details.format == "gguf" and show.details.family == "llama"
    assert show.details.quantization_level == "Q4_1" and show.details.parameter_size == "134.52M"
    assert "completion" in (show.capabilities or [])
    assert show.modelinfo and show.modelinfo["general.architecture"] == "llama"
    assert show.modelinfo["tokenizer.ggml.tokens"] == []  # long arrays elided unless verbose
    ps = [m for m in client.ps().models if m.model == "smollm2:135m"]  # other tests may have models loaded
    assert len(ps) == 1
    assert ps[0].size and ps[0].expires_at and ps[0].context_length


def test_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404 and exc.value.error == "model 'nope' not found"
    with pytest.raises(ollama.ResponseError) as exc:
        client.show("nope")
    assert exc.value.status_code == 404 and exc.value.error == "model 'nope:latest' not found"


def test_copy_and_delete(client: ollama.Client, server: Server) -> None:
    client.copy("smollm2:135m", "copied/smol:v1")
    assert "copied/smol:v1" in [m.model for m in client.list().models]
    client.delete("copied/smol:v1")
    assert "copied/smol:v1" not in [m.model for m in client.list().models]
    assert "smollm2:135m" in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as exc:
        client.delete("copied/smol:v1")
    assert exc.value.status_code == 404


def test_load_and_unload_with_empty_prompt(server: Server) -> None:
    r = httpx.post(server.url + "/api/generate", json={"model": "smollm2:135m"}, timeout=120).json()
    assert r == {"model": "smollm2:135m", "created_at": r["created_at"], "response": "", "done": True,
                 "done_reason": "load"}
    assert len(server.runners()) == 1
    r = httpx.post(server.url + "/api/chat", json={"model": "smollm2:135m", "messages": [], "keep_alive": 0},
                   timeout=120).json()
    assert r["done_reason"] == "unload" and r["message"] == {"role": "assistant", "content": ""}
    assert server.runners() == []
    assert httpx.get(server.url + "/api/ps").json() == {"models": []}


def test_keep_alive_zero_unloads_after_the_request(server: Server) -> None:
    r = httpx.post(server.url + "/api/generate", json={"model": "smollm2:135m", "prompt": "hi", "keep_alive": 0,
                                                        "options": {"num_predict": 2}, "stream": False}, timeout=120)
    assert r.status_code == 200 and r.json()["done"]
    for _ in range(50):
        if not server.runners():
            break
        import time

        time.sleep(0.1)
    assert server.runners() == []
