"""Hostile input against a live server: path traversal and file-system probes, requests far larger
than any real one, and the browser-facing guards (spec §0 CORS and the Host-header guard, §6
create/blobs, §15 names). The classes of bug are Ollama's published ones: registry digests used as
paths ("Probllama", CVE-2024-37032; the registry side is in test_pull.py's bad-registry cases),
`create` from special files hanging the server (CVE-2024-39721), file existence leaked through
create/push error texts (CVE-2024-39719, CVE-2024-39722), and DNS rebinding (CVE-2024-28224).

Every case checks the same things: an Ollama-shaped 4xx (never a 2xx, never a 5xx), a prompt answer,
no file written outside the store, the store unchanged, the server still serving.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from helpers import Server, minilm_dir, running_server

CANARY = "ollmlx-pwned"
SECRET = "TOP-SECRET-d41d8cd98f00b204"

# Model names that must never become a path: `..` and `/` tricks, NUL, URL-encoding that a naive
# decoder would turn into separators, and unicode look-alikes of `.` and `/`.
EVIL_NAMES = [
    "..", "../x", f"../../../../tmp/{CANARY}", "x/../../y", "a/b/../../../c", "./x", "/abs/path", "//x",
    f"x:../../tmp/{CANARY}", f"registry.ollama.ai/../../../tmp/{CANARY}", "host/ns/../../../x",
    "m\x00x", "m%2f..%2fx", "..%2F..%2Fetc", "m\\..\\..\\x", "C:\\Windows\\x",
    "\uff0e\uff0e/\uff0e\uff0e/x",  # fullwidth full stops
    "m\u2215x", "m\u2044x", "\uff4d\uff4f\uff44\uff45\uff4c",  # division slash, fraction slash, fullwidth "model"
    "m\u202etxt", "m\u200bx", "\u2025/x",  # right-to-left override, zero-width space, two-dot leader
    "a" * 400,
]


def _files_outside_store(server: Server) -> set[str]:
    root = server.models.parent
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not p.is_relative_to(server.models) and not p.name.startswith("server-")}


def _store(server: Server) -> set[str]:
    return {str(p.relative_to(server.models)) for p in server.models.rglob("*") if p.is_file()}


@pytest.fixture
def unchanged(server: Server) -> Iterator[None]:
    """The test must leave the store and everything around it as it found them."""
    before, outside = _store(server), _files_outside_store(server)
    yield
    assert _store(server) == before
    assert _files_outside_store(server) == outside
    assert not list(Path("/tmp").glob(f"{CANARY}*"))
    assert server.alive()


def _post(server: Server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=180)


def _raw(server: Server, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """A request with the path sent byte for byte (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# -- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EVIL_NAMES)
def test_evil_model_names_are_refused_everywhere(server: Server, name: str, unchanged: None) -> None:
    """§15: a name that is not valid never reaches the file system; every route says so."""
    chat = [{"role": "user", "content": "hi"}]
    cases: list[tuple[str, dict]] = [
        ("/api/generate", {"model": name, "prompt": "hi"}),
        ("/api/chat", {"model": name, "messages": chat}),
        ("/api/show", {"model": name}),
        ("/api/embed", {"model": name, "input": "hi"}),
        ("/api/embeddings", {"model": name, "prompt": "hi"}),
        ("/api/create", {"model": name, "from": "smollm2:135m"}),
        ("/api/create", {"model": "fine-name", "from": name}),
        ("/api/copy", {"source": "smollm2:135m", "destination": name}),
        ("/api/copy", {"source": name, "destination": "fine-name"}),
        ("/api/pull", {"model": name, "stream": False}),
        ("/api/push", {"model": name, "stream": False}),
        ("/v1/chat/completions", {"model": name, "messages": chat}),
        ("/v1/embeddings", {"model": name, "input": "hi"}),
    ]
    for path, body in cases:
        r = _post(server, path, body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
        assert "error" in r.json(), (path, r.text)
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=30)
    assert 400 <= r.status_code < 500 and "error" in r.json(), r.text


def test_invalid_names_get_ollamas_messages(server: Server) -> None:
    """§19: the exact texts for the common routes."""
    name = f"../../../../tmp/{CANARY}"
    for path, body in (("/api/generate", {"model": name, "prompt": "hi"}), ("/api/show", {"model": name}),
                       ("/api/pull", {"model": name}), ("/api/create", {"model": name, "from": "x"})):
        r = _post(server, path, body)
        assert (r.status_code, r.json()) == (400, {"error": "invalid model name"}), path


# -- file-system probes ---------------------------------------------------------------------

def test_create_from_a_path_reveals_nothing_and_never_opens_it(server: Server, tmp_path: Path, unchanged: None) -> None:
    """CVE-2024-39719/-39721: the server takes `from` as a model name, never as a path; answers
    are the same whether the path exists, is a device, a FIFO, or nothing at all."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    probes = ["/etc/passwd", "/etc/does-not-exist", "/dev/zero", "/dev/random", str(fifo), str(tmp_path),
              "../../../../etc/shadow", "~root/.ssh/id_rsa"]
    answers = set()
    for probe in probes:
        t0 = time.monotonic()
        r = _post(server, "/api/create", {"model": "probe", "from": probe, "stream": False})
        assert time.monotonic() - t0 < 10, probe
        answers.add((r.status_code, r.text))
    assert answers == {(400, json.dumps({"error": "invalid model name"}, separators=(",", ":")))}


def test_push_reveals_nothing_about_files(server: Server, unchanged: None) -> None:
    """CVE-2024-39722: push of names aimed at files answers the same whether they exist or not."""
    answers = set()
    for name in ("../../../../etc/passwd", "../../../../etc/does-not-exist", "/etc/passwd",
                 "registry.ollama.ai/../../../../etc/passwd"):
        r = _post(server, "/api/push", {"model": name, "stream": False})
        answers.add((r.status_code, r.text))
    assert answers == {(400, '{"error":"invalid model name"}')}


EVIL_DIGESTS = [
    "sha256:../../../../etc/passwd", "sha256-..%2F..%2F..%2Fetc%2Fpasswd", "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "sha256:" + "a" * 64 + "%0A", "sha256:" + "a" * 64 + "%00",
    "sha256:" + "a" * 64 + "/../../../etc/passwd", "sha256:" + "a" * 63, "sha256:" + "a" * 65,
    "sha256:" + quote("\uff10" * 64), "sha512:" + "a" * 128, "sha256:" + "g" * 64, "sha256%3A..%2F..%2Fx",
]


@pytest.mark.parametrize("digest", EVIL_DIGESTS)
def test_blob_digests_never_become_paths(server: Server, digest: str, unchanged: None) -> None:
    """§6 blobs (Probllama's class of bug): anything but `sha256:<64 hex>` is refused."""
    for method in ("HEAD", "POST"):
        status, body = _raw(server, method, "/api/blobs/" + digest, b"pwned" if method == "POST" else b"")
        assert 400 <= status < 500, (method, digest, status, body)
        if status == 400 and method == "POST":
            assert json.loads(body) == {"error": "invalid digest format"}


def test_create_files_keys_and_digests(server: Server, unchanged: None) -> None:
    """§6 create: `files`/`adapters` keys are Go fs.ValidPath paths, values digests."""
    good = "sha256:" + "0" * 64
    for key in ("../evil.gguf", "/etc/passwd", "a/../../b.gguf", "a\\..\\b.gguf", "nul\x00.gguf", "./x.gguf",
                "", "a//b.gguf", "..", "x/.."):
        for field in ("files", "adapters"):
            r = _post(server, "/api/create", {"model": "x", "from": "smollm2:135m", field: {key: good}})
            assert (r.status_code, r.json()) == (400, {"error": "file path must be relative"}), (field, key)
    for digest in ("sha256:../../../etc/passwd", "../../etc/passwd", "sha256:" + "a" * 64 + "\n", ""):
        r = _post(server, "/api/create", {"model": "x", "files": {"model.gguf": digest}})
        assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"}), digest
    r = _post(server, "/api/create", {"model": "x", "files": {"model.gguf": good}, "stream": False})
    assert r.status_code == 400 and "not found" in r.json()["error"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "socket"])
def test_cli_create_from_special_files_fails_fast(server: Server, tmp_path: Path, special: str,
                                                  unchanged: None) -> None:
    """CVE-2024-39721: `FROM /dev/zero`, a FIFO or a socket must not hang or fill the disk."""
    import socket as sk

    if special == "fifo":
        target = tmp_path / "model.gguf"
        os.mkfifo(target)
    elif special == "socket":
        target = tmp_path / "model.sock"
        s = sk.socket(sk.AF_UNIX)
        s.bind(str(target))
    else:
        target = Path(special)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {target}\n")
    t0 = time.monotonic()
    try:
        r = server.cli("create", "special", "-f", str(modelfile), timeout=60)
    finally:
        if special == "socket":
            s.close()
    assert time.monotonic() - t0 < 60
    assert r.returncode != 0 and "Error" in r.stderr, r.stderr


@pytest.mark.slow
def test_symlinks_inside_an_imported_directory_stay_inside(server: Server, tmp_path: Path) -> None:
    """The CLI imports a directory's regular files; a symlink leading out of it (to a secret, a
    device) or a FIFO inside it is skipped, so nothing outside the directory reaches the store."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    model = tmp_path / "model"
    shutil.copytree(minilm_dir(), model, ignore=shutil.ignore_patterns("README.md", ".gitattributes"))
    (model / "leak.json").symlink_to(secret)
    (model / "zero.safetensors").symlink_to("/dev/zero")
    (model / "outside").symlink_to(tmp_path)
    os.mkfifo(model / "pipe.json")
    (model / "inside.json").symlink_to(model / "config.json")  # inside: allowed
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {model}\n")
    r = server.cli("create", "symlinked", "-f", str(modelfile), timeout=300)
    try:
        assert r.returncode == 0, r.stderr
        show = _post(server, "/api/show", {"model": "symlinked"})
        assert show.status_code == 200
        manifest = json.loads((server.models / "manifests/registry.ollama.ai/library/symlinked/latest").read_text())
        names = {layer.get("name") for layer in manifest["layers"]}
        assert "leak.json" not in names and "pipe.json" not in names and "zero.safetensors" not in names
        for blob in (server.models / "blobs").iterdir():
            with open(blob, "rb") as f:
                assert SECRET.encode() not in f.read(), blob
    finally:
        httpx.request("DELETE", server.url + "/api/delete", json={"model": "symlinked"}, timeout=60)


# -- requests far larger than real ones ----------------------------------------------------

def test_body_size_limit(server: Server, unchanged: None) -> None:
    """A body over OLLMLX_MAX_REQUEST_SIZE (64 MiB) is refused before it is parsed, declared or
    chunked; blob uploads stream to disk and are not limited."""
    big = b'{"model":"smollm2:135m","prompt":"' + b"x" * (65 << 20) + b'"}'
    r = httpx.post(server.url + "/api/generate", content=big, timeout=120)
    assert (r.status_code, r.json()) == (413, {"error": "http: request body too large"})

    def chunks() -> Iterator[bytes]:
        for _ in range(66):
            yield b"x" * (1 << 20)

    r = httpx.post(server.url + "/api/chat", content=chunks(), timeout=120)
    assert (r.status_code, r.json()) == (413, {"error": "http: request body too large"})
    wrong = "sha256:" + "0" * 64
    r = httpx.post(server.url + f"/api/blobs/{wrong}", content=chunks(), timeout=120)
    assert r.status_code == 400 and r.json()["error"].startswith("digest mismatch")


def test_huge_num_predict_num_ctx_and_many_images(server: Server, unchanged: None) -> None:
    """num_ctx far beyond the model is clamped to its trained context (not allocated); num_predict
    of 2**62 is bounded at ten context windows (context shift goes on past one); a thousand images
    to a text model are refused."""
    r = _post(server, "/api/generate", {"model": "smollm2:135m", "prompt": "hi", "stream": False,
                                        "options": {"num_ctx": 2 ** 40, "num_predict": 1}})
    assert r.status_code == 200, r.text
    (loaded,) = httpx.get(server.url + "/api/ps").json()["models"]
    assert loaded["context_length"] == 8192  # SmolLM2's trained context
    # (the same options as the runner loaded: images are checked after the load, which this reuses)
    r = _post(server, "/api/generate", {"model": "smollm2:135m", "prompt": "hi", "images": ["aGk="] * 1000,
                                        "options": {"num_ctx": 2 ** 40}})
    assert r.status_code == 400 and "image" in r.json()["error"]
    assert [m["context_length"] for m in httpx.get(server.url + "/api/ps").json()["models"]] == [8192]
    r = _post(server, "/api/generate", {"model": "smollm2:135m", "prompt": "1, 2, 3, 4, 5,", "raw": True,
                                        "stream": False, "keep_alive": 0,
                                        "options": {"num_ctx": 16, "num_predict": 2 ** 62, "temperature": 0}})
    assert r.status_code == 200, r.text
    assert r.json()["done"] and r.json()["eval_count"] <= 10 * 16


# -- browser-facing guards (spec §0) --------------------------------------------------------

def test_host_header_guard_against_dns_rebinding(server: Server) -> None:
    """Bound to loopback: a Host that is not local gets 403 with an empty body; local names and
    private addresses pass; OPTIONS from an allowed name gets 204."""
    for host in ("evil.example", "evil.example:11434", "localhost.evil.example", "127.0.0.1.nip.io", "8.8.8.8"):
        r = httpx.get(server.url + "/api/tags", headers={"Host": host})
        assert (r.status_code, r.content) == (403, b""), host
    for host in ("localhost", f"localhost:{server.port}", "app.localhost", "box.local", "svc.internal",
                 "127.0.0.1", "[::1]:80", "10.1.2.3", "192.168.0.10:11434", ""):
        r = httpx.get(server.url + "/api/version", headers={"Host": host})
        assert r.status_code == 200, host
    r = httpx.options(server.url + "/api/tags", headers={"Host": f"localhost:{server.port}"})
    assert (r.status_code, r.content) == (204, b"")


def test_cors_only_for_allowed_origins(server: Server) -> None:
    """gin-contrib/cors as Ollama configures it: allowed origins get the CORS headers (preflight
    204), any other Origin is refused with 403 so a foreign page cannot make the server act."""
    ok = "http://localhost:3000"
    r = httpx.options(server.url + "/api/chat", headers={"Origin": ok, "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["access-control-allow-origin"] == ok
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    r = httpx.get(server.url + "/api/version", headers={"Origin": ok})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ok
    for evil in ("https://evil.example", "http://localhost.evil.example", "null", "chrome-extension://abc"):
        r = httpx.get(server.url + "/api/version", headers={"Origin": evil})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers, evil
        r = httpx.delete(server.url + "/api/delete", headers={"Origin": evil}, timeout=30)
        assert r.status_code == 403, evil
    # a same-origin request (fetch from a page the server itself serves) is not a CORS request
    r = httpx.get(server.url + "/api/version", headers={"Origin": server.url})
    assert r.status_code == 200


def test_ollama_origins_and_a_non_loopback_bind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_ORIGINS adds origins (wildcards allowed); bound to all interfaces the Host guard is off."""
    import helpers

    port = helpers.free_port()
    monkeypatch.setattr(helpers, "free_port", lambda: port)  # the helper then polls the port we bind
    env = {"OLLAMA_ORIGINS": "https://app.example,https://*.trusted.example", "OLLMLX_HOST": f"0.0.0.0:{port}"}
    with running_server(tmp_path, env) as srv:
        for origin in ("https://app.example", "https://x.trusted.example"):
            r = httpx.get(srv.url + "/api/version", headers={"Origin": origin})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        r = httpx.get(srv.url + "/api/version", headers={"Origin": "https://other.example"})
        assert r.status_code == 403
        r = httpx.get(srv.url + "/api/version", headers={"Host": "evil.example"})
        assert r.status_code == 200  # not bound to loopback: the rebinding guard does not apply
