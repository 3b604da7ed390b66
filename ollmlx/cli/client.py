"""The CLI's HTTP client to a running server (OLLMLX_HOST / OLLAMA_HOST)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from ollmlx import __version__, config

CONNECT_ERROR = "could not connect to ollmlx server, run 'ollmlx serve' to start it"


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Client:
    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url or config.host().client_url
        self.http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(None, connect=5),
                                 headers={"User-Agent": f"ollmlx/{__version__} ({sys.platform}) Python"})

    def heartbeat(self) -> None:
        try:
            self.http.head("/")
        except httpx.TransportError as exc:
            raise APIError(0, CONNECT_ERROR) from exc

    @staticmethod
    def _check(r: httpx.Response) -> None:
        if r.status_code >= 400:
            body = r.read()
            try:
                msg = json.loads(body).get("error") or body.decode()
            except (ValueError, AttributeError):
                msg = body.decode("utf-8", "replace")
            raise APIError(r.status_code, str(msg))

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        self._check(r)
        return r.json() if r.content else None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(path, json=body)
        self._check(r)
        return r.json() if r.content else None

    def delete(self, path: str, body: dict[str, Any]) -> None:
        r = self.http.request("DELETE", path, json=body)
        self._check(r)

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self.http.stream("POST", path, json=body) as r:
            self._check(r)
            for line in r.iter_lines():
                if not line:
                    continue
                obj = json.loads(line)
                if "error" in obj:
                    raise APIError(r.status_code, str(obj["error"]))
                yield obj

    def upload_blob(self, digest: str, path: str, on_progress: Any = None) -> None:
        import os

        total = os.path.getsize(path)
        if self.http.head(f"/api/blobs/{digest}").status_code == 200:
            if on_progress:
                on_progress(total, total)
            return

        def chunks() -> Iterator[bytes]:
            done = 0
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
                    yield chunk

        r = self.http.post(f"/api/blobs/{digest}", content=chunks())
        self._check(r)
