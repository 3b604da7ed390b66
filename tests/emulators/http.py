"""A small threaded HTTP/1.1 server base for the emulators (stdlib only, 127.0.0.1)."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Body = bytes | Path


def body_len(body: Body) -> int:
    return body.stat().st_size if isinstance(body, Path) else len(body)


def body_slice(body: Body, start: int, end: int) -> bytes:
    if isinstance(body, Path):
        with open(body, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    return body[start:end]


class EmulatorServer:
    """Runs a handler class on a free 127.0.0.1 port in a daemon thread."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stopping = threading.Event()
        emulator = self

        class Handler(self.handler):  # type: ignore[name-defined]
            protocol_version = "HTTP/1.1"
            app = emulator

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:  # handshakes in the handler threads, not in the accept loop
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self) -> EmulatorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Handler(BaseHTTPRequestHandler):
    app: Any

    def parse_request(self) -> bool:
        if self.app.stopping.is_set():  # a stopped emulator also drops its kept-alive connections
            self.close_connection = True
            return False
        return super().parse_request()

    def record(self) -> None:
        self.app.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

    def read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_body(self, body: Body, headers: dict[str, str], content_type: str = "application/octet-stream",
                  chunk_delay: float = 0.0, slow_after: int = 0, truncate_at: int | None = None) -> None:
        """A blob, with Range support (206) and optional throttling / truncation for fault tests."""
        import time

        size = body_len(body)
        start, status = 0, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            if start >= size and size:
                self.reply(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{size - 1}/{size}"}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Accept-Ranges", "bytes")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(size - start))
        if truncate_at is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        pos = start
        end = size if truncate_at is None else min(size, truncate_at)
        try:
            while pos < end and not self.app.stopping.is_set():
                n = min(1 << 16 if chunk_delay and pos >= slow_after else 1 << 20, end - pos)
                self.wfile.write(body_slice(body, pos, pos + n))
                pos += n
                if chunk_delay and pos >= slow_after:
                    time.sleep(chunk_delay)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
