"""`ollmlx pull` / `ollmlx push`, and the drawing of a server's status stream (pull, push, create)
as Ollama's PullHandler, PushHandler and CreateHandler draw it (spec §6, §23)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Literal

from ollmlx.cli.client import APIError, Client
from ollmlx.cli.progress import Bar, Progress, Spinner
from ollmlx.store.names import parse_name

Kind = Literal["pull", "push", "create"]


class StatusStream:
    """One spinner per distinct status without a digest; one bar per digest."""

    def __init__(self, progress: Progress, kind: Kind) -> None:
        self.progress = progress
        self.kind = kind
        self.bars: dict[str, Bar] = {}
        self.status: str | None = None
        self.spinner: Spinner | None = None

    def update(self, resp: dict[str, Any]) -> None:
        digest = str(resp.get("digest") or "")
        status = str(resp.get("status") or "")
        total, completed = int(resp.get("total") or 0), int(resp.get("completed") or 0)
        if digest:
            if self.kind == "pull" and completed == 0:
                return  # the first event of a layer only announces its size
            if self.kind != "create" and self.spinner is not None:
                self.spinner.stop()
            bar = self.bars.get(digest)
            if bar is None:
                bar = Bar(self._bar_message(digest, status), total, completed)
                self.bars[digest] = bar
                self.progress.add(bar)
            bar.set(completed)
        elif status != self.status:
            if self.spinner is not None:
                self.spinner.stop()
            self.status = status
            self.spinner = Spinner(status)
            self.progress.add(self.spinner)

    def _bar_message(self, digest: str, status: str) -> str:
        if self.kind == "pull":
            name = digest.removeprefix("sha256:").strip()
            if digest.startswith("sha256:"):
                name = name[:12]
            return f"pulling {name}:"
        if status:
            return status
        verb = "pushing" if self.kind == "push" else "pulling"
        return f"{verb} {digest[7:19]}..."

    def consume(self, stream: Iterable[dict[str, Any]]) -> None:
        for resp in stream:
            self.update(resp)


def pull(client: Client, name: str, insecure: bool = False) -> None:
    progress = Progress()
    try:
        StatusStream(progress, "pull").consume(
            client.stream("/api/pull", {"model": name, "insecure": insecure}))
    finally:
        progress.stop()


def push_destination(name: str) -> str:
    n = parse_name(name)
    host = n.host.lower()
    if host.endswith((".ollama.ai", ".ollama.com")):
        return "https://ollama.com/" + n.display_shortest().removesuffix(":latest")
    return str(n)


def push(client: Client, name: str, insecure: bool = False) -> None:
    progress = Progress()
    try:
        StatusStream(progress, "push").consume(
            client.stream("/api/push", {"model": name, "insecure": insecure}))
    except APIError as exc:
        low = exc.message.lower()
        if "access denied" in low or "unauthorized" in low:
            raise APIError(exc.status, "you are not authorized to push to this namespace, "
                                       "create the model under a namespace you own") from exc
        raise
    finally:
        progress.stop()
    sys.stdout.write(f"\nYou can find your model at:\n\n\t{push_destination(name)}\n")
    sys.stdout.flush()
