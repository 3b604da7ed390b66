"""`--markdown`: answers rendered as Markdown with rich (headings, lists, code blocks), redrawn in
place as the answer streams. Thinking is printed as plain text before it."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from ollmlx.cli.display import thinking_close, thinking_open


class MarkdownPrinter:
    def __init__(self, out: TextIO, hide_thinking: bool = False) -> None:
        self.out = out
        self.hide_thinking = hide_thinking
        self.console = Console(file=out)
        self.live: Live | None = None
        self.thinking: list[str] = []
        self.content: list[str] = []
        self.think_open = False

    def feed(self, content: str, thinking: str = "", tool_calls: Any = None) -> None:
        if thinking and not self.hide_thinking:
            if not self.think_open:
                self.out.write(thinking_open(not self.console.is_terminal))
                self.think_open = True
            self.thinking.append(thinking)
            self.out.write(thinking)
            self.out.flush()
        if not content:
            return
        if self.think_open:
            if not "".join(self.thinking).endswith("\n"):
                self.out.write("\n")
            self.out.write(thinking_close(not self.console.is_terminal))
            self.think_open = False
        self.content.append(content)
        if not self.console.is_terminal:
            return  # rendered once, at the end
        if self.live is None:
            self.live = Live(console=self.console, auto_refresh=False, vertical_overflow="visible")
            self.live.start()
        self.live.update(Markdown(self.text), refresh=True)

    def finish(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        elif self.content:
            self.console.print(Markdown(self.text))

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def thinking_text(self) -> str:
        return "".join(self.thinking)
