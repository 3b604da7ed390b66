"""Hugging Face pulls through `huggingface_hub` against a Hub emulator (HF_ENDPOINT): MLX repositories
stored as tensor/json layers, GGUF repositories by quantization tag, catalogue names, `source`
forcing, HF_TOKEN for private repositories, the HF cache, and GET /api/search with its cache
(spec §6 /api/pull statuses; §15-16 names and layout)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from emulators.fixtures import GGUF_REPO, MLX_REPO, hf_env
from emulators.hf_hub import HubEmulator, Repo
from emulators.ollama_registry import OllamaRegistry
from helpers import Server, running_server, smollm2_gguf

pytest_plugins = ("emulators.fixtures",)
CHAT = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]


def pull(server: Server, model: str, **extra: Any) -> list[dict[str, Any]]:
    with httpx.stream("POST", server.url + "/api/pull", json={"model": model, **extra}, timeout=600) as r:
        assert r.status_code == 200
        return [json.loads(line) for line in r.iter_lines() if line]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, hub: HubEmulator, registry: OllamaRegistry) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("hf")
    catalogue = home / "catalogue.json"
    # a user catalogue entry for a name on the registry emulator: pulled from HF unless forced
    catalogue.write_text(json.dumps({f"{registry.host}/library/mapped:1": MLX_REPO}))
    env = {**hf_env(hub, home), "OLLMLX_CATALOGUE": str(catalogue), "OLLMLX_SEARCH_TTL": "1"}
    with running_server(home, env) as s:
        yield s


def layers(server: Server, host: str, ns: str, model: str, tag: str) -> list[dict[str, Any]]:
    doc = json.loads((server.models / "manifests" / host / ns / model / tag).read_bytes())
    return list(doc["layers"])


@pytest.mark.slow
def test_mlx_repo_becomes_tensor_layers_and_runs(srv: Server, hub: HubEmulator) -> None:
    name = f"hf.co/{MLX_REPO}"
    events = pull(srv, name)
    statuses = [e["status"] for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"], statuses
    model_events = [e for e in events if e["status"] == "pulling model"]
    assert model_events and model_events[-1]["completed"] == model_events[-1]["total"]
    assert all(e["digest"] == "sha256:model" for e in model_events)
    org, repo = MLX_REPO.split("/")
    got = layers(srv, "hf.co", org, repo, "latest")
    media = {x["mediaType"].rsplit(".", 1)[-1] for x in got}
    assert media == {"tensor", "json"}
    json_names = {x["name"] for x in got if x["mediaType"].endswith(".json")}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= json_names
    assert "README.md" not in json_names and not any(n.endswith(".safetensors") for n in json_names)
    # the whole-file safetensors blob was split into tensors and not kept
    whole = hub.repos[MLX_REPO]._meta["model.safetensors"]["sha256"]
    assert not (srv.models / "blobs" / f"sha256-{whole}").exists()
    # huggingface_hub's cache (HF_HOME) holds the files, as for any other HF tool
    assert list((srv.models.parent / "hf" / "hub").glob(f"models--{org}--{repo}/snapshots/*/config.json"))
    out = ollama.Client(host=srv.url).chat(model=name, messages=CHAT, options={"temperature": 0, "num_predict": 12},
                                           keep_alive=0)
    assert "Paris" in out.message.content


@pytest.mark.slow
def test_gguf_repo_picks_file_by_quant(srv: Server, hub: HubEmulator) -> None:
    org, repo = GGUF_REPO.split("/")
    events = pull(srv, f"hf.co/{GGUF_REPO}:Q8_0")
    assert events[-1] == {"status": "success"}, events
    assert hub.downloads[-1] == "SmolLM2-135M-Instruct-Q8_0.gguf"
    q8 = hub.repos[GGUF_REPO]._meta["SmolLM2-135M-Instruct-Q8_0.gguf"]["sha256"]
    per_file = [e for e in events if e.get("digest") == f"sha256:{q8}"]
    assert per_file and per_file[0]["status"] == f"pulling {q8[:12]}"
    assert [e["status"] for e in events][-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    model = [x for x in layers(srv, "hf.co", org, repo, "Q8_0") if x["mediaType"].endswith(".model")]
    assert [x["digest"] for x in model] == [f"sha256:{q8}"]
    # no tag: Q4_K_M by default
    assert pull(srv, f"hf.co/{GGUF_REPO}")[-1] == {"status": "success"}
    assert hub.downloads[-1] == "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    out = ollama.Client(host=srv.url).chat(model=f"hf.co/{GGUF_REPO}", messages=CHAT,
                                           options={"temperature": 0, "num_predict": 12})
    assert "Paris" in out.message.content
    # an unknown quantization says what there is
    r = httpx.post(srv.url + "/api/pull", json={"model": f"hf.co/{GGUF_REPO}:IQ2_XS", "stream": False})
    assert r.status_code == 500 and "Q4_K_M" in r.json()["error"] and "Q8_0" in r.json()["error"]
    r = httpx.post(srv.url + "/api/pull", json={"model": "hf.co/nobody/nothing", "stream": False})
    assert r.status_code == 500 and r.json() == {"error": "pull model manifest: file does not exist"}


@pytest.mark.slow
def test_catalogue_name_and_source_forcing(srv: Server, hub: HubEmulator, registry: OllamaRegistry) -> None:
    """`smollm2:135m` is a shipped catalogue name → its MLX repository; `source` forces a side."""
    before = len(hub.requests)
    assert pull(srv, "smollm2:135m")[-1] == {"status": "success"}
    assert any(MLX_REPO in p for _, p, _ in hub.requests[before:])
    got = layers(srv, "registry.ollama.ai", "library", "smollm2", "135m")
    assert any(x["mediaType"].endswith(".tensor") for x in got)
    # a user catalogue entry maps a registry name to HF; source=ollama goes to the registry instead
    mapped = f"{registry.host}/library/mapped:1"
    assert pull(srv, mapped)[-1] == {"status": "success"}
    assert any(x["mediaType"].endswith(".tensor") for x in layers(srv, registry.host, "library", "mapped", "1"))
    events = pull(srv, mapped, source="ollama", insecure=True)
    assert events[-1] == {"error": "pull model manifest: file does not exist"}  # not on the registry
    # source=hf with an org/repo name reads it as a repository id
    before = len(hub.requests)
    assert pull(srv, GGUF_REPO, source="hf")[-1] == {"status": "success"}
    assert any(GGUF_REPO in p for _, p, _ in hub.requests[before:])
    r = httpx.post(srv.url + "/api/pull", json={"model": "notinthecatalogue", "source": "hf"})
    assert r.status_code == 400 and "no Hugging Face repository" in r.json()["error"]


@pytest.mark.slow
def test_private_repo_needs_hf_token(tmp_path: Path, hub: HubEmulator) -> None:
    hub.add(Repo("private-org/secret-GGUF", {"secret-Q4_K_M.gguf": smollm2_gguf()}, tags=["gguf"], token="hf_test"))
    name = "hf.co/private-org/secret-GGUF"
    with running_server(tmp_path / "anon", hf_env(hub, tmp_path / "anon")) as s:
        r = httpx.post(s.url + "/api/pull", json={"model": name, "stream": False}, timeout=120)
        assert r.status_code == 500 and r.json() == {"error": "pull model manifest: file does not exist"}
    with running_server(tmp_path / "auth", {**hf_env(hub, tmp_path / "auth"), "HF_TOKEN": "hf_test"}) as s:
        r = httpx.post(s.url + "/api/pull", json={"model": name, "stream": False}, timeout=300)
        assert r.status_code == 200 and r.json() == {"status": "success"}


def test_search_lists_catalogue_and_hub_with_a_cache(tmp_path: Path) -> None:
    with HubEmulator() as hub:
        hub.add(Repo(MLX_REPO, {"config.json": b"{}"}, tags=["mlx"], library="mlx", downloads=9))
        hub.add(Repo("someone/SmolLM2-GGUF", {"a.gguf": b"x"}, tags=["gguf"], downloads=3))
        with running_server(tmp_path, {**hf_env(hub, tmp_path), "OLLMLX_SEARCH_TTL": "1"}) as s:
            first = httpx.get(s.url + "/api/search", params={"q": "smollm2"}, timeout=60).json()
            names = [m["name"] for m in first["models"]]
            assert "smollm2:135m" in names  # the catalogue
            assert names.index("smollm2:135m") < names.index(f"hf.co/{MLX_REPO}")
            assert {m["name"]: m["format"] for m in first["models"] if m["source"] == "hf"} == {
                f"hf.co/{MLX_REPO}": "mlx", "hf.co/someone/SmolLM2-GGUF": "gguf"}
            listing_calls = sum(1 for _, p, _ in hub.requests if p.startswith("/api/models?"))
            assert httpx.get(s.url + "/api/search", params={"q": "smollm2"}).json() == first
            assert sum(1 for _, p, _ in hub.requests if p.startswith("/api/models?")) == listing_calls
            only = httpx.get(s.url + "/api/search", params={"q": "smollm2", "format": "gguf"}).json()["models"]
            assert [m["name"] for m in only] == ["hf.co/someone/SmolLM2-GGUF"]
            hub.listing_error = 403  # (not a 5xx or a refused connection: huggingface_hub retries those for ~25 s)
            time.sleep(1.2)  # expired, and the Hub will not answer: the stale answer is still served
            stale = httpx.get(s.url + "/api/search", params={"q": "smollm2"}, timeout=60).json()
            assert stale["stale"] is True and stale["models"] == first["models"]
            r = httpx.get(s.url + "/api/search", params={"q": "never-asked"}, timeout=60)
            assert r.status_code == 500 and r.json()["error"].startswith("search:")
