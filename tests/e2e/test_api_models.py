"""Model management against a live server (spec §6 tags/show/ps/copy/delete/blobs, §15 names,
§16 layout and pruning): every field of the bodies, the generated Modelfile, and the exact errors."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, running_server, start_server, stop_server

MODEL = "smollm2:135m"


def post(server: Server, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=300, **kw)


def delete(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.request("DELETE", server.url + "/api/delete", json=body, timeout=60)


def manifest_path(server: Server, name: str) -> Path:
    host, rest = ("registry.ollama.ai", name) if name.count("/") < 2 else name.split("/", 1)
    ns, rest = rest.split("/", 1) if "/" in rest else ("library", rest)
    model, tag = rest.split(":") if ":" in rest else (rest, "latest")
    return server.models / "manifests" / host / ns / model / tag


def blob(server: Server, digest: str) -> Path:
    return server.models / "blobs" / digest.replace(":", "-")


@pytest.fixture(scope="module")
def custom(server: Server) -> Iterator[str]:
    """A model with every layer: PARAMETERs (a list too), TEMPLATE, SYSTEM, two LICENSEs, MESSAGEs."""
    name = "smol-custom:v1"
    r = post(server, "/api/create", {
        "model": name, "from": MODEL, "stream": False, "system": "You are terse.",
        "template": "{{ .System }} {{ .Prompt }}", "license": ["MIT text", "Apache text"],
        "parameters": {"temperature": 0.7, "num_ctx": 2048, "stop": ["<|im_end|>", "END"], "seed": 42},
        "messages": [{"role": "user", "content": "Hi", "images": None}, {"role": "assistant", "content": "Hello."}]})
    assert r.json() == {"status": "success"}, r.text
    yield name
    delete(server, {"model": name})


def test_tags(server: Server, custom: str) -> None:
    """§6 /api/tags: shortest names, size = layers + config, digest = sha256 of the manifest file,
    modified_at from the manifest's mtime (newest first), details from the config blob."""
    models = httpx.get(server.url + "/api/tags").json()["models"]
    by_name = {m["name"]: m for m in models}
    assert {MODEL, custom} <= set(by_name)
    stamps = [datetime.fromisoformat(m["modified_at"]) for m in models]
    assert stamps == sorted(stamps, reverse=True)
    for name in (MODEL, custom):
        entry = by_name[name]
        assert entry["model"] == name
        raw = manifest_path(server, name).read_bytes()
        doc = json.loads(raw)
        assert entry["digest"] == hashlib.sha256(raw).hexdigest()
        assert entry["size"] == doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
        mtime = manifest_path(server, name).stat().st_mtime
        assert abs(datetime.fromisoformat(entry["modified_at"]).timestamp() - mtime) < 1e-3
    details = by_name[MODEL]["details"]
    assert details == {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                       "parameter_size": "134.52M", "quantization_level": "Q4_1"}
    assert by_name[MODEL]["capabilities"] == ["completion"]


def test_empty_store_and_namespaced_names(tmp_path: Path) -> None:
    """§6: an empty store lists `{"models":[]}` and ps too; §15 shortest display of names."""
    with running_server(tmp_path) as srv:
        assert httpx.get(srv.url + "/api/tags").json() == {"models": []}
        assert httpx.get(srv.url + "/api/ps").json() == {"models": []}


def test_show_fields(server: Server, custom: str) -> None:
    """§6 /api/show: every field, `parameters` as `%-30s %#v` lines, the generated Modelfile with
    the blob path in FROM, licenses joined, messages as role/content, model_info without
    general.name and the chat template, GGUF tensors, capabilities, modified_at."""
    show = post(server, "/api/show", {"model": custom}).json()
    assert set(show) == {"license", "modelfile", "parameters", "template", "system", "details", "messages",
                         "model_info", "tensors", "capabilities", "modified_at"}
    assert show["license"] == "MIT text\nApache text"
    assert show["system"] == "You are terse." and show["template"] == "{{ .System }} {{ .Prompt }}"
    assert show["parameters"] == "\n".join([
        'num_ctx                        2048', 'seed                           42',
        'stop                           "<|im_end|>"', 'stop                           "END"',
        'temperature                    0.7'])
    assert show["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    layers = json.loads(manifest_path(server, custom).read_text())["layers"]
    model_blob = blob(server, next(x["digest"] for x in layers if x["mediaType"].endswith(".model")))
    assert show["modelfile"] == (
        '# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n'
        f"# FROM {custom}\n\nFROM {model_blob}\nTEMPLATE {{{{ .System }}}} {{{{ .Prompt }}}}\nSYSTEM You are terse.\n"
        "PARAMETER num_ctx 2048\nPARAMETER seed 42\nPARAMETER stop <|im_end|>\nPARAMETER stop END\n"
        "PARAMETER temperature 0.7\nLICENSE MIT text\nLICENSE Apache text\nMESSAGE user Hi\nMESSAGE assistant Hello.\n")
    info = show["model_info"]
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert info["general.architecture"] == "llama" and info["general.parameter_count"] == 134515008
    assert info["tokenizer.ggml.tokens"] == []  # arrays longer than 5 are emptied unless verbose
    assert len(show["tensors"]) == 272 and set(show["tensors"][0]) == {"name", "type", "shape"}
    assert show["capabilities"] == ["completion"]
    verbose = post(server, "/api/show", {"model": custom, "verbose": True}).json()
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 49152


def test_show_overrides_and_defaults(server: Server, custom: str) -> None:
    """§6: `system` replaces the shown system; `options` join the Modelfile but not `parameters`;
    a GitHubCopilotChat/ user agent gets the requested name as general.basename; the deprecated
    `name` field works; the base model shows its autodetected template."""
    show = post(server, "/api/show", {"name": custom, "system": "Other.", "options": {"top_k": 5}}).json()
    assert show["system"] == "Other." and "SYSTEM Other.\n" in show["modelfile"]
    assert "PARAMETER top_k 5\n" in show["modelfile"] and "top_k" not in show["parameters"]
    copilot = post(server, "/api/show", {"model": "SMOL-CUSTOM:v1"},
                   headers={"User-Agent": "GitHubCopilotChat/0.30.0"}).json()
    assert copilot["model_info"]["general.basename"] == "SMOL-CUSTOM:v1"
    base = post(server, "/api/show", {"model": MODEL}).json()
    assert base["template"].startswith("{{- range .Messages }}<|im_start|>")
    assert base["parameters"] == 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"'
    assert "license" not in base and "system" not in base and "messages" not in base


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 400, "model is required"),
    ({"model": ""}, 400, "model is required"),
    ({"model": "no-such-model"}, 404, "model 'no-such-model:latest' not found"),
    ({"model": "someone/thing:tag"}, 404, "model 'someone/thing:tag' not found"),
    ({"model": "bad name!"}, 400, "invalid model name"),
])
def test_show_errors(server: Server, body: dict[str, Any], status: int, message: str) -> None:
    """§6, §19: unknown models are named in their canonical short form."""
    r = post(server, "/api/show", body)
    assert (r.status_code, r.json()) == (status, {"error": message})


def test_ps(server: Server) -> None:
    """§6 /api/ps: name, model, size, digest, details (parent_model empty), expires_at ≈ now +
    keep_alive in local time, size_vram, context_length; forever ≈ now + 292 years; sorted by
    expires_at, latest first."""
    post(server, "/api/generate", {"model": MODEL, "keep_alive": "10m"})
    r = post(server, "/api/create", {"model": "smol-ps", "from": MODEL, "system": "ps", "stream": False})
    assert r.status_code == 200
    try:
        post(server, "/api/generate", {"model": "smol-ps", "keep_alive": -1})
        mine = {"smol-ps:latest", MODEL}  # other modules' models may be loaded too
        models = [m for m in httpx.get(server.url + "/api/ps").json()["models"] if m["name"] in mine]
        assert [m["name"] for m in models] == ["smol-ps:latest", MODEL]
        forever, base = models
        years = (datetime.fromisoformat(forever["expires_at"]).timestamp() - time.time()) / (365 * 86400)
        assert 291 < years < 293
        left = datetime.fromisoformat(base["expires_at"]).timestamp() - time.time()
        assert 540 < left <= 600
        tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
        assert base["model"] == MODEL and base["digest"] == tags[MODEL]["digest"]
        assert base["details"] == {**tags[MODEL]["details"], "parent_model": ""}
        assert base["size"] > 0 and base["size_vram"] >= 0 and base["context_length"] == 4096
    finally:
        for name in ("smol-ps", MODEL):
            post(server, "/api/generate", {"model": name, "keep_alive": 0})
        delete(server, {"model": "smol-ps"})


def test_copy(server: Server) -> None:
    """§6 /api/copy: 200 with an empty body; the manifest bytes are copied (same digest), blobs
    shared; invalid names and a missing source have Ollama's texts."""
    r = post(server, "/api/copy", {"source": MODEL, "destination": "someone/smol-copy:v2"})
    assert (r.status_code, r.content) == (200, b"")
    try:
        assert manifest_path(server, "someone/smol-copy:v2").read_bytes() == manifest_path(server, MODEL).read_bytes()
        tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
        assert tags["someone/smol-copy:v2"]["digest"] == tags[MODEL]["digest"]
    finally:
        assert delete(server, {"model": "someone/smol-copy:v2"}).status_code == 200
    for body, status, message in [
        ({"source": "", "destination": "x"}, 400, 'source "" is invalid'),
        ({"source": "bad name!", "destination": "x"}, 400, 'source "bad name!" is invalid'),
        ({"source": MODEL, "destination": ""}, 400, 'destination "" is invalid'),
        ({"source": MODEL, "destination": "a/b/c/d"}, 400, 'destination "a/b/c/d" is invalid'),
        ({"source": "no-such-model", "destination": "x"}, 404, 'model "no-such-model" not found'),
    ]:
        r = post(server, "/api/copy", body)
        assert (r.status_code, r.json()) == (status, {"error": message}), body


def test_delete_prunes_unused_blobs(server: Server) -> None:
    """§6 /api/delete: 200 with an empty body; the manifest and its now-empty directories go, and
    so do the blobs no other manifest references; shared blobs stay."""
    r = post(server, "/api/create", {"model": "someone/doomed", "from": MODEL, "system": "unique system 9f2c",
                                     "stream": False})
    assert r.status_code == 200
    layers = json.loads(manifest_path(server, "someone/doomed").read_text())["layers"]
    system_digest = next(x["digest"] for x in layers if x["mediaType"].endswith(".system"))
    model_digest = next(x["digest"] for x in layers if x["mediaType"].endswith(".model"))
    r = delete(server, {"name": "SOMEONE/Doomed"})  # the deprecated field, matched case-insensitively
    assert (r.status_code, r.content) == (200, b"")
    assert not manifest_path(server, "someone/doomed").exists()
    assert not (server.models / "manifests" / "registry.ollama.ai" / "someone").exists()
    assert not blob(server, system_digest).exists() and blob(server, model_digest).exists()
    for body, status, message in [({}, 400, "model is required"), ({"model": ""}, 400, "model is required"),
                                  ({"model": "bad name!"}, 400, 'name "bad name!" is invalid'),
                                  ({"model": "someone/doomed"}, 404, "model 'someone/doomed' not found")]:
        r = delete(server, body)
        assert (r.status_code, r.json()) == (status, {"error": message}), body


def test_blobs(server: Server) -> None:
    """§6 /api/blobs/:digest: HEAD 200/404; POST 201 when written, 200 when present; a digest
    mismatch or a malformed digest is a 400."""
    data = b"blob test bytes " + str(time.time()).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = server.url + "/api/blobs/" + digest
    r = httpx.head(url)
    assert r.status_code == 404
    r = httpx.get(url.replace("/api/blobs/", "/api/blobs/"), timeout=30)
    assert r.status_code == 405
    r = httpx.post(url, content=data)
    assert (r.status_code, r.content) == (201, b"")
    assert httpx.head(url).status_code == 200 and blob(server, digest).read_bytes() == data
    assert httpx.post(url, content=data).status_code == 200
    other = "sha256:" + "0" * 64
    r = httpx.post(server.url + "/api/blobs/" + other, content=b"x")
    assert (r.status_code, r.json()) == (400, {"error": f'digest mismatch, expected "{other}", got '
                                                         f'"sha256:{hashlib.sha256(b"x").hexdigest()}"'})
    for bad in ("sha256:abc", "md5:" + "0" * 64, "sha256-" + "g" * 64):
        r = httpx.post(server.url + "/api/blobs/" + bad, content=b"x")
        assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"}), bad


def test_startup_prunes_unused_blobs_unless_noprune(server: Server, tmp_path: Path) -> None:
    """§16, §22 OLLAMA_NOPRUNE: at start, blobs no manifest references (older than an hour) go,
    with empty manifest directories; OLLAMA_NOPRUNE=1 keeps them."""
    store = tmp_path / "store"
    (store / "blobs").mkdir(parents=True)
    (store / "manifests" / "registry.ollama.ai" / "gone" / "model").mkdir(parents=True)
    old, fresh = b"an old orphan", b"a fresh orphan"
    paths = {}
    for data in (old, fresh):
        p = store / "blobs" / ("sha256-" + hashlib.sha256(data).hexdigest())
        p.write_bytes(data)
        paths[data] = p
    two_hours_ago = time.time() - 7200
    import os

    os.utime(paths[old], (two_hours_ago, two_hours_ago))
    srv = start_server(tmp_path / "a", {"OLLAMA_NOPRUNE": "1"}, models=store)
    stop_server(srv)
    assert paths[old].exists() and (store / "manifests" / "registry.ollama.ai" / "gone").exists()
    srv = start_server(tmp_path / "b", models=store)
    stop_server(srv)
    assert not paths[old].exists() and paths[fresh].exists()
    assert not (store / "manifests" / "registry.ollama.ai").exists()
