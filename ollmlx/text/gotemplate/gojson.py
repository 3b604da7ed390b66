"""Go's encoding/json Marshal (compact, HTML-escaped) for the engine's value model."""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from . import values as V
from .strconv import format_float

_MAX_DEPTH = 200


class JSONError(Exception):
    """json.Marshal failed (Go returns an error and no bytes)."""


def _escape_char(c: str) -> str:
    r = ord(c)
    if c in '"\\':
        return "\\" + c
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
    if c in special:
        return special[c]
    if r < 0x20 or c in "<>&":
        return f"\\u00{r:02x}"
    if r in (0x2028, 0x2029):
        return f"\\u{r:04x}"
    if 0xD800 <= r <= 0xDFFF:  # invalid UTF-8 byte (or stray surrogate)
        return "\\ufffd"
    return c


def _needs_escape(c: str) -> bool:
    r = ord(c)
    return r < 0x20 or c in '"\\<>&' or r in (0x2028, 0x2029) or 0xD800 <= r <= 0xDFFF


def encode_string(s: str) -> str:
    if not any(_needs_escape(c) for c in s):
        return '"' + s + '"'
    return '"' + "".join(_escape_char(c) for c in s) + '"'


def encode_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise JSONError("json: unsupported value: " + format_float(f, "g", -1))
    a = abs(f)
    fmt = "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f"
    s = format_float(f, fmt, -1)
    if fmt == "e" and len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
        s = s[:-2] + s[-1]
    return s


def _html_escape_raw(s: str) -> str:
    if not any(c in "<>&\u2028\u2029" for c in s):
        return s
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _json_tag(f: dataclasses.Field[Any]) -> tuple[str, bool] | None:
    tag = f.metadata.get("json")
    if tag is None:
        return f.name, False
    name, _, opts = str(tag).partition(",")
    if name == "-" and not opts:
        return None
    return (name or f.name), "omitempty" in opts.split(",")


def _is_empty(v: Any) -> bool:
    if v is None or v is V.NO_VALUE or isinstance(v, V.NilPointer):
        return True
    if isinstance(v, bool):
        return not v
    if isinstance(v, int | float | complex):
        return v == 0
    if isinstance(v, str | bytes | bytearray | list | tuple | Mapping):
        return len(v) == 0
    return False


def object_from_pairs(pairs: Iterable[tuple[str, Any]], depth: int = 0) -> str:
    """A JSON object from ordered (key, value) pairs (a Go struct or an ordered map)."""
    return "{" + ",".join(encode_string(k) + ":" + _marshal(v, depth + 1) for k, v in pairs) + "}"


def struct_pairs(v: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        out = []
        for f in dataclasses.fields(v):
            tag = _json_tag(f)
            if tag is None:
                continue
            val = getattr(v, f.name)
            if tag[1] and _is_empty(val):
                continue
            out.append((tag[0], val))
        return out
    return V.struct_fields(v)


def _marshal(v: Any, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise JSONError("json: unsupported value: encountered a cycle")
    go_json = getattr(v, "__go_json__", None)
    if go_json is not None:
        return _html_escape_raw(go_json())
    k = V.kind(v)
    if k in (V.INVALID, V.NIL, V.PTR) or isinstance(v, V.NilSlice | V.NilMap):
        return "null"
    if k == V.BOOL:
        return "true" if v else "false"
    if k == V.INT:
        return str(v)
    if k == V.FLOAT:
        return encode_float(v)
    if k == V.STRING:
        return encode_string(v)
    if k == V.SLICE:
        if isinstance(v, bytes | bytearray):
            return '"' + base64.b64encode(bytes(v)).decode("ascii") + '"'
        return "[" + ",".join(_marshal(x, depth + 1) for x in v) + "]"
    if k == V.MAP:
        items = []
        for key, val in v.items():
            if isinstance(key, str):
                ks = key
            elif isinstance(key, int) and not isinstance(key, bool):
                ks = str(key)
            else:
                raise JSONError("json: unsupported type: " + V.type_name(v))
            items.append((ks, val))
        items.sort(key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))
        return object_from_pairs(items, depth)
    if k in (V.FUNC, V.COMPLEX):
        raise JSONError("json: unsupported type: " + V.type_name(v))
    return object_from_pairs(struct_pairs(v), depth)


def marshal(v: Any) -> str:
    """json.Marshal(v) as text; raises JSONError where Go returns an error."""
    try:
        return _marshal(v, 0)
    except RecursionError:
        raise JSONError("json: unsupported value: encountered a cycle") from None
