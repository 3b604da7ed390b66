"""POST /api/pull against an Ollama registry emulator on 127.0.0.1 (spec §6 /api/pull, §16 layout,
§17 registry protocol): statuses, GGUF and tensor-layer manifests, pruning, shared and resumed
downloads, and bad registries that must leave the store untouched."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import ollama
import pytest

from emulators.ollama_registry import Fault, OllamaRegistry, sha256
from helpers import Server, running_server, start_server, stop_server

if TYPE_CHECKING:
    from emulators.fixtures import Published

pytest_plugins = ("emulators.fixtures",)
CHAT = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]
GREEDY = {"temperature": 0, "num_predict": 12}


def pull(server: Server, model: str, **extra: Any) -> tuple[int, list[dict[str, Any]]]:
    with httpx.stream("POST", server.url + "/api/pull", json={"model": model, "insecure": True, **extra},
                      timeout=300) as r:
        return r.status_code, [json.loads(line) for line in r.iter_lines() if line]


def blob_names(models: Path) -> set[str]:
    d = models / "blobs"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def manifest_path(server: Server, registry: OllamaRegistry, name: str, tag: str) -> Path:
    return server.models / "manifests" / registry.host / "library" / name / tag


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("pull"), {"OLLMLX_REGISTRY_TIMEOUT": "2"}) as s:
        yield s


@pytest.mark.slow
def test_pull_gguf_statuses_layout_cache_and_chat(srv: Server, registry: OllamaRegistry) -> None:
    """§6: pulling manifest → per-layer `pulling <digest[7:19]>` → verifying → writing → success."""
    name = f"{registry.host}/library/smollm2:135m"
    status, events = pull(srv, name)
    assert status == 200
    statuses = [e["status"] for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    doc = json.loads(registry.manifests[("library/smollm2", "135m")])
    for layer in [*doc["layers"], doc["config"]]:
        mine = [e for e in events if e.get("digest") == layer["digest"]]
        assert mine and all(e["status"] == f"pulling {layer['digest'][7:19]}" for e in mine)
        assert all(e["total"] == layer["size"] for e in mine) and mine[-1]["completed"] == layer["size"]
    # stored exactly as the registry sent it (Ollama's layout), nothing partial left behind
    assert manifest_path(srv, registry, "smollm2", "135m").read_bytes() == registry.manifests[("library/smollm2", "135m")]
    names = blob_names(srv.models)
    assert not any("partial" in n or n.endswith("-tmp") for n in names)
    for layer in doc["layers"]:
        p = srv.models / "blobs" / layer["digest"].replace(":", "-")
        assert "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() == layer["digest"]
        assert p.stat().st_mode & 0o777 == 0o644
    # cached layers: one event each with completed == total; stream:false gives only success
    _, again = pull(srv, name)
    per_layer = [e for e in again if e["status"].startswith("pulling ") and e["status"] != "pulling manifest"]
    assert len(per_layer) == len(doc["layers"]) + 1 and all(e["completed"] == e["total"] for e in per_layer)
    r = httpx.post(srv.url + "/api/pull", json={"model": name, "insecure": True, "stream": False}, timeout=120)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    # and it runs, through the official client
    client = ollama.Client(host=srv.url)
    out = client.chat(model=name, messages=CHAT, options=GREEDY)
    assert "Paris" in out.message.content


@pytest.mark.slow
def test_pull_tensor_manifest_reports_pulling_model_and_runs(srv: Server, registry: OllamaRegistry) -> None:
    """§6: safetensors/MLX manifests report one `pulling model` (digest sha256:model)."""
    name = f"{registry.host}/library/smollm2-mlx:135m"
    status, events = pull(srv, name)
    assert status == 200, events
    statuses = [e["status"] for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-2:] == ["writing manifest", "success"]
    model_events = [e for e in events if e["status"] == "pulling model"]
    assert model_events and all(e["digest"] == "sha256:model" for e in model_events)
    doc = json.loads(registry.manifests[("library/smollm2-mlx", "135m")])
    total = sum(x["size"] for x in [*doc["layers"], doc["config"]])
    assert model_events[-1]["total"] == total and model_events[-1]["completed"] == total
    assert set(statuses) == {"pulling manifest", "pulling model", "writing manifest", "success"}
    tags = {m["name"]: m for m in httpx.get(srv.url + "/api/tags").json()["models"]}
    assert tags[name]["details"]["format"] == "safetensors"
    out = ollama.Client(host=srv.url).chat(model=name, messages=CHAT, options=GREEDY, keep_alive=0)
    assert "Paris" in out.message.content


def test_unknown_and_invalid_names(srv: Server, registry: OllamaRegistry) -> None:
    """§6/§19: unknown → `pull model manifest: file does not exist` (200 streamed, 500 not); bad name → 400."""
    status, events = pull(srv, f"{registry.host}/library/nothing-here:1b")
    assert status == 200 and events == [{"status": "pulling manifest"},
                                        {"error": "pull model manifest: file does not exist"}]
    r = httpx.post(srv.url + "/api/pull", json={"model": f"{registry.host}/library/nothing-here",
                                                "insecure": True, "stream": False})
    assert r.status_code == 500 and r.json() == {"error": "pull model manifest: file does not exist"}
    for bad in ("", "a//b", "model:tag:x", "../../etc/passwd", "ns/mo del"):
        r = httpx.post(srv.url + "/api/pull", json={"model": bad})
        assert r.status_code == 400 and r.json() == {"error": "invalid model name"}, bad
    r = httpx.post(srv.url + "/api/pull", json={"model": f"http://{registry.host}/library/smollm2:135m"})
    assert r.status_code == 500 and r.json() == {"error": "insecure protocol http"}
    r = httpx.post(srv.url + "/api/pull", json={"model": "x", "source": "s3"})
    assert r.status_code == 400 and "invalid source" in r.json()["error"]


@pytest.mark.slow
def test_pull_over_an_older_manifest_removes_unused_layers(srv: Server, registry: OllamaRegistry,
                                                           published: Published) -> None:
    """§6 step 5: `removing unused layers` when the previous manifest had layers no longer used."""
    old = published.manifest("smollm2", "135m-system")
    new = published.manifest("smollm2", "135m")
    registry.manifests[("library/swap", "v")] = old
    for data in (old, new):
        for layer in [json.loads(data)["config"], *json.loads(data)["layers"]]:
            registry.blobs.setdefault(layer["digest"], published.models / "blobs" / layer["digest"].replace(":", "-"))
    name = f"{registry.host}/library/swap:v"
    assert pull(srv, name)[1][-1] == {"status": "success"}
    old_only = {x["digest"] for x in [json.loads(old)["config"], *json.loads(old)["layers"]]} - \
               {x["digest"] for x in [json.loads(new)["config"], *json.loads(new)["layers"]]}
    assert old_only and all((srv.models / "blobs" / d.replace(":", "-")).exists() for d in old_only)
    registry.manifests[("library/swap", "v")] = new
    statuses = [e["status"] for e in pull(srv, name)[1]]
    assert statuses[-3:] == ["writing manifest", "removing unused layers", "success"]
    assert not any((srv.models / "blobs" / d.replace(":", "-")).exists() for d in old_only)
    httpx.request("DELETE", srv.url + "/api/delete", json={"model": name})


@pytest.mark.slow
def test_concurrent_pulls_share_one_download(tmp_path: Path, registry: OllamaRegistry) -> None:
    """§6: concurrent pulls of the same blob share one download (and each reports progress)."""
    doc = json.loads(registry.manifests[("library/smollm2", "135m")])
    gguf = doc["layers"][0]["digest"]
    registry.faults[gguf] = Fault("slow", delay=0.004)
    before = len(registry.blob_gets(gguf))
    results: list[list[dict[str, Any]]] = []
    try:
        with running_server(tmp_path) as s:
            threads = [threading.Thread(target=lambda: results.append(pull(s, f"{registry.host}/library/smollm2:135m")[1]))
                       for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
    finally:
        registry.faults.pop(gguf)
    assert len(results) == 2 and all(r[-1] == {"status": "success"} for r in results)
    assert all(any(e.get("digest") == gguf and 0 < e.get("completed", 0) < e["total"] for e in r) for r in results)
    assert len(registry.blob_gets(gguf)) - before == 1


@pytest.mark.slow
def test_kill_mid_download_then_resume_from_partial(tmp_path: Path, registry: OllamaRegistry) -> None:
    """§6/§16: a killed server leaves `<blob>-partial`; the next pull resumes it with a Range request."""
    doc = json.loads(registry.manifests[("library/smollm2", "135m")])
    gguf, size = doc["layers"][0]["digest"], doc["layers"][0]["size"]
    registry.faults[gguf] = Fault("slow", delay=0.05, after=24 << 20)
    name = f"{registry.host}/library/smollm2:135m"
    models = tmp_path / "models"
    partial = models / "blobs" / (gguf.replace(":", "-") + "-partial")
    s = start_server(tmp_path / "a", models=models)
    try:
        threading.Thread(target=lambda: _quiet(pull, s, name), daemon=True).start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size >= 24 << 20):
            time.sleep(0.1)
        stop_server(s, signal.SIGKILL)
    finally:
        registry.faults.pop(gguf)
        stop_server(s)
    kept = partial.stat().st_size
    assert 24 << 20 <= kept < size
    assert not (models / "blobs" / gguf.replace(":", "-")).exists()
    assert not (models / "manifests").exists() or not any((models / "manifests").rglob("135m"))
    with running_server(tmp_path / "b", models=models) as s2:
        _, events = pull(s2, name)
    assert events[-1] == {"status": "success"}
    ranges = [h.get("range") for h in registry.blob_gets(gguf)[-1:]]
    assert ranges == [f"bytes={kept}-"]
    assert not partial.exists()
    blob = models / "blobs" / gguf.replace(":", "-")
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == gguf


@pytest.mark.slow
def test_client_disconnect_stops_the_download(tmp_path: Path, registry: OllamaRegistry) -> None:
    """Like Ollama (the pull runs in the request's context), a client that goes away stops the
    download; what arrived stays in `-partial` for the next pull and no manifest is written."""
    doc = json.loads(registry.manifests[("library/smollm2", "135m")])
    gguf = doc["layers"][0]["digest"]
    registry.faults[gguf] = Fault("slow", delay=0.05, after=8 << 20)
    try:
        with running_server(tmp_path) as s:
            partial = s.models / "blobs" / (gguf.replace(":", "-") + "-partial")
            with httpx.stream("POST", s.url + "/api/pull", json={"model": f"{registry.host}/library/smollm2:135m",
                                                                  "insecure": True}, timeout=60) as r:
                for _ in r.iter_lines():
                    if partial.exists() and partial.stat().st_size >= 8 << 20:
                        break
            time.sleep(1)
            size = partial.stat().st_size
            time.sleep(1.5)
            assert partial.stat().st_size == size, "the download went on without a client"
            assert not (s.models / "manifests").exists() or not any((s.models / "manifests").rglob("135m"))
    finally:
        registry.faults.pop(gguf)


def _quiet(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except httpx.HTTPError:
        pass  # the server was killed under it


# -- bad registries: a clear error and an untouched store ------------------------------------
SMALL = b"not really a model, but bytes with a digest" * 1000


def _manifest(layers: list[dict[str, Any]], **top: Any) -> bytes:
    config = b'{"model_format":"gguf"}'
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": sha256(config), "size": len(config)}, "layers": layers, **top}
    return json.dumps(doc).encode()


def _model_layer(digest: str | None = None, size: int | None = None,
                 media: str = "application/vnd.ollama.image.model") -> dict[str, Any]:
    return {"mediaType": media, "digest": digest or sha256(SMALL), "size": len(SMALL) if size is None else size}


BAD = {
    "traversal-digest": (_manifest([_model_layer("../../etc/x")]), None, "is not a sha256 digest"),
    "traversal-sha-prefix": (_manifest([_model_layer("sha256:../../../../etc/passwd")]), None, "is not a sha256 digest"),
    "absolute-digest": (_manifest([_model_layer("/etc/passwd")]), None, "is not a sha256 digest"),
    "json-name-traversal": (_manifest([{**_model_layer(media="application/vnd.ollama.image.json"),
                                        "name": "../../config.json"}]), None, "is not a relative path"),
    "media-type": (_manifest([_model_layer(media="application/x-executable")]), None, "unsupported layer media type"),
    "manifest-list": (_manifest([], mediaType="application/vnd.oci.image.index.v1+json"), None,
                      "unsupported manifest media type"),
    "negative-size": (_manifest([_model_layer(size=-1)]), None, "invalid size"),
    "huge-size": (_manifest([_model_layer(size=1 << 49)]), None, "not enough disk space"),
    "corrupt-blob": (_manifest([_model_layer()]), Fault("corrupt"), "digest mismatch"),
    "truncated-blob": (_manifest([_model_layer()]), Fault("truncate"), "unexpected EOF"),
    "endless-blob": (_manifest([_model_layer()]), Fault("endless"), "larger than"),
    "blob-500": (_manifest([_model_layer()]), Fault("500"), "500"),
    "blob-hangs": (_manifest([_model_layer()]), Fault("hang"), "timed out"),
    "manifest-500": (b"", Fault("500"), "pull model manifest: 500"),
    "manifest-hangs": (b"", Fault("hang"), "timed out"),
    "manifest-endless": (b"", Fault("endless"), "manifest is larger than"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_registry_leaves_store_untouched(srv: Server, registry: OllamaRegistry, case: str) -> None:
    """Probllama-style digests, wrong or short or endless bytes, odd media types, 500s, hangs."""
    manifest, fault, message = BAD[case]
    repo = f"library/bad-{case}"
    registry.manifests[(repo, "latest")] = manifest or _manifest([_model_layer()])
    registry.blobs[sha256(SMALL)] = SMALL
    config = b'{"model_format":"gguf"}'
    registry.blobs[sha256(config)] = config
    key = f"{repo}:latest" if case.startswith("manifest-") else sha256(SMALL)
    if fault:
        registry.faults[key] = fault
    before = blob_names(srv.models)
    try:
        r = httpx.post(srv.url + "/api/pull", json={"model": f"{registry.host}/{repo}", "insecure": True,
                                                    "stream": False}, timeout=120)
    finally:
        registry.faults.pop(key, None)
    assert r.status_code == 500 and message in r.json()["error"], r.text
    assert not (srv.models / "manifests" / registry.host / "library" / f"bad-{case}").exists()
    after = blob_names(srv.models)
    # nothing new under a blob name; a resumable -partial may stay only for transient failures
    new = after - before
    assert all(n.endswith("-partial") for n in new), new
    if case in ("corrupt-blob", "endless-blob"):
        assert not new  # bad bytes are never kept for a resume
    for outside in (srv.models.parent / "etc", srv.models / "etc", Path("/etc/x")):
        assert not outside.exists()
    for name in after & before:
        if not name.endswith("-partial"):
            p = srv.models / "blobs" / name
            assert "sha256-" + hashlib.sha256(p.read_bytes()).hexdigest() == name
    for n in new:
        (srv.models / "blobs" / n).unlink()
