"""Printing a streamed answer like Ollama's cmd.displayResponse: word wrap at the terminal width
(a word that would cross `width - 5` is erased with `ESC[nD ESC[K` and moved to a new line), and
the thinking block between "Thinking..." and "...done thinking."."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from ollmlx.cli.humanize import char_width, display_width

COLOR_GREY = "\x1b[90m"
COLOR_BOLD = "\x1b[1m"
COLOR_DEFAULT = "\x1b[0m"


def terminal_width(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        import os

        return os.get_terminal_size(out.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size((80, 24)).columns or 80


class WordWrap:
    """The state of displayResponse between chunks: the current line's width and the word being
    written. `feed` returns what to write for one chunk."""

    def __init__(self, width: int, enabled: bool = True) -> None:
        self.width = width
        self.enabled = enabled
        self.line_length = 0
        self.word = ""

    def feed(self, content: str) -> str:
        if not (self.enabled and self.width >= 10):
            plain, self.word = self.word + content, ""
            return plain
        out: list[str] = []
        for ch in content:
            if self.line_length + 1 > self.width - 5:
                if display_width(self.word) > self.width - 10:
                    # A word too long to move is broken where it is. (Ollama writes the word a
                    # second time here and leaves the break to the terminal; we break the line.)
                    out.append("\n" + ch)
                    self.word, self.line_length = ch, char_width(ch)
                    continue
                back = display_width(self.word)
                if back > 0:
                    out.append(f"\x1b[{back}D")
                out.append("\x1b[K\n")
                out.append(self.word + ch)
                self.line_length = display_width(self.word) + char_width(ch)
            else:
                out.append(ch)
                self.line_length += char_width(ch)
                if char_width(ch) >= 2:
                    self.word = ""
                    continue
                if ch in " \t":
                    self.word = ""
                elif ch in "\n\r":
                    self.line_length, self.word = 0, ""
                else:
                    self.word += ch
        return "".join(out)


def thinking_open(plain: bool) -> str:
    text = "Thinking...\n"
    return text if plain else COLOR_GREY + COLOR_BOLD + text + COLOR_DEFAULT + COLOR_GREY


def thinking_close(plain: bool) -> str:
    text = "...done thinking.\n\n"
    return text if plain else COLOR_GREY + COLOR_BOLD + text + COLOR_DEFAULT


class ResponsePrinter:
    """Writes one streamed response: thinking (unless hidden), then content, word-wrapped."""

    def __init__(self, out: TextIO, wrap: bool, hide_thinking: bool = False, plain: bool = False,
                 width: int | None = None) -> None:
        self.out = out
        self.hide_thinking = hide_thinking
        self.plain = plain
        self.wrap_enabled = wrap
        self.width = width or terminal_width(out)
        self.state = WordWrap(self.width, wrap)
        self.thinking: list[str] = []
        self.content: list[str] = []
        self.think_open = False
        self.think_closed = False

    def _write(self, s: str) -> None:
        if s:
            self.out.write(s)
            self.out.flush()

    def feed(self, content: str, thinking: str = "", tool_calls: list[dict] | None = None) -> None:
        if thinking and not self.hide_thinking:
            if not self.think_open:
                self._write(thinking_open(self.plain))
                self.think_open, self.think_closed = True, False
            self.thinking.append(thinking)
            self._write(self.state.feed(thinking))
        if self.think_open and not self.think_closed and (content or tool_calls):
            if not "".join(self.thinking).endswith("\n"):
                self._write("\n")
            self._write(thinking_close(self.plain))
            self.think_open, self.think_closed = False, True
            self.state = WordWrap(self.width, self.wrap_enabled)
        self.content.append(content)
        self._write(self.state.feed(content))
        if tool_calls:
            self._write(render_tool_calls(tool_calls, self.plain))

    def finish(self) -> None:
        """Nothing is held back: every chunk was written as it came."""

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def thinking_text(self) -> str:
        return "".join(self.thinking)


def render_tool_calls(calls: list[dict], plain: bool) -> str:
    """cmd.renderToolCalls: the CLI registers no tools, so every call is reported as unexpected."""
    import json

    explain = "" if plain else COLOR_GREY + COLOR_BOLD
    values = "" if plain else COLOR_DEFAULT
    parts = []
    for call in calls:
        fn = call.get("function") or {}
        args = json.dumps(fn.get("arguments") or {}, separators=(",", ":"), ensure_ascii=False)
        parts.append(f"  Model called a non-existent function '{values}{fn.get('name', '')}{explain}()' "
                     f"with arguments: {values}{args}{explain}")
    return explain + "\n".join(parts) + ("" if plain else COLOR_DEFAULT)
