"""POST /api/push to an Ollama registry emulator (spec §6 /api/push, §17): statuses, the upload
protocol (POST → PATCH → PUT ?digest=, then the manifest), blobs the registry already has,
Bearer-token challenges, and a missing local model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from emulators.ollama_registry import OllamaRegistry
from helpers import Server

pytest_plugins = ("emulators.fixtures",)


def push(server: Server, model: str, **extra: Any) -> tuple[int, list[dict[str, Any]]]:
    with httpx.stream("POST", server.url + "/api/push", json={"model": model, "insecure": True, **extra},
                      timeout=300) as r:
        return r.status_code, [json.loads(line) for line in r.iter_lines() if line]


@pytest.fixture
def target() -> Iterator[OllamaRegistry]:
    """An empty registry of its own that wants a token, as registry.ollama.ai does for pushes."""
    with OllamaRegistry(token="push-token") as reg:
        yield reg


@pytest.mark.slow
def test_push_statuses_uploads_and_manifest(server: Server, target: OllamaRegistry) -> None:
    name = f"{target.host}/team/smol:v1"
    r = httpx.post(server.url + "/api/copy", json={"source": "smollm2:135m", "destination": name})
    assert r.status_code == 200
    status, events = push(server, name)
    assert status == 200, events
    statuses = [e["status"] for e in events]
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
    local = (server.models / "manifests" / target.host / "team" / "smol" / "v1").read_bytes()
    doc = json.loads(local)
    for layer in [*doc["layers"], doc["config"]]:
        d = layer["digest"]
        mine = [e for e in events if e.get("digest") == d]
        assert mine[0] == {"status": "starting upload", "digest": d, "total": layer["size"]}
        assert mine[-1] == {"status": f"pushing {d[7:19]}", "digest": d, "total": layer["size"],
                            "completed": layer["size"]}
        blob = (server.models / "blobs" / d.replace(":", "-")).read_bytes()
        assert target.blobs[d] == blob
    # the manifest arrives byte for byte, so its digest is the local one
    assert target.manifests[("team/smol", "v1")] == local
    methods = {m for m, _, _ in target.requests}
    assert {"HEAD", "POST", "PATCH", "PUT"} <= methods
    assert target.token_requests, "the 401 challenge was answered with a token"
    # a second push finds every blob there: one completed event each, no upload
    _, again = push(server, name)
    assert not any(e["status"] == "starting upload" for e in again)
    assert [e["status"] for e in again][-2:] == ["pushing manifest", "success"]
    assert all(e["completed"] == e["total"] for e in again if e["status"].startswith("pushing ") and "digest" in e)
    # stream:false: only the last status
    r = httpx.post(server.url + "/api/push", json={"model": name, "insecure": True, "stream": False}, timeout=120)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    httpx.request("DELETE", server.url + "/api/delete", json={"model": name})


@pytest.mark.slow
def test_pushed_model_pulls_back_and_runs(server: Server, target: OllamaRegistry) -> None:
    """A round trip: push, delete locally, pull it back through the official client, chat."""
    name = f"{target.host}/team/roundtrip:latest"
    httpx.post(server.url + "/api/copy", json={"source": "smollm2:135m", "destination": name})
    client = ollama.Client(host=server.url)
    assert client.push(name, insecure=True).status == "success"
    client.delete(name)
    assert client.pull(name, insecure=True).status == "success"
    out = client.chat(model=name, messages=[{"role": "user", "content": "What is the capital of France? Answer briefly."}],
                      options={"temperature": 0, "num_predict": 12})
    assert "Paris" in out.message.content
    client.delete(name)


def test_push_errors(server: Server, target: OllamaRegistry) -> None:
    """Missing name → 400 `model is required`; a model not here → `couldn't retrieve manifest` then an error."""
    r = httpx.post(server.url + "/api/push", json={})
    assert r.status_code == 400 and r.json() == {"error": "model is required"}
    status, events = push(server, f"{target.host}/team/absent:v1")
    assert status == 200
    assert events[:2] == [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"}]
    assert "no such file or directory" in events[-1]["error"]
    r = httpx.post(server.url + "/api/push", json={"model": f"{target.host}/team/absent:v1", "stream": False})
    assert r.status_code == 500 and "no such file or directory" in r.json()["error"]
    assert not target.manifests
