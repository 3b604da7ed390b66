"""Small pieces the output parsers share: tag overlap, balanced-JSON scanning, tool-call objects."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

_ID_ALPHABET = string.ascii_lowercase + string.digits


def call_id() -> str:
    """Ollama's toolCallId(): `call_` + 8 random [a-z0-9]."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def tool_call(name: str, arguments: dict[str, Any], index: int) -> dict[str, Any]:
    """A tool call in Ollama's JSON shape (api.ToolCall); `index` is always serialised."""
    return {"function": {"index": index, "name": name, "arguments": arguments}}


def overlap(s: str, tag: str) -> int:
    """Length of the longest suffix of `s` that is a prefix of `tag` (a tag maybe starting)."""
    for i in range(min(len(tag), len(s)), 0, -1):
        if s.endswith(tag[:i]):
            return i
    return 0


def json_value_end(s: str, start: int) -> int | None:
    """Index just past the JSON object/array opening at s[start], or None while it is incomplete.
    Strings and escapes are respected so braces inside strings do not count."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(s)):
        c = s[i]
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = in_string
        elif c == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def loads_object(text: str) -> Any:
    """json.loads that returns None for invalid JSON instead of raising."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def arguments_of(value: Any) -> dict[str, Any] | None:
    """Tool-call arguments as an object: an object as is, a JSON string holding an object decoded."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        decoded = loads_object(value)
        if isinstance(decoded, dict):
            return decoded
    return None
