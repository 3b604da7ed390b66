"""The Ollama registry: an OCI distribution client for pull and push (spec §17; Ollama's
server/images.go pullModelManifest/makeRequestWithRetry, server/upload.go).

- Manifest: `GET <scheme>://<host>/v2/<namespace>/<model>/manifests/<tag>`; blobs:
  `GET /v2/<ns>/<model>/blobs/<digest>` (redirects followed; Authorization is dropped on a
  redirect to another host).
- Push: `HEAD` each blob, `POST .../blobs/uploads/` (cross-repository mount when the layer has a
  `from`), `PATCH` with Content-Range, `PUT ...?digest=`, then `PUT .../manifests/<tag>`.
- A 401 with a Bearer challenge is answered once with a token from the realm (registry/auth.py);
  a 404 is "file does not exist", as Ollama reports os.ErrNotExist.
- Everything a registry sends is bounded: manifests by size and time, each request by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from ollmlx import __version__
from ollmlx.errors import OllmlxError
from ollmlx.registry import auth, outbound
from ollmlx.store import manifests as mf
from ollmlx.store.blobs import CHUNK, normalize_digest
from ollmlx.store.manifests import Manifest
from ollmlx.store.names import ModelName, parse_name

MAX_MANIFEST_BYTES = 4 << 20
MAX_LAYERS = 100_000
MAX_BLOB_BYTES = 1 << 50
UPLOAD_PART = 64 << 20
MANIFEST_TYPES = {mf.MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.manifest.v1+json"}
CONFIG_TYPES = {mf.CONFIG_MEDIA_TYPE, "application/vnd.oci.image.config.v1+json"}
LAYER_TYPES = {mf.MT + t for t in ("model", "adapter", "projector", "draft", "template", "prompt", "system",
                                    "params", "messages", "license", "embed", "tensor", "json")}
NAMED_FILE_TYPES = {mf.MT_JSON, mf.MT_ADAPTER, mf.MT_TENSOR}


class RegistryError(OllmlxError):
    status = 500


def timeout_seconds() -> float:
    """Seconds a registry may stay silent before a request fails (OLLMLX_REGISTRY_TIMEOUT)."""
    for var in ("OLLMLX_REGISTRY_TIMEOUT", "OLLAMA_REGISTRY_TIMEOUT"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return max(0.1, float(value))
            except ValueError:
                break
    return 30.0


def parse_manifest(data: bytes) -> Manifest:
    """A registry manifest, checked before anything is downloaded: digests must be sha256 digests
    (never paths: the 2024 traversal bug), media types known, sizes sane, file names relative."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"invalid manifest: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers", []), list):
        raise RegistryError("invalid manifest: not an image manifest")
    media = doc.get("mediaType", mf.MANIFEST_MEDIA_TYPE)
    if media not in MANIFEST_TYPES:
        raise RegistryError(f'unsupported manifest media type "{media}"')
    if doc.get("schemaVersion") != 2:
        raise RegistryError(f"unsupported manifest schema version {doc.get('schemaVersion')!r}")
    layers = doc.get("layers") or []
    if len(layers) > MAX_LAYERS:
        raise RegistryError(f"invalid manifest: {len(layers)} layers")
    for i, entry in enumerate([doc["config"], *layers]):
        if not isinstance(entry, dict):
            raise RegistryError("invalid manifest: a layer is not an object")
        digest = entry.get("digest")
        try:
            normalize_digest(digest if isinstance(digest, str) else "")
        except OllmlxError as exc:
            raise RegistryError(f'invalid manifest: layer digest "{digest}" is not a sha256 digest') from exc
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB_BYTES:
            raise RegistryError(f"invalid manifest: layer {digest} has an invalid size {size!r}")
        media_type = entry.get("mediaType")
        allowed = CONFIG_TYPES if i == 0 else LAYER_TYPES
        if media_type not in allowed:
            raise RegistryError(f'unsupported layer media type "{media_type}"')
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or (media_type in NAMED_FILE_TYPES and not _relative(name))):
            raise RegistryError(f"invalid manifest: layer name {name!r} is not a relative path")
    return Manifest.from_bytes(data)


def _relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and "\x00" not in path and "\\" not in path and not any(p in ("", ".", "..") for p in parts)


class RegistryClient:
    """One model repository on one registry."""

    def __init__(self, name: ModelName, insecure: bool = False, timeout: float | None = None) -> None:
        if name.scheme == "http" and not insecure:
            raise RegistryError("insecure protocol http")
        scheme = "http" if insecure else (name.scheme or "https")
        self.host = name.host
        self.base = f"{scheme}://{name.host}"
        self.repo = f"{name.namespace}/{name.model}"
        self.tag = name.tag
        self.timeout = timeout if timeout is not None else timeout_seconds()
        self.token: str | None = None
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout), follow_redirects=True, max_redirects=10, **outbound.client_options(),
            headers={"User-Agent": f"ollmlx/{__version__} (ollama compatible)"})

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def url(self, *parts: str) -> str:
        return "/".join([self.base, "v2", self.repo, *parts])

    # -- requests ------------------------------------------------------------------------
    async def send(self, method: str, url: str, headers: dict[str, str] | None = None,
                   body: Callable[[], Any] | None = None, stream: bool = False,
                   raw_errors: bool = False, params: dict[str, str] | None = None) -> httpx.Response:
        """One request, answering a 401 Bearer challenge once. `body` makes a fresh body per try."""
        resp: httpx.Response | None = None
        for attempt in range(2):
            h = dict(headers or {})
            if self.token:
                h["Authorization"] = f"Bearer {self.token}"
            req = self.http.build_request(method, url, headers=h, content=body() if body else None, params=params)
            try:
                resp = await self.http.send(req, stream=stream)
            except httpx.TimeoutException as exc:
                if raw_errors:
                    raise
                raise RegistryError(f'{method} "{url}": timed out after {self.timeout:g}s') from exc
            except httpx.TransportError as exc:
                if raw_errors:
                    raise
                raise RegistryError(f'{method} "{url}": {exc or type(exc).__name__}') from exc
            if resp.status_code == 401 and attempt == 0 and "www-authenticate" in resp.headers:
                await resp.aclose()
                await self._authorize(resp.headers["www-authenticate"])
                continue
            return resp
        assert resp is not None
        return resp

    async def _authorize(self, header: str) -> None:
        ch = auth.parse_challenge(header)
        try:
            auth.check_realm(ch, self.host)
        except ValueError as exc:
            raise RegistryError(str(exc)) from exc
        url = auth.token_url(ch)
        headers = {}
        signature = await asyncio.to_thread(auth.token_request_auth, url)
        if signature:
            headers["Authorization"] = signature
        try:
            resp = await self.http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"token request failed: {exc}") from exc
        if resp.status_code >= 400:
            raise RegistryError(f"{resp.status_code}: {resp.text[:500]}" if resp.content else str(resp.status_code))
        try:
            self.token = str(resp.json()["token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError("token response without a token") from exc

    @staticmethod
    async def check(resp: httpx.Response) -> httpx.Response:
        if resp.status_code == 404:
            await resp.aclose()
            raise RegistryError("file does not exist")
        if resp.status_code >= 400:
            body = (await resp.aread())[:500].decode("utf-8", "replace")
            raise RegistryError(f"{resp.status_code}: {body}")
        return resp

    # -- pull ------------------------------------------------------------------------------
    async def manifest(self) -> bytes:
        """The manifest's bytes as the registry sent them (they are stored as is)."""
        accept = ", ".join(sorted(MANIFEST_TYPES))
        try:
            async with asyncio.timeout(max(4 * self.timeout, 10.0)):
                resp = await self.check(await self.send("GET", self.url("manifests", self.tag),
                                                        {"Accept": accept}, stream=True))
                try:
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_MANIFEST_BYTES:
                            raise RegistryError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
                finally:
                    await resp.aclose()
        except TimeoutError as exc:
            raise RegistryError("timed out reading the manifest") from exc
        except httpx.TimeoutException as exc:
            raise RegistryError(f"timed out after {self.timeout:g}s reading the manifest") from exc
        except httpx.TransportError as exc:
            raise RegistryError(f"reading the manifest: {exc or type(exc).__name__}") from exc
        return bytes(data)

    @contextlib.asynccontextmanager
    async def open_blob(self, digest: str, offset: int) -> AsyncIterator[httpx.Response]:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = await self.send("GET", self.url("blobs", digest), headers, stream=True, raw_errors=True)
        try:
            if resp.status_code == 404:
                raise RegistryError(f"blob {digest}: file does not exist")
            yield resp
        finally:
            await resp.aclose()

    # -- push ------------------------------------------------------------------------------
    async def blob_exists(self, digest: str) -> bool:
        resp = await self.send("HEAD", self.url("blobs", digest))
        await resp.aclose()
        if resp.status_code == 404:
            return False
        await self.check(resp)
        return True

    async def upload(self, digest: str, path: Path, size: int, from_: str | None,
                     progress: Callable[[int], None]) -> None:
        params = {}
        if from_:
            params = {"mount": digest, "from": parse_name(from_).display_namespace_model()}
        resp = await self.check(await self.send("POST", self.url("blobs", "uploads") + "/", params=params))
        await resp.aclose()
        if resp.status_code == 201:  # mounted from another repository
            progress(size)
            return
        location = self._location(resp)
        offset = 0
        while offset < size:
            n = min(UPLOAD_PART, size - offset)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n),
                       "Content-Range": f"{offset}-{offset + n - 1}"}
            sent = [0]

            def body(start: int = offset, n: int = n, sent: list[int] = sent) -> AsyncIterator[bytes]:
                progress(-sent[0])  # a retried part starts its progress again
                sent[0] = 0
                return _file_section(path, start, n, sent, progress)

            resp = await self.check(await self.send("PATCH", location, headers, body=body))
            await resp.aclose()
            location = self._location(resp)
            offset += n
        resp = await self.check(await self.send("PUT", location, {"Content-Length": "0",
                                                                   "Content-Type": "application/octet-stream"},
                                                params={"digest": digest}))
        await resp.aclose()

    def _location(self, resp: httpx.Response) -> str:
        loc = resp.headers.get("docker-upload-location") or resp.headers.get("location")
        if not loc:
            raise RegistryError(f"upload: status {resp.status_code} without a Location")
        return urljoin(self.base + "/", loc)

    async def put_manifest(self, data: bytes, media_type: str) -> None:
        resp = await self.check(await self.send("PUT", self.url("manifests", self.tag),
                                                {"Content-Type": media_type}, body=lambda: data))
        await resp.aclose()


async def _file_section(path: Path, start: int, n: int, sent: list[int],
                        progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = n
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
            if not chunk:
                raise RegistryError(f"{path.name}: file shrank while uploading")
            left -= len(chunk)
            sent[0] += len(chunk)
            progress(len(chunk))
            yield chunk
