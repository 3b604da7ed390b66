"""Tool-call parser for the Go-template path, with Ollama's semantics (tools/tools.go).

The tag is what the template prints first inside `{{ if .ToolCalls }}` (`tool_call_tag`), or `{`
when it prints none. Text before the tag is content; from the tag on, text is buffered and every
tool the request offered that is named there is parsed with the first JSON object that looks like
its arguments. With `{` or `[` as the tag, calls are only looked for when the output starts with it
(after whitespace); otherwise everything is content, and unparsed JSON is given back at the end.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Any

from ollmlx.serve.parsers.common import arguments_of, loads_object, overlap, tool_call


class _State(Enum):
    LOOKING_FOR_TAG = auto()
    TOOL_CALLING = auto()
    DONE = auto()


def _tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [str(((t or {}).get("function") or {}).get("name") or "") for t in tools]


class TemplateToolParser:
    def __init__(self, tag: str, tools: list[dict[str, Any]]) -> None:
        self.tag = tag
        self.names = [n for n in _tool_names(tools) if n]
        self._state = _State.LOOKING_FOR_TAG
        self._buffer = ""
        self._n = 0

    @property
    def calls_found(self) -> int:
        return self._n

    def add(self, s: str) -> tuple[list[dict[str, Any]], str]:
        """Feed content; returns (tool calls parsed, content to send now)."""
        if self._state is _State.DONE:
            return [], s
        self._buffer += s
        content = ""
        if self._state is _State.LOOKING_FOR_TAG:
            i, found = self._find_tag()
            if i == -1:
                content, self._buffer = self._buffer, ""
            else:
                content, self._buffer = self._buffer[:i], self._buffer[i:]
            if self.tag in ("{", "[") and content.strip():
                # a bare-JSON tag only counts when the output starts with it
                self._state = _State.DONE
                out, self._buffer = content + self._buffer, ""
                return [], out
            if not found:
                return [], content
            self._state = _State.TOOL_CALLING
        calls: list[dict[str, Any]] = []
        while (call := self._parse_call()) is not None:
            calls.append(call)
        if self._closed():
            self._state = _State.DONE
            content, self._buffer = self._buffer, ""
        return calls, content

    def content(self) -> str:
        """What is left to send when the output ends: unparsed bare JSON, else nothing."""
        if self._n > 0:
            return ""
        if self.tag in ("{", "["):
            return self._buffer
        return ""

    # -- internals -------------------------------------------------------------------------
    def _find_tag(self) -> tuple[int, bool]:
        i = self._buffer.find(self.tag)
        if i > -1:
            return i, True
        n = overlap(self._buffer, self.tag)
        return (len(self._buffer) - n, False) if n else (-1, False)

    def _find_tool(self) -> tuple[str | None, int]:
        """The tool named earliest in the buffer (the longest name at the same place), and where
        its name ends; none while the buffer ends with a prefix of a longer name."""
        buf = self._buffer
        if not buf:
            return None, 0
        longest = max((len(n) for n in self.names), default=0)
        for i in range(1, min(len(buf), longest) + 1):
            tail = buf[len(buf) - i:]
            if any(len(tail) < len(n) and n.startswith(tail) for n in self.names):
                return None, 0
        found: str | None = None
        start = -1
        for name in self.names:
            pos = buf.find(name)
            if pos == -1:
                continue
            if found is not None and (pos > start or (pos == start and len(name) <= len(found))):
                continue
            found, start = name, pos
        return (found, start + len(found)) if found is not None else (None, 0)

    def _find_arguments(self, tool: str) -> tuple[dict[str, Any] | None, int]:
        """The first balanced JSON object that holds the arguments (under "arguments" or
        "parameters" next to a "name", or under the tool's own name), or the object itself."""
        buf = self._buffer
        start = -1
        braces = 0
        in_string = escaped = False
        for i, c in enumerate(buf):
            if escaped:
                escaped = False
                continue
            if c == "\\":
                escaped = True
                continue
            if c == '"':
                in_string = not in_string
                continue
            if in_string:
                continue
            if c == "{":
                if braces == 0:
                    start = i
                braces += 1
            elif c == "}":
                braces -= 1
                if braces == 0 and start != -1:
                    data = loads_object(buf[start: i + 1])
                    if not isinstance(data, dict):
                        start = -1
                        continue
                    found, args = _find_object(data, tool)
                    return (args if found else data), i
                braces = max(braces, 0)
        return None, 0

    def _parse_call(self) -> dict[str, Any] | None:
        name, end = self._find_tool()
        if name is None:
            return None
        args, i = self._find_arguments(name)
        if args is None:
            return None
        call = tool_call(name, args, self._n)
        self._n += 1
        self._buffer = self._buffer[max(end, i):]
        return call

    def _closed(self) -> bool:
        """With a `{`/`[` tag the calls end when the outer JSON value closes."""
        pairs = {"{": ("{", "}"), "[": ("[", "]")}
        if self.tag not in pairs:
            return False
        opener, closer = pairs[self.tag]
        count = 0
        in_string = escaped = False
        for c in self._buffer:
            if escaped:
                escaped = False
                continue
            if c == "\\":
                escaped = True
                continue
            if c == '"':
                in_string = not in_string
                continue
            if in_string:
                continue
            if c == opener:
                count += 1
            elif c == closer:
                count -= 1
                if count == 0:
                    return True
        return False


def _find_object(obj: dict[str, Any], tool: str) -> tuple[bool, dict[str, Any] | None]:
    """(found, arguments) inside a decoded object, searched depth first as Ollama does."""
    if "name" in obj:
        for key in ("arguments", "parameters"):
            args = arguments_of(obj.get(key))
            if args is not None:
                return True, args
        return True, None
    args = arguments_of(obj.get(tool))
    if args is not None:
        return True, args
    for v in obj.values():
        children = [v] if isinstance(v, dict) else [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []
        for child in children:
            found, result = _find_object(child, tool)
            if found:
                return True, result
    return False, None
