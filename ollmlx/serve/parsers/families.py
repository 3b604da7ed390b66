"""Tool-call parsers for models rendered with their own (Jinja) chat template, one per output
format family, picked from the template's text (`tool_family`):

- hermes:  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Qwen 2.5/3, Hermes, SmolLM3;
           Qwen3-Coder's `<function=name><parameter=p>v</parameter></function>` body too)
- mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}]` and `[TOOL_CALLS]name[ARGS]{...}`
- llama3:  `{"name": ..., "parameters": {...}}` at the start of the output or after
           `<|python_tag|>`, several separated by `;`
- json:    anything else: Ollama's generic parser with the `{` tag (template_tools.py)

As Ollama's builtin parsers do, content before a call passes through at once (whitespace right
before a tag is dropped), a partial tag is held back, and a call is sent whole once its text
closes. Text that looks like a call but does not parse is given back as content.
"""

from __future__ import annotations

import re
from enum import Enum, auto
from typing import Any

from ollmlx.serve.parsers.common import arguments_of, json_value_end, loads_object, overlap, tool_call

HERMES, MISTRAL, LLAMA3, JSON = "hermes", "mistral", "llama3", "json"


def tool_family(chat_template: str) -> str:
    if "[TOOL_CALLS]" in chat_template:
        return MISTRAL
    if "<tool_call>" in chat_template:
        return HERMES
    if "<|python_tag|>" in chat_template or ("<|start_header_id|>" in chat_template and "parameters" in chat_template):
        return LLAMA3
    return JSON


class _State(Enum):
    CONTENT = auto()
    CALL = auto()


_OPEN_TAGS = {HERMES: ("<tool_call>",), MISTRAL: ("[TOOL_CALLS]",), LLAMA3: ("<|python_tag|>",)}
_XML_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|$)", re.S)
_XML_PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|$)", re.S)


class FamilyToolParser:
    def __init__(self, family: str, tools: list[dict[str, Any]]) -> None:
        if family not in _OPEN_TAGS:
            raise ValueError(f"no tool-call parser for family {family!r}")
        self.family = family
        self.open_tags = _OPEN_TAGS[family]
        self._schemas = {str((t.get("function") or {}).get("name")): (t.get("function") or {}).get("parameters") or {}
                         for t in tools if isinstance(t, dict)}
        self._state = _State.CONTENT
        self._buffer = ""
        self._tag = ""  # the tag that opened the current call section
        self._n = 0
        self._seen_text = False  # llama3: a bare `{` only opens calls at the start of the output
        self._eat_space = False  # whitespace right after a call is dropped, however it is split

    def add(self, text: str) -> tuple[list[dict[str, Any]], str]:
        self._buffer += text
        calls: list[dict[str, Any]] = []
        content: list[str] = []
        while self._step(calls, content, final=False):
            pass
        return calls, "".join(content)

    def finish(self) -> tuple[list[dict[str, Any]], str]:
        """The output ended: parse an unterminated call, or give its text back, and flush."""
        calls: list[dict[str, Any]] = []
        content: list[str] = []
        while self._step(calls, content, final=True):
            pass
        if self._buffer:
            content.append(self._tag + self._buffer if self._state is _State.CALL else self._buffer)
        self._buffer, self._state = "", _State.CONTENT
        return calls, "".join(content)

    # -- state machine -----------------------------------------------------------------------
    def _step(self, calls: list[dict[str, Any]], content: list[str], *, final: bool) -> bool:
        """One transition; True when another may follow at once."""
        if self._state is _State.CONTENT:
            return self._content(content, final)
        if self.family == HERMES:
            return self._hermes_call(calls, content, final)
        if self.family == MISTRAL:
            return self._mistral_call(calls, content, final)
        return self._llama3_call(calls, content, final)

    def _content(self, content: list[str], final: bool) -> bool:
        if self._eat_space:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return False
            self._eat_space = False
        buf = self._buffer
        if self.family == LLAMA3 and not self._seen_text:
            stripped = buf.lstrip()
            if not stripped:
                return False
            if stripped.startswith("{"):
                self._buffer, self._tag, self._state = stripped, "", _State.CALL
                return True
        hits = [(buf.find(t), t) for t in self.open_tags if t in buf]
        if hits:
            i, tag = min(hits)
            before = buf[:i].rstrip()
            if before:
                content.append(before)
            self._seen_text = self._seen_text or bool(before)
            self._buffer, self._tag, self._state = buf[i + len(tag):], tag, _State.CALL
            return True
        if final:
            return False
        held = max((overlap(buf, t) for t in self.open_tags), default=0)
        keep_from = len(buf) - held
        keep_from = len(buf[:keep_from].rstrip())  # whitespace that may precede a tag waits too
        if keep_from > 0:
            content.append(buf[:keep_from])
            self._seen_text = True
        self._buffer = buf[keep_from:]
        return False

    def _emit(self, calls: list[dict[str, Any]], name: Any, args: Any) -> bool:
        arguments = arguments_of(args) if args is not None else {}
        if not isinstance(name, str) or not name or arguments is None:
            return False
        calls.append(tool_call(name, arguments, self._n))
        self._n += 1
        return True

    def _give_back(self, content: list[str], raw: str) -> None:
        content.append(raw)
        self._seen_text = True

    def _hermes_call(self, calls: list[dict[str, Any]], content: list[str], final: bool) -> bool:
        close = "</tool_call>"
        i = self._buffer.find(close)
        if i == -1 and not final:
            return False
        body = self._buffer if i == -1 else self._buffer[:i]
        raw = self._tag + (self._buffer if i == -1 else self._buffer[: i + len(close)])
        if not self._parse_hermes_body(body.strip(), calls):
            self._give_back(content, raw)
        self._buffer = "" if i == -1 else self._buffer[i + len(close):]
        self._state, self._eat_space = _State.CONTENT, True
        return True

    def _parse_hermes_body(self, body: str, calls: list[dict[str, Any]]) -> bool:
        obj = loads_object(body)
        if isinstance(obj, dict):
            return self._emit(calls, obj.get("name"), obj.get("arguments", obj.get("parameters")))
        functions = _XML_FUNCTION.findall(body)
        if not functions:
            return False
        for name, params in functions:
            name = name.strip()
            args = {k.strip(): self._xml_value(name, k.strip(), v) for k, v in _XML_PARAMETER.findall(params)}
            self._emit(calls, name, args)
        return True

    def _xml_value(self, tool: str, param: str, raw: str) -> Any:
        """Qwen3-Coder writes values bare: strings stay strings, other schema types are decoded."""
        prop = ((self._schemas.get(tool) or {}).get("properties") or {}).get(param) or {}
        types = prop.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        if types and all(t == "string" for t in types):
            return raw
        decoded = loads_object(raw)
        return raw if decoded is None and raw != "null" else decoded

    def _mistral_call(self, calls: list[dict[str, Any]], content: list[str], final: bool) -> bool:
        buf = self._buffer.lstrip()
        if not buf:
            return False
        if buf[0] in "[{":
            end = json_value_end(buf, 0)
            if end is None:
                if final:
                    self._give_back(content, self._tag + self._buffer)
                    self._buffer, self._state = "", _State.CONTENT
                return False
            value = loads_object(buf[:end])
            items = value if isinstance(value, list) else [value]
            ok = bool(items) and all(isinstance(it, dict) for it in items)
            if ok:
                for it in items:
                    ok = self._emit(calls, it.get("name"), it.get("arguments", it.get("parameters"))) and ok
            if not ok:
                self._give_back(content, self._tag + buf[:end])
            self._buffer, self._state, self._eat_space = buf[end:], _State.CONTENT, True
            return True
        # v11+ tokenizers: name[ARGS]{...} (a [CALL_ID]... part may sit between)
        marker = buf.find("[ARGS]")
        brace = buf.find("{", marker) if marker != -1 else -1
        end = json_value_end(buf, brace) if brace != -1 else None
        if end is None:
            if final:
                self._give_back(content, self._tag + self._buffer)
                self._buffer, self._state = "", _State.CONTENT
            return False
        name = buf[:marker].split("[", 1)[0].strip()
        if not self._emit(calls, name, loads_object(buf[brace:end])):
            self._give_back(content, self._tag + buf[:end])
        self._buffer, self._state, self._eat_space = buf[end:], _State.CONTENT, True
        return True

    def _llama3_call(self, calls: list[dict[str, Any]], content: list[str], final: bool) -> bool:
        buf = self._buffer.lstrip().lstrip(";").lstrip()
        if not buf:
            self._buffer = ""
            return False
        if buf[0] != "{":  # the calls are over; what follows is content
            self._buffer, self._state, self._seen_text = buf, _State.CONTENT, True
            return True
        end = json_value_end(buf, 0)
        if end is None:
            self._buffer = buf
            if final:
                self._give_back(content, self._tag + buf)
                self._buffer, self._state = "", _State.CONTENT
            return False
        obj = loads_object(buf[:end])
        ok = isinstance(obj, dict) and self._emit(calls, obj.get("name"), obj.get("parameters", obj.get("arguments")))
        if not ok:
            self._give_back(content, self._tag + buf[:end])
        self._buffer = buf[end:]
        self._tag = ""
        return True
