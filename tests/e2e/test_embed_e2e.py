"""Embeddings through a live server (spec §4 /api/embed, §5 /api/embeddings, §19 errors):
all-MiniLM-L6-v2 imported from its Hugging Face directory with `ollmlx create`, compared with
sentence-transformers on the same files and with Ollama's published all-minilm vectors; the official
`ollama` client; SmolLM2 embedding through decoder pooling on the runner it generates with."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest

from helpers import Server, create_smollm2, minilm_dir, minilm_reference, running_server
from ollmlx.errors import BadRequest
from ollmlx.serve.embed import normalize

MODEL = "all-minilm"
TEXTS = ["Why is the sky blue?", "Why is the grass green?", "hello",
         "Embeddings map sentences to vectors so that similar meanings land close together."]
# docs/api.md of ollama/ollama, POST /api/embed examples with all-minilm (first 10 values shown)
OLLAMA_DOCS = {
    "Why is the sky blue?": [0.010071029, -0.0017594862, 0.05007221, 0.04692972, 0.054916814,
                             0.008599704, 0.105441414, -0.025878139, 0.12958129, 0.031952348],
    "Why is the grass green?": [-0.0098027075, 0.06042469, 0.025257962, -0.006364387, 0.07272725,
                                0.017194884, 0.09032035, -0.051705178, 0.09951512, 0.09072481],
}
TOO_LONG = "the input length exceeds the context length"


def post(server: Server, path: str, body: Any, timeout: float = 300) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=timeout)


def cosines(a: Any, b: Any) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def create(server: Server, name: str, directory: Path) -> None:
    mf = directory.parent / f"Modelfile.{name}"
    mf.write_text(f"FROM {directory}\n")
    r = server.cli("create", name, "-f", str(mf))
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def minilm(server: Server) -> str:
    create(server, MODEL, minilm_dir())
    return MODEL


@pytest.mark.slow
def test_import_keeps_sentence_transformers_files(server: Server, minilm: str) -> None:
    manifest = json.loads((server.models / "manifests/registry.ollama.ai/library/all-minilm/latest").read_text())
    names = {layer.get("name") for layer in manifest["layers"]}
    assert {"modules.json", "1_Pooling/config.json", "config.json", "tokenizer.json", "vocab.txt"} <= names
    show = post(server, "/api/show", {"model": minilm}).json()
    assert show["capabilities"] == ["embedding"]


@pytest.mark.slow
def test_embed_matches_sentence_transformers(server: Server, minilm: str) -> None:
    """§4: a batch through the live server equals sentence-transformers run here (cosine > 0.9999),
    every vector has unit length, and prompt_eval_count counts every input's tokens."""
    r = post(server, "/api/embed", {"model": minilm, "input": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == minilm and len(body["embeddings"]) == len(TEXTS)
    ref = [minilm_reference(t)["normalized"] for t in TEXTS]
    cos = cosines(body["embeddings"], ref)
    assert np.all(cos > 0.9999), cos
    assert np.allclose(np.linalg.norm(body["embeddings"], axis=-1), 1.0, atol=1e-5)
    assert body["prompt_eval_count"] == sum(minilm_reference(t)["tokens"] for t in TEXTS)
    assert body["total_duration"] >= body["load_duration"] > 0


@pytest.mark.slow
def test_embed_reproduces_ollama_published_vectors(server: Server, minilm: str) -> None:
    # Ollama runs an F16 GGUF of the same model; values agree to about 1e-4
    body = post(server, "/api/embed", {"model": minilm, "input": list(OLLAMA_DOCS)}).json()
    for vec, expected in zip(body["embeddings"], OLLAMA_DOCS.values(), strict=True):
        assert np.max(np.abs(np.array(vec[:10]) - expected)) < 5e-4, vec[:10]
        assert cosines(vec[:10], expected) > 0.9999
    one = post(server, "/api/embed", {"model": minilm, "input": "Why is the sky blue?"}).json()
    assert one["prompt_eval_count"] == 8  # as in Ollama's example


@pytest.mark.slow
def test_official_client_embed_and_embeddings(server: Server, minilm: str) -> None:
    client = ollama.Client(host=server.url, timeout=300)
    resp = client.embed(model=minilm, input=TEXTS[:2])
    assert len(resp.embeddings) == 2 and len(resp.embeddings[0]) == 384
    assert resp.prompt_eval_count and resp.prompt_eval_count > 10
    legacy = client.embeddings(model=minilm, prompt=TEXTS[0])
    assert len(legacy.embedding) == 384
    # the model normalises (modules.json lists Normalize), so both routes give the same vector
    assert cosines(legacy.embedding, resp.embeddings[0]) > 0.99999
    short = client.embed(model=minilm, input=TEXTS[0], dimensions=64)
    assert len(short.embeddings[0]) == 64
    assert np.isclose(np.linalg.norm(short.embeddings[0]), 1.0, atol=1e-5)
    expected = np.array(resp.embeddings[0][:64]) / np.linalg.norm(resp.embeddings[0][:64])
    assert np.allclose(short.embeddings[0], expected, atol=1e-6)
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(model="no-such-model", input="x")
    assert err.value.status_code == 404


@pytest.mark.slow
def test_truncation_rules(server: Server, minilm: str) -> None:
    long_text = "word " * 700
    r = post(server, "/api/embed", {"model": minilm, "input": ["short", long_text], "truncate": False})
    assert r.status_code == 400 and r.json() == {"error": TOO_LONG}
    r = post(server, "/api/embed", {"model": minilm, "input": long_text})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 512  # the model's 512 positions
    # the legacy route never truncates; its runner errors are 500s
    r = post(server, "/api/embeddings", {"model": minilm, "prompt": long_text})
    assert r.status_code == 500 and r.json() == {"error": TOO_LONG}
    # num_ctx (a load-time option) lowers the limit: the runner reloads with it
    r = post(server, "/api/embed", {"model": minilm, "input": long_text, "options": {"num_ctx": 32}})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 32


@pytest.mark.slow
def test_errors_and_capabilities(server: Server, minilm: str) -> None:
    def err(path: str, body: Any) -> tuple[int, Any]:
        r = post(server, path, body)
        return r.status_code, r.json()

    assert err("/api/embed", {"model": minilm, "input": 5}) == (400, {"error": "invalid input type"})
    assert err("/api/embed", {"model": minilm, "input": ["a", 1]}) == (400, {"error": "invalid input type"})
    assert err("/api/embed", {"model": "nope", "input": 5}) == (400, {"error": "invalid input type"})
    missing = {"error": 'model "nope" not found, try pulling it first'}
    assert err("/api/embed", {"model": "nope", "input": "x"}) == (404, missing)
    assert err("/api/embeddings", {"model": "nope", "prompt": "x"}) == (404, missing)
    assert err("/api/embed", {"input": "x"}) == (404, {"error": "model '' not found"})
    assert err("/api/embeddings", {"prompt": "x"}) == (400, {"error": "model is required"})
    assert err("/api/embed", {"model": minilm, "dimensions": "x"}) == (
        400, {"error": "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int"})
    assert err("/api/generate", {"model": minilm, "prompt": "hi"}) == (
        400, {"error": f'"{minilm}" does not support generate'})
    assert err("/api/chat", {"model": minilm, "messages": [{"role": "user", "content": "hi"}]}) == (
        400, {"error": f'"{minilm}" does not support chat'})
    r = httpx.post(server.url + "/api/embed", content=b"", timeout=30)
    assert r.status_code == 400 and r.json() == {"error": "missing request body"}


def test_normalize_refuses_nan_and_inf() -> None:
    # §4: Ollama's normalize() rejects such vectors (no real model produces them on demand)
    for bad in (np.nan, np.inf):
        with pytest.raises(BadRequest, match="embedding contains NaN or Inf values"):
            normalize(np.array([1.0, bad], dtype=np.float32))
    assert np.allclose(normalize(np.array([3.0, 4.0], dtype=np.float32)), [0.6, 0.8])


@pytest.mark.slow
def test_empty_input_loads_and_keep_alive_zero_unloads(server: Server, minilm: str) -> None:
    def loaded() -> set[str]:
        return {m["name"] for m in httpx.get(server.url + "/api/ps").json()["models"]}

    assert post(server, "/api/embed", {"model": minilm, "keep_alive": 0}).json() == {"model": minilm, "embeddings": []}
    assert "all-minilm:latest" not in loaded()
    assert post(server, "/api/embed", {"model": minilm, "input": ""}).json() == {"model": minilm, "embeddings": []}
    assert "all-minilm:latest" in loaded()
    assert post(server, "/api/embeddings", {"model": minilm, "prompt": ""}).json() == {"embedding": []}


@pytest.mark.slow
def test_concurrent_requests(server: Server, minilm: str) -> None:
    solo = [post(server, "/api/embed", {"model": minilm, "input": t}).json()["embeddings"][0] for t in TEXTS]
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        results[i] = post(server, "/api/embed", {"model": minilm, "input": TEXTS[i]}).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(TEXTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    got = [results[i]["embeddings"][0] for i in range(len(TEXTS))]
    assert np.all(cosines(got, solo) > 0.99999)


@pytest.mark.slow
def test_legacy_route_is_not_normalised(server: Server, tmp_path: Path) -> None:
    """§5: /api/embeddings returns the runner's vector as is. A copy of MiniLM whose modules.json
    drops Normalize gives raw mean-pooled vectors; /api/embed normalises them, the legacy route not."""
    raw_dir = tmp_path / "minilm-raw"
    shutil.copytree(minilm_dir(), raw_dir)
    modules = json.loads((raw_dir / "modules.json").read_text())
    (raw_dir / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    create(server, "minilm-raw", raw_dir)
    try:
        text = TEXTS[3]
        legacy = post(server, "/api/embeddings", {"model": "minilm-raw", "prompt": text}).json()["embedding"]
        ref = np.array(minilm_reference(text)["raw"])
        assert abs(np.linalg.norm(legacy) - np.linalg.norm(ref)) < 1e-3 * np.linalg.norm(ref)
        assert not np.isclose(np.linalg.norm(legacy), 1.0, atol=1e-2)
        assert cosines(legacy, ref) > 0.9999
        unit = post(server, "/api/embed", {"model": "minilm-raw", "input": text}).json()["embeddings"][0]
        assert np.isclose(np.linalg.norm(unit), 1.0, atol=1e-5) and cosines(unit, legacy) > 0.99999
    finally:
        post(server, "/api/generate", {"model": "minilm-raw", "keep_alive": 0})
        httpx.request("DELETE", server.url + "/api/delete", json={"model": "minilm-raw"})


@pytest.mark.slow
def test_smollm2_embeds_through_decoder_pooling(tmp_path: Path) -> None:
    """§4 on a generation model: /api/embed pools SmolLM2's hidden states (GGUF without
    pooling_type: mean) on the same MLX runner that generates, without a reload."""
    with running_server(tmp_path, {"OLLMLX_ENGINE": "mlx"}) as server:
        create_smollm2(server)
        _decoder_pooling_checks(server, "smollm2:135m")


def _decoder_pooling_checks(server: Server, model: str) -> None:
    r = post(server, "/api/embed", {"model": model, "input": TEXTS[:3]})
    assert r.status_code == 200, r.text
    vecs = r.json()["embeddings"]
    assert len(vecs) == 3 and all(len(v) == 576 for v in vecs)
    assert np.allclose(np.linalg.norm(vecs, axis=-1), 1.0, atol=1e-5)
    solo = post(server, "/api/embed", {"model": model, "input": TEXTS[1]}).json()["embeddings"][0]
    assert cosines(solo, vecs[1]) > 0.99999  # padding in the batch changes nothing
    pids = server.runners()
    gen = post(server, "/api/generate", {"model": model, "prompt": "Say hi.", "stream": False,
                                         "options": {"temperature": 0, "num_predict": 4}})
    assert gen.status_code == 200 and gen.json()["done"]
    assert set(server.runners()) == set(pids)  # generate reused the runner that embedded
    ps = httpx.get(server.url + "/api/ps").json()["models"]
    assert [m["name"] for m in ps] == [model]
    legacy = post(server, "/api/embeddings", {"model": model, "prompt": TEXTS[1]}).json()["embedding"]
    assert cosines(legacy, solo) > 0.99999
