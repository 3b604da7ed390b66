"""Request decoding with Go encoding/json's error texts, and Ollama's timestamp formats."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, TypeVar

from pydantic import ValidationError

from ollmlx.api.schemas import GoModel
from ollmlx.errors import BadRequest

T = TypeVar("T", bound=GoModel)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def go_syntax_error(body: str, exc: json.JSONDecodeError) -> str:
    """Approximate Go's *json.SyntaxError text from where Python's decoder stopped."""
    pos = exc.pos
    rest = body[pos:].lstrip()
    if not rest or (exc.msg.startswith(("Unterminated string", "Expecting value: line")) and not rest):
        return "unexpected end of JSON input"
    ch = rest[0]
    shown = "'\\''" if ch == "'" else f"'{ch}'"
    if exc.msg.startswith("Expecting value"):
        return f"invalid character {shown} looking for beginning of value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {shown} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {shown} after object key"
    if exc.msg.startswith("Expecting ',' delimiter"):
        where = "object key:value pair" if body[:pos].rstrip().rfind("{") > body[:pos].rstrip().rfind("[") else "array element"
        return f"invalid character {shown} after {where}"
    if exc.msg.startswith("Extra data"):
        return f"invalid character {shown} after top-level value"
    if exc.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    if exc.msg.startswith("Invalid control character"):
        return "invalid character " + repr(ch) + " in string literal"
    return f"invalid character {shown} looking for beginning of value"


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("missing request body")
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if not text[exc.pos:].strip():
            raise BadRequest("unexpected EOF") from exc
        raise BadRequest(go_syntax_error(text, exc)) from exc


def decode(body: bytes, model: type[T]) -> T:
    data = parse_json(body)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_type(data)} into Go value of type api.{model.GO_NAME}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        field = loc[0] if loc else ""
        value: Any = data
        for part in loc:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
        go_type = model.GO_TYPES.get(field, "string")
        path = ".".join(p for p in loc if not p.isdigit())
        raise BadRequest(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {model.GO_NAME}.{path} of type "
            f"{go_type if len(loc) == 1 else 'string'}"
        ) from exc


def rfc3339nano(ts_ns: int | None = None, utc: bool = True) -> str:
    """Go's time.RFC3339Nano: fractional seconds with trailing zeros trimmed."""
    ns = time.time_ns() if ts_ns is None else ts_ns
    secs, frac = divmod(ns, 1_000_000_000)
    if utc:
        dt = datetime.datetime.fromtimestamp(secs, tz=datetime.UTC)
        suffix = "Z"
    else:
        dt = datetime.datetime.fromtimestamp(secs).astimezone()
        off = dt.strftime("%z")
        suffix = f"{off[:3]}:{off[3:]}" if off else "Z"
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    f = f"{frac:09d}".rstrip("0")
    return base + (f".{f}" if f else "") + suffix


def local_time(ts: float) -> str:
    return rfc3339nano(int(ts * 1e9), utc=False)
