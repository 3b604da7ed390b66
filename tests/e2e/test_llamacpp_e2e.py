"""GGUF models on the llama.cpp engine through a live `ollmlx serve` and the official `ollama`
client (spec §2 generate, §3 chat, §6 ps, §7 options; engine choice in docs/supported-models.md)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from helpers import Server, create_smollm2, running_server

QUESTION = "What is the capital of France? Answer briefly."
GREEDY = {"temperature": 0, "num_predict": 24}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ollmlx-llamacpp")
    with running_server(tmp, {"OLLMLX_ENGINE": "llamacpp", "OLLAMA_NUM_PARALLEL": "2"}) as srv:
        create_smollm2(srv)
        yield srv
    assert srv.runners() == [], "runner processes outlived the server"


def engines(server: Server) -> dict[str, str]:
    ps = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
    return {m["name"]: m.get("engine", "") for m in ps}


def test_chat_and_ps_on_llamacpp(llama_server: Server) -> None:
    client = ollama.Client(host=llama_server.url)
    r = client.chat(model="smollm2:135m", messages=[{"role": "user", "content": QUESTION}], options=GREEDY)
    assert "Paris" in r.message.content
    assert r.done_reason == "stop" and r.eval_count and r.prompt_eval_count and r.eval_duration
    (loaded,) = client.ps().models
    assert loaded.model == "smollm2:135m" and loaded.size and loaded.size > 50_000_000
    assert loaded.context_length == 4096  # the default num_ctx, per sequence
    assert engines(llama_server) == {"smollm2:135m": "llamacpp"}


def test_streaming_chat_and_stop(llama_server: Server) -> None:
    client = ollama.Client(host=llama_server.url)
    chunks = list(client.chat(model="smollm2:135m", messages=[{"role": "user", "content": QUESTION}],
                              options={**GREEDY, "stop": ["Paris"]}, stream=True))
    text = "".join(c.message.content for c in chunks)
    assert len(chunks) > 2 and chunks[-1].done and chunks[-1].done_reason == "stop"
    assert "Paris" not in text and text.startswith("The capital of France is")


def test_generate_format_json_and_context(llama_server: Server) -> None:
    client = ollama.Client(host=llama_server.url)
    r = client.generate(model="smollm2:135m", format="json", options={"temperature": 0, "num_predict": 80},
                        prompt="Reply with a JSON object with keys city and population for Paris.")
    assert isinstance(json.loads(r.response), dict)
    r = client.generate(model="smollm2:135m", prompt="Count from one to twenty:",
                        options={"temperature": 0, "num_predict": 5})
    assert r.done_reason == "length" and r.eval_count == 5 and r.context and len(r.context) > 5


def test_parallel_requests_share_the_runner(llama_server: Server) -> None:
    client = ollama.Client(host=llama_server.url)
    questions = [QUESTION, "Name three colors."]
    solo = [client.generate(model="smollm2:135m", prompt=q, options=GREEDY).response for q in questions]
    together: list[str] = ["", ""]

    def ask(i: int) -> None:
        together[i] = client.generate(model="smollm2:135m", prompt=questions[i], options=GREEDY).response

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert together == solo
    assert len(llama_server.runners()) == 1


def test_embed_on_the_generation_runner(llama_server: Server) -> None:
    """§4 and §5 on a chat model served by llama.cpp: /api/embed normalises, the legacy route not."""
    client = ollama.Client(host=llama_server.url)
    r = client.embed(model="smollm2:135m", input=["The sky is blue.", "Paris is the capital of France."])
    assert len(r.embeddings) == 2 and all(len(v) == 576 for v in r.embeddings)
    assert all(abs(math.fsum(x * x for x in v) - 1.0) < 1e-4 for v in r.embeddings)
    legacy = client.embeddings(model="smollm2:135m", prompt="The sky is blue.").embedding
    norm = math.sqrt(math.fsum(x * x for x in legacy))
    assert abs(norm - 1.0) > 1e-2
    assert math.fsum(a * b for a, b in zip(legacy, r.embeddings[0])) / norm > 0.9999
    pids = set(llama_server.runners())
    client.generate(model="smollm2:135m", prompt="Hi", options={"temperature": 0, "num_predict": 2})
    assert set(llama_server.runners()) == pids and len(pids) == 1  # one runner generates and embeds


@pytest.mark.slow
def test_default_engine_and_model_parameter_override(tmp_path: Path) -> None:
    """Without OLLMLX_ENGINE a GGUF model runs on this host's default engine; a model's `engine`
    parameter (stored in its params layer, not an Ollama option) picks the other one."""
    from ollmlx.serve.loading import default_gguf_engine

    default = default_gguf_engine()
    other = "mlx" if default == "llamacpp" else "llamacpp"
    with running_server(tmp_path) as srv:
        create_smollm2(srv)
        r = httpx.post(srv.url + "/api/create", timeout=120, json={
            "model": "smol-other", "from": "smollm2:135m", "parameters": {"engine": other}, "stream": False})
        assert r.status_code == 200, r.text
        client = ollama.Client(host=srv.url)
        for name in ("smollm2:135m", "smol-other"):
            out = client.generate(model=name, prompt=QUESTION, options=GREEDY)
            assert "Paris" in out.response
        assert engines(srv) == {"smollm2:135m": default, "smol-other:latest": other}
