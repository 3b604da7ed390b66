"""Runtime options and keep_alive against a live server (spec §7, §8): unknown and legacy keys
ignored, type errors with Ollama's texts, int options truncating numbers, load-time options
reloading the runner (and the others not), every keep_alive form, and the expiry timer."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from helpers import Server

MODEL = "smollm2:135m"


def generate(server: Server, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/api/generate", json={"model": MODEL, "stream": False, **body}, timeout=300)


def expires_in(server: Server, name: str = MODEL) -> float:
    models = {m["name"]: m for m in httpx.get(server.url + "/api/ps").json()["models"]}
    return datetime.fromisoformat(models[name]["expires_at"]).timestamp() - time.time()


def unload(server: Server) -> None:
    generate(server, keep_alive=0)


def test_unknown_and_legacy_options_are_ignored(server: Server) -> None:
    """§7: keys that are not options (incl. removed ones old clients send) are ignored; null skips;
    JSON numbers are truncated for int options."""
    r = generate(server, prompt="Hi", options={
        "numa": True, "low_vram": True, "f16_kv": True, "vocab_only": False, "use_mlock": True, "logits_all": False,
        "penalize_newline": True, "mirostat": 2, "mirostat_tau": 5.0, "mirostat_eta": 0.1, "tfs_z": 1.0,
        "no_such_option": "x", "temperature": None, "num_predict": 2.9, "top_k": 1})
    assert r.status_code == 200, r.text
    assert r.json()["eval_count"] == 2


@pytest.mark.parametrize(("options", "message"), [
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"top_p": True}, 'option "top_p" must be of type float32'),
    ({"num_predict": "5"}, 'option "num_predict" must be of type integer'),
    ({"seed": [1]}, 'option "seed" must be of type integer'),
    ({"num_ctx": {"n": 1}}, 'option "num_ctx" must be of type integer'),
    ({"main_gpu": "0"}, 'option "main_gpu" must be of type integer'),
    ({"use_mmap": "yes"}, 'option "use_mmap" must be of type boolean'),
    ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
    ({"stop": "END"}, 'option "stop" must be of type array'),
    ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
])
def test_option_type_errors_are_500(server: Server, options: dict[str, Any], message: str) -> None:
    """§7, §19: a wrong type is a 500 with Ollama's text, on generate and chat alike."""
    r = generate(server, prompt="Hi", options=options)
    assert (r.status_code, r.json()) == (500, {"error": message})
    r = httpx.post(server.url + "/api/chat", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": options})
    assert (r.status_code, r.json()) == (500, {"error": message})


def test_load_time_options_reload_the_runner(server: Server) -> None:
    """§7, §18 needsReload: changing num_ctx (a load-time option) on a loaded model starts a new
    runner; sampling options never do; the context length shows in /api/ps."""
    generate(server, prompt="Hi", options={"num_predict": 1})  # loads, or reuses the runner loaded as is
    first = server.runners()
    assert len(first) == 1
    generate(server, prompt="Hi", options={"num_predict": 1, "temperature": 0.1, "top_k": 3, "seed": 5})
    assert server.runners() == first
    models = httpx.get(server.url + "/api/ps").json()["models"]
    assert [m["context_length"] for m in models if m["name"] == MODEL] == [4096]
    generate(server, prompt="Hi", options={"num_predict": 1, "num_ctx": 1024})
    second = server.runners()
    assert len(second) == 1 and second != first
    models = httpx.get(server.url + "/api/ps").json()["models"]
    assert [m["context_length"] for m in models if m["name"] == MODEL] == [1024]
    unload(server)


def test_keep_alive_forms(server: Server) -> None:
    """§8: numbers are seconds (floats too), strings Go durations, negative means forever; each
    request with keep_alive resets a loaded runner's duration (one runner for all of them)."""
    forever = (290 * 365 * 86400, 293 * 365 * 86400)
    for keep_alive, (low, high) in [(30, (25, 30)), (90.5, (85, 90.5)), ("1h30m", (5395, 5400)),
                                    ("-1m", forever), (-5, forever), ("2m", (115, 120))]:
        r = generate(server, keep_alive=keep_alive)
        assert r.status_code == 200 and r.json()["done_reason"] == "load"
        assert low <= expires_in(server) <= high, keep_alive
    assert len(server.runners()) == 1
    generate(server, keep_alive="300ms")
    deadline = time.time() + 20
    while time.time() < deadline and server.runners():
        time.sleep(0.25)
    assert server.runners() == []


def test_absent_keep_alive_keeps_the_runners_duration(server: Server) -> None:
    """§8: a request without keep_alive (or with null) does not change a loaded runner's duration."""
    generate(server, keep_alive="1h")
    generate(server, prompt="Hi", options={"num_predict": 1})
    generate(server, prompt="Hi", keep_alive=None, options={"num_predict": 1})
    assert 3500 < expires_in(server) <= 3600
    unload(server)


def test_expiry_timer_unloads_the_runner(server: Server) -> None:
    """§8: the timer starts when the last request finishes; the runner process goes when it fires.
    keep_alive 0 with a prompt answers, then unloads."""
    r = generate(server, prompt="Hi", keep_alive="2s", options={"num_predict": 2})
    assert r.status_code == 200 and len(server.runners()) == 1
    deadline = time.time() + 20
    while time.time() < deadline and (server.runners() or httpx.get(server.url + "/api/ps").json()["models"]):
        time.sleep(0.25)
    assert server.runners() == [] and httpx.get(server.url + "/api/ps").json() == {"models": []}
    r = generate(server, prompt="Hi", keep_alive=0, options={"num_predict": 2})
    assert r.status_code == 200 and r.json()["done_reason"] == "length"
    deadline = time.time() + 20
    while time.time() < deadline and server.runners():
        time.sleep(0.25)
    assert server.runners() == []
