"""An Ollama (OCI distribution) registry on 127.0.0.1, speaking what Ollama's server/images.go,
download.go and upload.go speak (spec §17): manifests and blobs with Range, chunked uploads
(POST → PATCH with Content-Range → PUT ?digest=), cross-repository mounts, manifest PUT, and an
optional Bearer-token challenge. Faults can be switched on per manifest or blob for bad-input tests.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from emulators.http import Body, EmulatorServer, Handler, body_len

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Fault:
    """What to do instead of answering normally."""

    kind: str  # "500" | "hang" | "endless" | "corrupt" | "truncate" | "slow"
    delay: float = 0.01  # "slow": seconds per 64 KiB after `after` bytes
    after: int = 0


class RegistryHandler(Handler):
    app: OllamaRegistry

    def _route(self) -> tuple[str, str, str, dict[str, list[str]]] | None:
        parts = urlsplit(self.path)
        segs = parts.path.split("/")
        # /v2/<ns>/<model>/<kind>/<ref...>
        if len(segs) < 5 or segs[1] != "v2":
            return None
        repo = f"{segs[2]}/{segs[3]}"
        return repo, segs[4], "/".join(segs[5:]), parse_qs(parts.query)

    def _authorized(self, repo: str) -> bool:
        token = self.app.token
        if token is None or self.headers.get("Authorization") == f"Bearer {token}":
            return True
        realm = f"{self.app.url}/token"
        self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
            "WWW-Authenticate": f'Bearer realm="{realm}",service="emulator",scope="repository:{repo}:pull,push"'})
        return False

    def do_GET(self) -> None:
        self.record()
        if urlsplit(self.path).path == "/token":
            self.app.token_requests.append(dict(self.headers.items()))
            self.reply(200, json.dumps({"token": self.app.token}).encode())
            return
        route = self._route()
        if route is None:
            self.reply(404, b"404 page not found", content_type="text/plain")
            return
        repo, kind, ref, _ = route
        if not self._authorized(repo):
            return
        if kind == "manifests":
            self._manifest(repo, ref)
        elif kind == "blobs":
            self._blob(ref)
        else:
            self.reply(404)

    do_HEAD = do_GET

    def _fault(self, fault: Fault | None) -> bool:
        if fault is None:
            return False
        if fault.kind == "500":
            self.reply(500, b'{"errors":[{"code":"UNKNOWN","message":"emulated failure"}]}')
            return True
        if fault.kind == "hang":
            self.app.stopping.wait(120)
            self.close_connection = True
            return True
        if fault.kind == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            sent = 0
            try:  # bounded so a broken client cannot keep this thread forever
                while sent < (256 << 20) and not self.app.stopping.is_set():
                    self.wfile.write(b"{" * (1 << 16))
                    sent += 1 << 16
            except (BrokenPipeError, ConnectionResetError):
                pass
            return True
        return False

    def _manifest(self, repo: str, tag: str) -> None:
        if self._fault(self.app.faults.get(f"{repo}:{tag}")):
            return
        data = self.app.manifests.get((repo, tag))
        if data is None:
            self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            return
        self.reply(200, data, {"Docker-Content-Digest": sha256(data)}, content_type=MANIFEST_TYPE)

    def _blob(self, digest: str) -> None:
        fault = self.app.faults.get(digest)
        if self._fault(fault):
            return
        body = self.app.blobs.get(digest)
        if body is None:
            self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            return
        headers = {"Docker-Content-Digest": digest}
        if fault is not None and fault.kind == "corrupt":
            size = body_len(body)
            self.send_body(b"\0" * size, headers)
        elif fault is not None and fault.kind == "truncate":
            self.send_body(body, headers, truncate_at=body_len(body) // 2)
        elif fault is not None and fault.kind == "slow":
            self.send_body(body, headers, chunk_delay=fault.delay, slow_after=fault.after)
        else:
            self.send_body(body, headers)

    # -- push -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self.record()
        route = self._route()
        if route is None or route[1] != "blobs" or not route[2].startswith("uploads"):
            self.reply(404)
            return
        repo, _, _, query = route
        if not self._authorized(repo):
            return
        mount = (query.get("mount") or [""])[0]
        if mount and mount in self.app.blobs:
            self.app.mounts.append((mount, (query.get("from") or [""])[0]))
            self.reply(201, b"", {"Location": f"/v2/{repo}/blobs/{mount}"})
            return
        upload_id = uuid.uuid4().hex
        self.app.uploads[upload_id] = bytearray()
        self.reply(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{upload_id}", "Range": "0-0"})

    def do_PATCH(self) -> None:
        self.record()
        route = self._route()
        data = self.read_body()
        if route is None or not route[2].startswith("uploads/"):
            self.reply(404)
            return
        repo, _, ref, _ = route
        if not self._authorized(repo):
            return
        buf = self.app.uploads.get(ref.split("/", 1)[1])
        if buf is None:
            self.reply(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')
            return
        start = int((self.headers.get("Content-Range") or "0-0").split("-")[0])
        if start != len(buf):
            self.reply(416, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}')
            return
        buf += data
        self.reply(202, b"", {"Location": f"/v2/{repo}/blobs/{ref}", "Range": f"0-{len(buf) - 1}"})

    def do_PUT(self) -> None:
        self.record()
        route = self._route()
        data = self.read_body()
        if route is None:
            self.reply(404)
            return
        repo, kind, ref, query = route
        if not self._authorized(repo):
            return
        if kind == "blobs" and ref.startswith("uploads/"):
            buf = self.app.uploads.pop(ref.split("/", 1)[1], None)
            if buf is None:
                self.reply(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')
                return
            buf += data
            digest = (query.get("digest") or [""])[0]
            if sha256(bytes(buf)) != digest:
                self.reply(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                return
            self.app.blobs[digest] = bytes(buf)
            self.reply(201, b"", {"Location": f"/v2/{repo}/blobs/{digest}"})
        elif kind == "manifests":
            doc = json.loads(data)
            for layer in [doc["config"], *doc.get("layers", [])]:
                if layer["digest"] not in self.app.blobs:
                    self.reply(400, b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}')
                    return
            self.app.manifests[(repo, ref)] = data
            self.reply(201, b"", {"Docker-Content-Digest": sha256(data)})
        else:
            self.reply(404)


class OllamaRegistry(EmulatorServer):
    handler = RegistryHandler

    def __init__(self, token: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, Body] = {}
        self.faults: dict[str, Fault] = {}
        self.uploads: dict[str, bytearray] = {}
        self.mounts: list[tuple[str, str]] = []
        self.token = token
        self.token_requests: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def add_store_model(self, models: Path, name: str, repo: str, tag: str) -> bytes:
        """Publish a model from an ollmlx/Ollama store directory: its manifest bytes and blobs."""
        host_ns_model = name.split(":")[0]
        manifest = (models / "manifests" / f"{host_ns_model}/{name.split(':')[1]}").read_bytes()
        self.manifests[(repo, tag)] = manifest
        doc = json.loads(manifest)
        for layer in [doc["config"], *doc["layers"]]:
            self.blobs[layer["digest"]] = models / "blobs" / layer["digest"].replace(":", "-")
        return manifest

    def blob_gets(self, digest: str) -> list[dict[str, str]]:
        return [h for m, p, h in self.requests if m == "GET" and p.endswith(f"/blobs/{digest}")]
