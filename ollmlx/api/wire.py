"""Request decoding with Go encoding/json's rules and error texts (gojson.py), and Ollama's
timestamp formats."""

from __future__ import annotations

import datetime
import time
from typing import Any, TypeVar

from pydantic import ValidationError

from ollmlx.api.gojson import (
    EmptyBody,
    GoDecodeError,
    GoSyntaxError,
    StructType,
    decode_body,
    json_kind,
    parse_value,
    plain,
    scan,
)
from ollmlx.api.schemas import GoModel
from ollmlx.errors import BadRequest

T = TypeVar("T", bound=GoModel)


def parse_json(body: bytes) -> Any:
    """The first JSON value of a body, with Go's syntax errors (json.Decoder semantics)."""
    try:
        raw = scan(body)
    except GoSyntaxError as exc:
        raise BadRequest(str(exc)) from None
    if raw is None:
        raise BadRequest("missing request body")
    return plain(parse_value(raw))


def struct_type(model: type[GoModel]) -> StructType:
    """The Go struct a wire model stands for: GO_TYPES, and every other field as `interface {}`."""
    fields = {name: "interface {}" for name in (f.alias or n for n, f in model.model_fields.items())}
    fields.update(model.GO_TYPES)
    return StructType(f"{getattr(model, 'GO_PACKAGE', 'api')}.{model.GO_NAME}", fields)


def decode(body: bytes, model: type[T]) -> T:
    """ShouldBindJSON: Go's decoding rules and error texts (ollmlx/api/gojson.py), then the model."""
    try:
        data = decode_body(body, struct_type(model))
    except EmptyBody:
        raise BadRequest("missing request body") from None
    except GoDecodeError as exc:
        raise BadRequest(str(exc)) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # a field type the Go table does not describe
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
            f"json: cannot unmarshal {json_kind(value)} into Go struct field {model.GO_NAME}.{path} of type "
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
