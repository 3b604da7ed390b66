"""Request bodies decoded the way Ollama's handlers decode them: gin's ShouldBindJSON, i.e. Go's
`json.NewDecoder(body).Decode(&req)` (spec §0, §19).

Syntax errors come from Go's scanner (goscan.py); here:

* `GoDecoder` - Go's decodeState over the parsed value and a struct's Go field types: JSON keys
  match field names case-insensitively (Go's folding), `null` leaves a field at its zero value, the
  first type mismatch is reported as `json: cannot unmarshal X into Go struct field T.path of type
  Y` once the whole value was walked, while an error from a type's own UnmarshalJSON (keep_alive,
  think, a message) stops the walk at once and wins.
* custom unmarshalers of api/types.go: `api.Duration` (keep_alive), `api.ThinkValue`,
  `api.Message` (decoded through an alias type, so its errors carry the outer struct's name), and
  `[]byte` / `api.ImageData` (standard base64, with Go's `illegal base64 data at input byte N`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ollmlx.api.goscan import GoSyntaxError, base64_error, scan
from ollmlx.durations import GoDurationError, KeepAliveError, parse_keep_alive
from ollmlx.options import go_quote

# -- parsed numbers keep their literal (Go reports "number 1.5" for an int field) ---------------

class _Int(int):
    literal: str


class _Float(float):
    literal: str


def _parse_int(s: str) -> int:
    n = _Int(s)
    n.literal = s
    return n


def _parse_float(s: str) -> float:
    f = _Float(s)
    f.literal = s
    return f


class _Pairs(list[tuple[str, Any]]):
    """An object with its keys in order, duplicates kept (Go assigns each in turn)."""


def parse_value(raw: bytes) -> Any:
    """Python value of a scanned JSON value; objects as _Pairs."""
    return json.loads(raw.decode("utf-8", "replace"), parse_int=_parse_int, parse_float=_parse_float,
                      object_pairs_hook=_Pairs)


def plain(value: Any) -> Any:
    """_Pairs → dict (last duplicate wins), literal-carrying numbers → int/float."""
    if isinstance(value, _Pairs):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def literal(value: Any) -> str:
    return getattr(value, "literal", json.dumps(value))


def json_kind(value: Any) -> str:
    """The JSON kind Go names in UnmarshalTypeError.Value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and not isinstance(value, _Pairs):
        return "array"
    if isinstance(value, _Pairs | dict):
        return "object"
    return "null"


# -- Go's field-name folding (encoding/json foldName) ----------------------------------------

def fold_name(name: str) -> str:
    out = []
    for ch in name:
        if ch < "\x80":
            out.append(ch.upper())
            continue
        orbit = {ch, ch.lower(), ch.upper()}  # the long s folds with "S", the Kelvin sign with "k"
        smallest = min((c for c in orbit if len(c) == 1), key=ord)
        out.append(smallest.upper() if smallest < "\x80" else smallest)
    return "".join(out)


# -- errors ------------------------------------------------------------------------------------

@dataclass
class TypeMismatch:
    """Go's *json.UnmarshalTypeError."""

    value: str
    go_type: str
    struct: str = ""
    field: str = ""

    def message(self) -> str:
        if self.struct or self.field:
            return f"json: cannot unmarshal {self.value} into Go struct field {self.struct}.{self.field} of type {self.go_type}"
        return f"json: cannot unmarshal {self.value} into Go value of type {self.go_type}"


class GoDecodeError(ValueError):
    """The error text Go's decoder returns for this body (400 in every Ollama handler)."""


@dataclass(frozen=True)
class _Ctx:
    struct: str = ""
    stack: tuple[str, ...] = ()

    def enter(self, struct: str, name: str) -> _Ctx:
        return _Ctx(struct, (*self.stack, name))


class _Returned(Exception):
    """An error returned (not saved) by a custom UnmarshalJSON: it stops decoding."""

    def __init__(self, err: TypeMismatch | str, ctx: _Ctx) -> None:
        super().__init__(str(err))
        self.err = err
        self.ctx = ctx


def _with_context(err: TypeMismatch | str, ctx: _Ctx) -> TypeMismatch | str:
    """decodeState.addErrorContext."""
    if isinstance(err, TypeMismatch) and (ctx.struct or ctx.stack):
        path = [*ctx.stack, err.field] if err.field else list(ctx.stack)
        return TypeMismatch(err.value, err.go_type, ctx.struct, ".".join(path))
    return err


# -- Go types of the request structs ----------------------------------------------------------

#: Struct types by Go name: json field name → Go type. Types of the request models come from
#: their GO_TYPES; these are the nested ones.
STRUCTS: dict[str, dict[str, str]] = {
    "api.Message": {"role": "string", "content": "string", "thinking": "string", "images": "[]api.ImageData",
                    "tool_calls": "[]api.ToolCall", "tool_name": "string", "tool_call_id": "string"},
    "api.ToolCall": {"id": "string", "function": "api.ToolCallFunction"},
    "api.ToolCallFunction": {"index": "int", "name": "string", "arguments": "api.ToolCallFunctionArguments"},
    "api.Tool": {"type": "string", "items": "interface {}", "function": "api.ToolFunction"},
    "api.ToolFunction": {"name": "string", "description": "string", "parameters": "api.ToolFunctionParameters"},
    "api.ToolFunctionParameters": {"type": "string", "$defs": "interface {}", "items": "interface {}",
                                   "required": "[]string", "properties": "interface {}"},
}
#: Named types that are slices or maps underneath.
ALIASES: dict[str, str] = {"api.Tools": "[]api.Tool", "api.ImageData": "[]uint8"}
_INT_RE = re.compile(r"-?[0-9]+\Z")


class GoDecoder:
    """One decode: walks a parsed value against Go types, saving the first type mismatch."""

    def __init__(self, structs: dict[str, dict[str, str]] | None = None) -> None:
        self.structs = {**STRUCTS, **(structs or {})}
        self.saved: TypeMismatch | str | None = None

    def save(self, err: TypeMismatch | str, ctx: _Ctx) -> None:
        if self.saved is None:
            self.saved = _with_context(err, ctx)

    def decode(self, value: Any, go_type: str, ctx: _Ctx = _Ctx()) -> Any:
        """The decoded value (plain Python), or _SKIP when the field keeps its zero value."""
        if value is None:
            return _SKIP  # null: pointers stay nil, everything else keeps its zero value
        go_type = go_type.removeprefix("*")
        custom = _CUSTOM.get(go_type)
        if custom is not None:
            return custom(self, value, ctx)
        underlying = ALIASES.get(go_type, go_type)
        if underlying == "[]uint8":
            return self._bytes(value, go_type, ctx)
        if go_type in self.structs:
            return self.struct(value, go_type, ctx)
        if underlying in ("interface {}", "json.RawMessage"):
            return plain(value)
        if underlying.startswith("[]"):
            if not isinstance(value, list) or isinstance(value, _Pairs):
                self.save(TypeMismatch(json_kind(value), go_type), ctx)
                return _SKIP
            out = []
            for item in value:
                got = self.decode(item, underlying[2:], ctx)
                out.append(_zero(underlying[2:]) if got is _SKIP else got)
            return out
        if underlying.startswith("map[string]"):
            if not isinstance(value, _Pairs):
                self.save(TypeMismatch(json_kind(value), go_type), ctx)
                return _SKIP
            elem = underlying[len("map[string]"):]
            result: dict[str, Any] = {}
            for k, v in value:
                got = self.decode(v, elem, ctx)
                result[k] = _zero(elem) if got is _SKIP else got
            return result
        return self._scalar(value, underlying, go_type, ctx)

    def _scalar(self, value: Any, kind: str, go_type: str, ctx: _Ctx) -> Any:
        if kind == "string":
            if isinstance(value, str):
                return value
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind in ("int", "int64", "int32", "uint64"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                text = literal(value)
                n = int(text) if _INT_RE.match(text) else None
                if n is None or not -(1 << 63) <= n < (1 << 63) or (kind == "uint64" and n < 0):
                    self.save(TypeMismatch(f"number {text}", go_type), ctx)
                    return _SKIP
                return n
        elif kind in ("float32", "float64"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        else:  # a type this table does not know: leave it to the model's own validation
            return plain(value)
        self.save(TypeMismatch(json_kind(value), go_type), ctx)
        return _SKIP

    def _bytes(self, value: Any, go_type: str, ctx: _Ctx) -> Any:
        if isinstance(value, str):
            err = base64_error(value.encode("utf-8", "surrogatepass"))
            if err is not None:
                self.save(err, ctx)
                return _SKIP
            return value
        if isinstance(value, list) and not isinstance(value, _Pairs):  # Go also takes an array of bytes
            return [self.decode(v, "uint8", ctx) for v in value]
        self.save(TypeMismatch(json_kind(value), go_type), ctx)
        return _SKIP

    def struct(self, value: Any, go_type: str, ctx: _Ctx) -> Any:
        if not isinstance(value, _Pairs):
            self.save(TypeMismatch(json_kind(value), go_type), ctx)
            return _SKIP
        fields = self.structs[go_type]
        folded = {fold_name(name): name for name in fields}
        struct_name = go_type.rsplit(".", 1)[-1]
        out: dict[str, Any] = {}
        for key, item in value:
            name = key if key in fields else folded.get(fold_name(key))
            if name is None:
                continue  # unknown fields are ignored
            got = self.decode(item, fields[name], ctx.enter(struct_name, name))
            if got is _SKIP:
                continue
            if isinstance(got, dict) and isinstance(out.get(name), dict) and fields[name].startswith("map["):
                out[name] = {**out[name], **got}  # a repeated map field merges into the same map
            else:
                out[name] = got
        return out


class _Skip:
    pass


_SKIP: Any = _Skip()


def _zero(go_type: str) -> Any:
    return {"string": "", "bool": False, "int": 0, "float32": 0.0, "float64": 0.0}.get(go_type.removeprefix("*"))


def _duration(dec: GoDecoder, value: Any, ctx: _Ctx) -> Any:
    """api.Duration.UnmarshalJSON (keep_alive): its errors are returned, not saved."""
    try:
        parse_keep_alive(plain(value))
    except (GoDurationError, KeepAliveError) as exc:
        raise _Returned(str(exc), ctx) from None
    return plain(value)


def _think(dec: GoDecoder, value: Any, ctx: _Ctx) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in ("high", "medium", "low", "max"):
            raise _Returned(f'invalid think value: {go_quote(value)} (must be "high", "medium", "low", "max", true, '
                            'or false)', ctx)
        return value
    raise _Returned('think must be a boolean or string ("high", "medium", "low", "max", true, or false)', ctx)


def _message(dec: GoDecoder, value: Any, ctx: _Ctx) -> Any:
    """api.Message.UnmarshalJSON: a fresh json.Unmarshal into an alias type, role lower-cased.
    Any error of the inner decode is returned, so it stops the outer one and gets its context."""
    inner = GoDecoder(dec.structs)
    inner.structs = {**inner.structs, "api.Alias": inner.structs["api.Message"]}
    try:
        out = inner.decode(value, "api.Alias")
    except _Returned as exc:
        raise _Returned(_with_context(exc.err, exc.ctx), ctx) from None
    if inner.saved is not None:
        raise _Returned(inner.saved, ctx)
    if out is _SKIP:
        return _SKIP
    if isinstance(out.get("role"), str):
        out["role"] = out["role"].lower()
    return out


def _arguments(dec: GoDecoder, value: Any, ctx: _Ctx) -> Any:
    """ToolCallFunctionArguments: an ordered JSON object."""
    if not isinstance(value, _Pairs):
        raise _Returned(TypeMismatch(json_kind(value), "map[string]interface {}"), ctx)
    return plain(value)


_CUSTOM: dict[str, Callable[[GoDecoder, Any, _Ctx], Any]] = {
    "api.Duration": _duration,
    "api.ThinkValue": _think,
    "api.Message": _message,
    "api.ToolCallFunctionArguments": _arguments,
}


@dataclass
class StructType:
    """A top-level request type: its Go name (`api.GenerateRequest`) and json fields."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)


def decode_body(body: bytes, target: StructType) -> dict[str, Any]:
    """Decode a request body like ShouldBindJSON into `target`: the fields present, with their
    canonical json names. Raises GoDecodeError (Go's text) or EmptyBody."""
    try:
        raw = scan(body)
    except GoSyntaxError as exc:
        raise GoDecodeError(str(exc)) from None
    if raw is None:
        raise EmptyBody()
    value = parse_value(raw)
    dec = GoDecoder({target.name: target.fields})
    try:
        out = dec.decode(value, target.name)
    except _Returned as exc:
        err = _with_context(exc.err, exc.ctx)
        raise GoDecodeError(err.message() if isinstance(err, TypeMismatch) else err) from None
    if dec.saved is not None:
        saved = dec.saved
        raise GoDecodeError(saved.message() if isinstance(saved, TypeMismatch) else saved)
    return {} if out is _SKIP else out


class EmptyBody(ValueError):
    """io.EOF from the decoder: Ollama answers `missing request body`."""
