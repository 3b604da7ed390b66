"""How the server reaches registries (spec §6 create `from`, §22 HTTPS_PROXY/NO_PROXY): a `from`
model that is not here is pulled first, with pull's statuses; a private registry's CA is trusted
through SSL_CERT_FILE; proxies come from the environment, loopback never goes through one."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trustme

from emulators.ollama_registry import OllamaRegistry
from helpers import Server, running_server

if TYPE_CHECKING:
    from emulators.fixtures import Published

pytest_plugins = ("emulators.fixtures",)


@pytest.fixture(scope="module")
def tls_registry(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OllamaRegistry, Path]]:
    """The registry emulator behind HTTPS with a certificate from a private CA."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    reg = OllamaRegistry(tls=context)
    reg.add_store_model(published.models, "registry.ollama.ai/library/smollm2:135m", "library/smollm2", "135m")
    with reg:
        yield reg, ca_file


def stream(server: Server, path: str, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    with httpx.stream("POST", server.url + path, json=body, timeout=300) as r:
        return r.status_code, [json.loads(line) for line in r.iter_lines() if line]


def manifests(server: Server) -> list[str]:
    root = server.models / "manifests"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def test_create_from_a_model_not_here_pulls_it_first(tmp_path: Path, tls_registry: tuple[OllamaRegistry, Path]) -> None:
    reg, ca_file = tls_registry
    base = f"{reg.host}/library/smollm2:135m"
    with running_server(tmp_path / "trusting", {"SSL_CERT_FILE": str(ca_file)}) as srv:
        status, events = stream(srv, "/api/create", {"model": "terse", "from": base, "system": "Be terse."})
        assert status == 200
        statuses = [e.get("status", "") for e in events]
        assert "error" not in events[-1], events[-1]
        assert statuses[0] == "pulling manifest" and "verifying sha256 digest" in statuses, statuses
        assert statuses.index("verifying sha256 digest") < statuses.index("writing manifest") and statuses[-1] == "success"
        assert manifests(srv) == [f"127.0.0.1:{reg.port}/library/smollm2/135m", "registry.ollama.ai/library/terse/latest"]
        shown = httpx.post(srv.url + "/api/show", json={"model": "terse"}, timeout=60).json()
        assert shown["system"] == "Be terse." and shown["details"]["parent_model"] == base
        r = httpx.post(srv.url + "/api/generate", json={"model": "terse", "prompt": "Hi", "stream": False,
                                                       "options": {"num_predict": 3, "temperature": 0}}, timeout=120)
        assert r.status_code == 200 and r.json()["eval_count"] == 3


def test_an_untrusted_registry_certificate_fails_the_create_cleanly(tmp_path: Path,
                                                                    tls_registry: tuple[OllamaRegistry, Path]) -> None:
    reg, _ = tls_registry
    with running_server(tmp_path / "default-roots") as srv:
        r = httpx.post(srv.url + "/api/create", json={"model": "terse", "from": f"{reg.host}/library/smollm2:135m",
                                                       "stream": False}, timeout=120)
        assert r.status_code == 500 and "certificate verify failed" in r.json()["error"], r.text
        assert manifests(srv) == []
        blobs = srv.models / "blobs"
        assert not blobs.is_dir() or not any(blobs.iterdir())


def test_pulls_go_through_the_environments_proxy_except_loopback(tmp_path: Path, registry: OllamaRegistry) -> None:
    """The emulator stands in for the proxy too: an absolute-form request line is what a forward
    proxy receives. The host behind it does not resolve, so only the proxy can reach it."""
    far = "registry.invalid:5000/library/smollm2:135m"
    with running_server(tmp_path / "proxied", {"HTTP_PROXY": registry.url}) as srv:
        seen = len(registry.requests)
        status, events = stream(srv, "/api/pull", {"model": far, "insecure": True})
        assert status == 200 and events[-1] == {"status": "success"}, events[-3:]
        paths = [p for _, p, _ in registry.requests[seen:]]
        assert "http://registry.invalid:5000/v2/library/smollm2/manifests/135m" in paths
        # a registry on loopback is reached directly even with a proxy set (Go's rule)
        seen = len(registry.requests)
        status, events = stream(srv, "/api/pull", {"model": f"{registry.host}/library/smollm2:135m", "insecure": True})
        assert status == 200 and events[-1] == {"status": "success"}
        assert all(p.startswith("/v2/") for _, p, _ in registry.requests[seen:])
    with running_server(tmp_path / "no-proxy", {"HTTP_PROXY": registry.url, "NO_PROXY": "registry.invalid"}) as srv:
        status, events = stream(srv, "/api/pull", {"model": far, "insecure": True})
        assert "error" in events[-1] and "pull model manifest" in events[-1]["error"], events[-1]
