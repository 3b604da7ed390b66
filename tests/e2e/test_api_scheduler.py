"""The scheduler and the server's environment variables against live servers (spec §18, §22):
OLLAMA_MAX_LOADED_MODELS with Ollama's eviction order, OLLAMA_MAX_QUEUE's 503, requests waiting for
a model that is loading, OLLAMA_KEEP_ALIVE, OLLAMA_CONTEXT_LENGTH, OLLAMA_NUM_PARALLEL, OLLAMA_DEBUG
and OLLAMA_ORIGINS. Each server here shares the session server's store (two servers on one store
are supported), so no model is created twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, running_server, smollm2_gguf

MODEL = "smollm2:135m"
BUSY = "server busy, please try again.  maximum pending requests exceeded"


def generate(server: Server, model: str = MODEL, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/api/generate", json={"model": model, "stream": False, **body}, timeout=300)


def loaded(server: Server) -> list[str]:
    return [m["name"] for m in httpx.get(server.url + "/api/ps", timeout=60).json()["models"]]


@pytest.fixture(scope="module")
def variants(server: Server) -> Iterator[list[str]]:
    """Two more models on smollm2's weights (other manifests: runners of their own)."""
    names = ["smol-sched-b:latest", "smol-sched-c:latest"]
    for name in names:
        r = httpx.post(server.url + "/api/create", timeout=300,
                       json={"model": name, "from": MODEL, "system": name, "stream": False})
        assert r.status_code == 200, r.text
    yield names
    for name in names:
        httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=60)


def test_max_loaded_models_and_the_eviction_order(server: Server, variants: list[str], tmp_path: Path) -> None:
    """§18: at OLLAMA_MAX_LOADED_MODELS a new model evicts one: the idle runner with the shortest
    keep_alive (not the least recently used one)."""
    b, c = variants
    with running_server(tmp_path, {"OLLAMA_MAX_LOADED_MODELS": "2"}, models=server.models) as srv:
        generate(srv, MODEL, keep_alive="10m")
        generate(srv, b, keep_alive="1m")
        generate(srv, MODEL, keep_alive="30s")  # now the most recently used, and the shortest keep_alive
        assert sorted(loaded(srv)) == sorted([MODEL, b])
        generate(srv, c, keep_alive="5m")
        assert sorted(loaded(srv)) == sorted([b, c])  # LRU would have evicted b
        assert len(srv.runners()) == 2


def test_one_model_at_a_time(server: Server, variants: list[str], tmp_path: Path) -> None:
    """§18, §22: OLLAMA_MAX_LOADED_MODELS=1 keeps only the last model; its runner replaces the other."""
    b, _ = variants
    with running_server(tmp_path, {"OLLAMA_MAX_LOADED_MODELS": "1"}, models=server.models) as srv:
        generate(srv, MODEL)
        first = srv.runners()
        generate(srv, b)
        assert loaded(srv) == [b] and len(srv.runners()) == 1 and srv.runners() != first


def test_models_are_unloaded_to_fit_the_memory_budget(server: Server, variants: list[str], tmp_path: Path) -> None:
    """§18 fit check: with room for one SmolLM2 and a half (OLLMLX_MAX_MEMORY), loading a second
    one unloads the first; the estimate is the weights plus one context of 16-bit KV cache."""
    b, _ = variants
    estimate = smollm2_gguf().stat().st_size + 2 * 30 * 3 * 64 * 2 * 2048  # 30 layers, 3 KV heads of 64
    env = {"OLLMLX_MAX_MEMORY": str(int(estimate * 1.5)), "OLLAMA_CONTEXT_LENGTH": "2048"}
    with running_server(tmp_path, env, models=server.models) as srv:
        generate(srv, MODEL)
        generate(srv, b)
        assert loaded(srv) == [b] and len(srv.runners()) == 1
        assert "needs ~" in srv.log() and "unloading another model" in srv.log()
    env["OLLMLX_MAX_MEMORY"] = str(int(estimate * 2.5))
    with running_server(tmp_path / "roomy", env, models=server.models) as srv:
        generate(srv, MODEL)
        generate(srv, b)
        assert sorted(loaded(srv)) == sorted([MODEL, b])


def test_queue_limit_and_waiting_for_a_load(server: Server, variants: list[str], tmp_path: Path) -> None:
    """§18: requests for a model that is loading wait for it (one runner serves them all); beyond
    OLLAMA_MAX_QUEUE pending requests the answer is 503 with Ollama's text (two spaces)."""
    b, _ = variants
    with running_server(tmp_path, {"OLLAMA_MAX_QUEUE": "2"}, models=server.models) as srv:
        results: list[httpx.Response] = []

        def one(model: str) -> None:
            results.append(generate(srv, model, prompt="Hi", options={"num_predict": 2, "temperature": 0}))

        threads = [threading.Thread(target=one, args=(MODEL,)) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.2)
        time.sleep(0.3)  # both are waiting on the load now
        busy = generate(srv, b, prompt="Hi")
        for t in threads:
            t.join()
        assert (busy.status_code, busy.json()) == (503, {"error": BUSY})
        assert [r.status_code for r in results] == [200, 200]
        assert results[0].json()["response"] == results[1].json()["response"]
        assert loaded(srv) == [MODEL] and len(srv.runners()) == 1


def test_environment(server: Server, tmp_path: Path) -> None:
    """§22: OLLAMA_KEEP_ALIVE (a bare integer is seconds) is the default keep_alive;
    OLLAMA_CONTEXT_LENGTH the default num_ctx; OLLAMA_NUM_PARALLEL the runner's parallel sequences;
    OLLAMA_DEBUG=1 turns on debug logs; OLLAMA_ORIGINS may list browser extensions; OLLAMA_NO_CLOUD
    shows in /api/status."""
    env = {"OLLAMA_KEEP_ALIVE": "90", "OLLAMA_CONTEXT_LENGTH": "2048", "OLLAMA_NUM_PARALLEL": "2",
           "OLLAMA_DEBUG": "1", "OLLAMA_ORIGINS": "chrome-extension://*,moz-extension://abc", "OLLAMA_NO_CLOUD": "1"}
    with running_server(tmp_path / "env", env, models=server.models) as srv:
        assert httpx.get(srv.url + "/api/status").json() == {"cloud": {"disabled": True, "source": "env"}}
        assert generate(srv, prompt="Hi", options={"num_predict": 1}).status_code == 200
        entry = httpx.get(srv.url + "/api/ps").json()["models"][0]
        left = datetime.fromisoformat(entry["expires_at"]).timestamp() - time.time()
        assert 80 < left <= 90 and entry["context_length"] == 2048
        log = srv.log()
        assert "DEBUG" in log and "generate request model=smollm2:135m" in log
        assert "parallel=2" in log
        for origin in ("chrome-extension://abcdef", "moz-extension://abc"):
            r = httpx.get(srv.url + "/api/version", headers={"Origin": origin})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        assert httpx.get(srv.url + "/api/version", headers={"Origin": "moz-extension://other"}).status_code == 403
    with running_server(tmp_path / "forever", {"OLLAMA_KEEP_ALIVE": "-1"}, models=server.models) as srv:
        generate(srv)
        entry = httpx.get(srv.url + "/api/ps").json()["models"][0]
        years = (datetime.fromisoformat(entry["expires_at"]).timestamp() - time.time()) / (365 * 86400)
        assert 291 < years < 293 and entry["context_length"] == 4096
        assert "generate request model=" not in srv.log()  # OLLAMA_DEBUG unset: INFO
