"""An existing Ollama library used as is: `OLLMLX_MODELS=~/.ollama/models` holding models exactly as
Ollama's PullModel leaves them (spec §16 layout: the registry's manifest bytes, `blobs/sha256-<hex>`
0644, leftover `-partial` / `-partial-N` files). list / show / run / copy / delete work without
converting anything, and nothing that is not ours to change is touched."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import ollama
import pytest

from emulators.ollama_registry import OllamaRegistry
from helpers import running_server

pytest_plugins = ("emulators.fixtures",)
CHAT = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]
GREEDY = {"temperature": 0, "num_predict": 12}


def ollama_pull(registry: OllamaRegistry, models: Path, repo: str, tag: str) -> bytes:
    """What `ollama pull` writes (server/images.go PullModel): blobs renamed from -partial after
    download, then os.WriteFile(manifest, registry bytes, 0644)."""
    data = httpx.get(f"{registry.url}/v2/{repo}/manifests/{tag}").content
    doc = json.loads(data)
    (models / "blobs").mkdir(parents=True, exist_ok=True)
    for layer in [*doc["layers"], doc["config"]]:
        path = models / "blobs" / layer["digest"].replace(":", "-")
        with httpx.stream("GET", f"{registry.url}/v2/{repo}/blobs/{layer['digest']}") as r, open(path, "wb") as f:
            for chunk in r.iter_bytes():
                f.write(chunk)
        os.chmod(path, 0o644)
    manifest = models / "manifests" / "registry.ollama.ai" / repo / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(data)
    os.chmod(manifest, 0o644)
    return data


def snapshot(models: Path) -> dict[str, tuple[str, int]]:
    """Every file's bytes and mode; ollmlx's empty cross-process lock file `<models>/.lock` aside
    (Ollama reads only manifests/<4 levels> and blobs/sha256-*)."""
    return {str(p.relative_to(models)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
            for p in sorted(models.rglob("*")) if p.is_file() and p != models / ".lock"}


def ollama_partial(models: Path, digest: str, total: int, data: bytes) -> Path:
    """An interrupted Ollama download: a pre-sized `-partial` and its `-partial-0` part record."""
    partial = models / "blobs" / (digest.replace(":", "-") + "-partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as f:
        f.write(data)
        f.truncate(total)
    part = {"N": 0, "Offset": 0, "Size": total, "Completed": len(data)}
    Path(str(partial) + "-0").write_text(json.dumps(part) + "\n")
    return partial


@pytest.mark.slow
def test_ollama_library_list_show_run_copy_delete(tmp_path: Path, registry: OllamaRegistry) -> None:
    home = tmp_path / "home"
    models = home / ".ollama" / "models"
    gguf_manifest = ollama_pull(registry, models, "library/smollm2", "135m")
    ollama_pull(registry, models, "library/smollm2-mlx", "135m")
    # a download Ollama left unfinished, of a blob no manifest names
    stray = "sha256:" + "ab" * 32
    ollama_partial(models, stray, 1 << 20, b"\1" * 1000)
    before = snapshot(models)
    with running_server(home, {"OLLMLX_MODELS": "~/.ollama/models"}, models=models) as srv:
        client = ollama.Client(host=srv.url)
        listed = {m.model: m for m in client.list().models}
        assert set(listed) == {"smollm2:135m", "smollm2-mlx:135m"}
        assert listed["smollm2:135m"].details.format == "gguf"
        assert listed["smollm2-mlx:135m"].details.format == "safetensors"
        assert listed["smollm2:135m"].digest == hashlib.sha256(gguf_manifest).hexdigest()
        shown = client.show("smollm2:135m")
        assert shown.details.family == "llama" and shown.modelinfo
        assert client.show("smollm2-mlx:135m").details.format == "safetensors"
        for name in ("smollm2:135m", "smollm2-mlx:135m"):
            out = client.chat(model=name, messages=CHAT, options=GREEDY, keep_alive=0)
            assert "Paris" in out.message.content, name
        assert snapshot(models) == before, "list/show/run changed the Ollama library"
        # copy adds one manifest and shares the blobs; deleting the copy puts everything back
        client.copy("smollm2:135m", "mine:copy")
        copied = models / "manifests/registry.ollama.ai/library/mine/copy"
        assert json.loads(copied.read_bytes())["layers"] == json.loads(gguf_manifest)["layers"]
        assert client.chat(model="mine:copy", messages=CHAT, options=GREEDY, keep_alive=0).message.content
        client.delete("mine:copy")
        assert snapshot(models) == before
        # deleting a model removes its manifest and only the blobs nobody else uses
        mlx_doc = json.loads((models / "manifests/registry.ollama.ai/library/smollm2-mlx/135m").read_bytes())
        client.delete("smollm2-mlx:135m")
        after = snapshot(models)
        gone = set(before) - set(after)
        mlx_only = {"blobs/" + x["digest"].replace(":", "-") for x in [*mlx_doc["layers"], mlx_doc["config"]]}
        mlx_only -= {"blobs/" + x["digest"].replace(":", "-") for x in [*json.loads(gguf_manifest)["layers"],
                                                                         json.loads(gguf_manifest)["config"]]}
        assert gone == mlx_only | {"manifests/registry.ollama.ai/library/smollm2-mlx/135m"}
        assert {k: v for k, v in before.items() if k not in gone} == after  # the rest untouched, byte for byte
        assert any(k.endswith("-partial-0") for k in after)  # Ollama's leftovers are left alone


@pytest.mark.slow
def test_pull_into_an_ollama_library_resumes_ollamas_partial(tmp_path: Path, registry: OllamaRegistry) -> None:
    """A pull picks up where Ollama's own interrupted download stopped (its `-partial-N` record)
    and writes what Ollama would have: the same manifest bytes and blob names."""
    home = tmp_path / "home"
    models = home / ".ollama" / "models"
    repo_manifest = registry.manifests[("library/smollm2", "135m")]
    layer = json.loads(repo_manifest)["layers"][0]
    body = registry.blobs[layer["digest"]]
    data = body.read_bytes() if isinstance(body, Path) else body
    done = 10 << 20
    ollama_partial(models, layer["digest"], layer["size"], data[:done])
    with running_server(home, {"OLLMLX_MODELS": "~/.ollama/models"}, models=models) as srv:
        name = f"{registry.host}/library/smollm2:135m"
        assert ollama.Client(host=srv.url).pull(name, insecure=True).status == "success"
    assert registry.blob_gets(layer["digest"])[-1].get("range") == f"bytes={done}-"
    blobs = sorted(p.name for p in (models / "blobs").iterdir())
    doc = json.loads(repo_manifest)
    assert blobs == sorted(x["digest"].replace(":", "-") for x in [*doc["layers"], doc["config"]])
    assert (models / "manifests" / registry.host / "library/smollm2/135m").read_bytes() == repo_manifest
    assert (models / "blobs" / layer["digest"].replace(":", "-")).read_bytes() == data
