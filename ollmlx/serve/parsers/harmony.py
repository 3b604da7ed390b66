"""gpt-oss's harmony format (spec §9, §11; Ollama's harmony parser): the model writes messages
`<|start|>assistant<|channel|>analysis<|message|>…<|end|>`, and Ollama maps them:

- the `analysis` channel is thinking; `final`, and `commentary` without a recipient, are content;
- a message with a recipient (`to=functions.get_weather`) is a tool call whose body is the JSON
  arguments, read once the output is done (a call always ends the model's turn: `<|call|>`);
- tool names go to the model as TypeScript-like identifiers (`get-weather` → `get_weather`) and
  come back as the caller spelled them.

Ollama uses it for the gpt-oss family when the Go template writes `<|start|>` and `<|end|>`, or
for a model whose PARSER is `harmony`. The generation prompt ends in `<|start|>assistant`, so the
output starts inside a message header.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ollmlx.errors import OllmlxError
from ollmlx.serve.parsers.common import overlap, tool_call
from ollmlx.serve.parsers.pipeline import Delta, OutputParser, _with_ids

log = logging.getLogger("ollmlx.serve")

START, END, MESSAGE = "<|start|>", "<|end|>", "<|message|>"
BUILTIN_TOOLS = {"browser.open", "browser.search", "browser.find", "python"}
FINAL = START + "assistant<|channel|>final" + MESSAGE


def uses_harmony(config: dict[str, Any], go_template: str | None) -> bool:
    """Ollama's shouldUseHarmony, or a PARSER that names it."""
    if config.get("parser") == "harmony":
        return True
    family = str(config.get("model_family", ""))
    return family in ("gptoss", "gpt-oss") and go_template is not None and START in go_template and END in go_template


class FunctionNames:
    """The caller's tool names and the identifiers the model sees, both ways (per request)."""

    def __init__(self) -> None:
        self.to_model: dict[str, str] = {}
        self.to_caller: dict[str, str] = {}

    @staticmethod
    def _identifier(name: str) -> str:
        out = "".join("_" if c in " -." else c for c in name if c in " -._$" or c.isalpha() or c.isdecimal())
        if not out:
            return "unnamed"
        return "_" + out if out[0].isdecimal() else out

    def add(self, name: str) -> str:
        base = name if name in BUILTIN_TOOLS else self._identifier(name)
        candidate, n = base, 2
        while name not in BUILTIN_TOOLS and candidate in self.to_caller:
            candidate, n = f"{base}_{n}", n + 1
        self.to_model[name], self.to_caller[candidate] = candidate, name
        return candidate

    def caller(self, model_name: str) -> str:
        return self.to_caller.get(model_name, model_name)

    def tools(self, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """The request's tools as the prompt shows them to the model."""
        if not tools:
            return tools
        out = []
        for tool in tools:
            fn = tool.get("function") or {}
            name = fn.get("name")
            out.append({**tool, "function": {**fn, "name": self.add(name)}} if name else tool)
        return out


def _header(raw: str) -> tuple[str, str, str]:
    """(role, channel, recipient) of a message header such as
    `assistant<|channel|>commentary to=functions.f <|constrain|>json`."""
    raw = raw.replace("<|constrain|>", " <|constrain|>", 1).strip()
    channel = ""
    if "<|channel|>" in raw:
        before, after = raw.split("<|channel|>", 1)
        parts = after.split(maxsplit=1)
        channel = parts[0] if parts else ""
        raw = (before + (" " + parts[1] if len(parts) > 1 else "")).strip()
    words = raw.split()
    if not words:
        return "", channel, ""
    role, recipient = words[0], ""
    if role.startswith("to="):
        role, recipient = "tool", role[3:]
    elif len(words) > 1 and words[1].startswith("to="):
        recipient = words[1][3:]
    return role, channel, recipient


class HarmonyParser(OutputParser):
    """Streams harmony output into content, thinking and (at the end) one tool call."""

    def __init__(self, names: FunctionNames, prefill: str = START + "assistant") -> None:
        super().__init__()
        self.names = names
        self.acc = prefill
        self.state = "start"  # start → header → body → start …
        self.mode = "content"  # where body text goes: content, thinking or tool
        self.tool: str | None = None
        self.arguments = ""

    def feed(self, text: str, done: bool = False) -> Delta:
        self.acc += text
        content: list[str] = []
        thinking: list[str] = []
        while self._step(content, thinking):
            pass
        calls = self._finish() if done else []
        out_content, out_thinking = "".join(content), "".join(thinking)
        return Delta(out_content, out_thinking, _with_ids(calls),
                     hold=not (out_content or out_thinking or calls or done))

    def _emit(self, text: str, content: list[str], thinking: list[str]) -> None:
        if not text:
            return
        if self.mode == "thinking":
            thinking.append(text)
        elif self.mode == "tool":
            self.arguments += text
        else:
            content.append(text)

    def _step(self, content: list[str], thinking: list[str]) -> bool:
        """One state transition; False when more output is needed."""
        if self.state == "start":
            if START not in self.acc:
                return False
            before, self.acc = self.acc.split(START, 1)
            if before.strip():
                log.warning("harmony: text outside a message: %r", before[:200])
            self.state = "header"
            return True
        if self.state == "header":
            if MESSAGE not in self.acc:
                return False
            header, self.acc = self.acc.split(MESSAGE, 1)
            _, channel, recipient = _header(header)
            if recipient and channel in ("analysis", "commentary"):
                self.mode, self.tool, self.arguments = "tool", recipient, ""
            elif channel == "analysis":
                self.mode = "thinking"
            elif channel in ("commentary", "final"):
                self.mode = "content"
            self.state = "body"
            return True
        if END in self.acc:
            body, self.acc = self.acc.split(END, 1)
            self._emit(body, content, thinking)
            self.state, self.mode = "start", "content"
            return True
        keep = overlap(self.acc, END)
        body, self.acc = self.acc[: len(self.acc) - keep], self.acc[len(self.acc) - keep:]
        self._emit(body, content, thinking)
        return False

    def _finish(self) -> list[dict[str, Any]]:
        if self.tool is None:
            return []
        raw, name = self.arguments, self.names.caller(self.tool.removeprefix("functions."))
        self.tool, self.arguments = None, ""
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            raise OllmlxError(f"error parsing tool call: raw='{raw}', err={exc}") from exc
        return [tool_call(name, arguments if isinstance(arguments, dict) else {}, 0)]


def prefill_for(messages: list[dict[str, Any]]) -> str:
    """Where the output starts: a trailing assistant message is continued (AddImplicitStartOrPrefill)."""
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant":
        if last.get("content"):
            return FINAL
        if last.get("thinking"):
            return START + "assistant<|channel|>analysis" + MESSAGE
    return START + "assistant"
