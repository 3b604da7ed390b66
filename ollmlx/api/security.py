"""CORS with OLLAMA_ORIGINS, and the Host-header guard against DNS rebinding (spec §0).

CORS follows gin-contrib/cors as Ollama configures it: a request whose Origin is not allowed is
refused with 403 (a cross-site page cannot make the server act, whether or not the browser sends
a preflight), and an OPTIONS request from an allowed origin gets the preflight headers and 204.
"""

from __future__ import annotations

import ipaddress
import socket

from fastapi import FastAPI
from starlette.datastructures import Headers
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


def _hostname(host: str) -> str:
    """The Host header without its port (net.SplitHostPort)."""
    if host.startswith("["):
        return host[1:].split("]")[0]
    if host.count(":") == 1:
        return host.split(":")[0]
    return host


def _host_allowed(host: str) -> bool:
    if not host:
        return True
    h = _hostname(host).lower()
    if h in ("localhost", socket.gethostname().lower()):
        return True
    if h.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(_hostname(host))
    except ValueError:
        return False
    return True


class HostGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _loopback_bind():
            request = Request(scope)
            host = request.headers.get("host", "")
            if not _host_allowed(host):
                await Response(status_code=403)(scope, receive, send)
                return
            if scope["method"] == "OPTIONS" and not _is_ip_literal(host):  # allowedHostsMiddleware
                await Response(status_code=204)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class OllamaCORS(CORSMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            host = headers.get("host", "")
            if origin and origin not in (f"http://{host}", f"https://{host}"):  # same origin: not CORS
                if not self.is_allowed_origin(origin):
                    await Response(status_code=403)(scope, receive, send)
                    return
                if scope["method"] == "OPTIONS":
                    preflight = self.preflight_response(request_headers=headers)
                    cors_headers = {k: v for k, v in preflight.headers.items()
                                    if k.lower() not in ("content-length", "content-type")}
                    await Response(status_code=204, headers=cors_headers)(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _loopback_bind() -> bool:
    host = config.host().host
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def install_security(app: FastAPI) -> None:
    origins = config.origins() + DEFAULT_ORIGINS
    app.add_middleware(HostGuard)  # inside CORS, as in Ollama: a preflight is answered before the Host check
    app.add_middleware(OllamaCORS, allow_origin_regex=_origin_regex(origins), allow_methods=["*"],
                       allow_headers=ALLOW_HEADERS, allow_credentials=False)
