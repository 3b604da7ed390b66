"""The native error catalogue against a live server (spec §19), row by row: the status and the
exact `error` text of each case ollmlx serves (cloud rows are out of scope, docs/api-compat.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from helpers import Server, minilm_dir

MODEL = "smollm2:135m"
EMBEDDER = "minilm-errors"


@pytest.fixture(scope="module")
def embedder(server: Server) -> Iterator[str]:
    """An embedding-only model (no completion capability)."""
    mf = server.models.parent / "Modelfile.minilm-errors"
    mf.write_text(f"FROM {minilm_dir()}\n")
    r = server.cli("create", EMBEDDER, "-f", str(mf))
    assert r.returncode == 0, r.stderr
    yield EMBEDDER
    httpx.request("DELETE", server.url + "/api/delete", json={"model": EMBEDDER}, timeout=60)


CATALOGUE: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (method, path, body, status, error)
    ("POST", "/api/generate", {}, 404, "model '' not found"),
    ("POST", "/api/chat", {}, 400, "model is required"),
    ("POST", "/api/embed", {}, 404, "model '' not found"),
    ("POST", "/api/embeddings", {}, 400, "model is required"),
    ("POST", "/api/show", {}, 400, "model is required"),
    ("POST", "/api/push", {}, 400, "model is required"),
    ("POST", "/api/pull", {}, 400, "invalid model name"),
    ("POST", "/api/pull", {"model": "bad name!"}, 400, "invalid model name"),
    ("POST", "/api/generate", {"model": "bad name!"}, 400, "invalid model name"),
    ("POST", "/api/chat", {"model": "bad name!"}, 400, "invalid model name"),
    ("POST", "/api/embed", {"model": "bad name!", "input": "x"}, 400, "invalid model name"),
    ("POST", "/api/show", {"model": "bad name!"}, 400, "invalid model name"),
    ("POST", "/api/generate", {"model": "ghost"}, 404, "model 'ghost' not found"),
    ("POST", "/api/chat", {"model": "ghost"}, 404, "model 'ghost' not found"),
    ("POST", "/api/show", {"model": "ghost"}, 404, "model 'ghost:latest' not found"),
    ("DELETE", "/api/delete", {"model": "ghost"}, 404, "model 'ghost' not found"),
    ("POST", "/api/embed", {"model": "ghost", "input": "x"}, 404, 'model "ghost" not found, try pulling it first'),
    ("POST", "/api/embeddings", {"model": "ghost", "prompt": "x"}, 404,
     'model "ghost" not found, try pulling it first'),
    ("POST", "/api/copy", {"source": "ghost", "destination": "x"}, 404, 'model "ghost" not found'),
    ("POST", "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                           "tools": [{"type": "function", "function": {"name": "f"}}]},
     400, "registry.ollama.ai/library/smollm2:135m does not support tools"),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "a", "suffix": "b"}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support insert"),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "x", "think": True}, 400,
     '"smollm2:135m" does not support thinking'),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "x", "raw": True, "system": "s"}, 400,
     "raw mode does not support template, system, or context"),
    ("POST", "/api/generate", {"model": MODEL, "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    ("POST", "/api/chat", {"model": MODEL, "top_logprobs": -1}, 400, "top_logprobs must be between 0 and 20"),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "x", "options": {"top_k": "many"}}, 500,
     'option "top_k" must be of type integer'),
    ("POST", "/api/generate", {"model": MODEL, "prompt": 5}, 400,
     "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), CATALOGUE)
def test_catalogue(server: Server, method: str, path: str, body: dict[str, Any], status: int, message: str) -> None:
    """§19: one row each."""
    r = httpx.request(method, server.url + path, json=body, timeout=300)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": message}


def test_models_without_completion(server: Server, embedder: str) -> None:
    """§2, §3, §19: generate and chat on an embedding-only model name it with %q."""
    r = httpx.post(server.url + "/api/generate", json={"model": embedder, "prompt": "x"}, timeout=300)
    assert (r.status_code, r.json()) == (400, {"error": f'"{embedder}" does not support generate'})
    r = httpx.post(server.url + "/api/chat", json={"model": embedder, "messages": [{"role": "user", "content": "x"}]},
                   timeout=300)
    assert (r.status_code, r.json()) == (400, {"error": f'"{embedder}" does not support chat'})
    show = httpx.post(server.url + "/api/show", json={"model": embedder}, timeout=60).json()
    assert show["capabilities"] == ["embedding"]
