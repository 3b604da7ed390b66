"""CORS with OLLAMA_ORIGINS, and the Host-header guard against DNS rebinding (spec §0)."""

from __future__ import annotations

import ipaddress
import socket

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ollmlx import config

ALLOW_HEADERS = [
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
    *(f"x-stainless-{h}" for h in ("arch", "async", "custom-poll-interval", "helper-method", "lang", "os",
                                   "package-version", "poll-helper", "retry-count", "runtime",
                                   "runtime-version", "timeout")),
]
DEFAULT_ORIGINS = [
    f"{scheme}://{host}{port}"
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for scheme in ("http", "https")
    for port in ("", ":*")
] + ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]


def _origin_regex(patterns: list[str]) -> str:
    import re

    parts = []
    for p in patterns:
        if p == "*":
            parts.append(".*")
            continue
        parts.append(re.escape(p).replace(r"\*", ".*"))
    return "^(" + "|".join(parts) + ")$"


def _host_allowed(host: str) -> bool:
    if not host:
        return True
    h = host
    if h.startswith("["):
        h = h[1:].split("]")[0]
    elif h.count(":") == 1:
        h = h.split(":")[0]
    h = h.lower()
    if h in ("localhost", socket.gethostname().lower()):
        return True
    if h.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


class HostGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _loopback_bind():
            request = Request(scope)
            if not _host_allowed(request.headers.get("host", "")):
                await Response(status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _loopback_bind() -> bool:
    host = config.host().host
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def install_security(app: FastAPI) -> None:
    origins = config.origins() + DEFAULT_ORIGINS
    app.add_middleware(CORSMiddleware, allow_origin_regex=_origin_regex(origins), allow_methods=["*"],
                       allow_headers=ALLOW_HEADERS, allow_credentials=False)
    app.add_middleware(HostGuard)
