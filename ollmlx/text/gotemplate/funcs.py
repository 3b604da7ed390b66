"""Template functions: Go's builtins (text/template/funcs.go) and how functions are described.

Parameter kinds of a :class:`Func`:

* ``"value"``: any value, uninterpreted (Go's ``reflect.Value``); may be ``NO_VALUE``
* ``"any"``: any value (Go's ``any``); a missing value arrives as ``None``
* ``"string"`` / ``"int"`` / ``"bool"``: must have that type
"""

from __future__ import annotations

import inspect
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import values as V
from .errors import FuncError
from .gofmt import sprint, sprintln
from .printf import sprintf


@dataclass(frozen=True)
class Func:
    """A template function: the callable and its Go-like signature."""

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None
    min_args: int | None = None  # for Python callables with defaults

    @classmethod
    def of(cls, fn: Callable[..., Any] | Func) -> Func:
        """Describe a Python callable: positional parameters are `any`, *args is variadic `any`."""
        if isinstance(fn, Func):
            return fn
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return cls(fn, (), "any")
        params: list[str] = []
        required = 0
        variadic = None
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params.append("any")
                if p.default is p.empty:
                    required += 1
            elif p.kind == p.VAR_POSITIONAL:
                variadic = "any"
        return cls(fn, tuple(params), variadic, None if required == len(params) else required)


def _ii(v: Any) -> Any:
    """indirectInterface: a nil interface becomes an invalid value."""
    return V.NO_VALUE if v is None else v


# ---- comparison --------------------------------------------------------------------------------

_BASIC = {V.BOOL: "bool", V.INT: "int", V.FLOAT: "float", V.COMPLEX: "complex", V.STRING: "string"}


def _basic_kind(v: Any) -> str | None:
    return _BASIC.get(V.kind(v))


def _is_nil(v: Any) -> bool:
    return v is V.NO_VALUE or v is None or isinstance(v, V.NilPointer | V.NilSlice | V.NilMap)


def _comparable(v: Any) -> bool:
    return V.kind(v) not in (V.SLICE, V.MAP, V.FUNC)


def eq(arg1: Any, *arg2: Any) -> bool:
    arg1 = _ii(arg1)
    if not arg2:
        raise FuncError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = _ii(arg)
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if arg1 is not V.NO_VALUE and arg is not V.NO_VALUE:
                raise FuncError("incompatible types for comparison")
        elif k1 is not None:
            truth = arg1 == arg
        elif arg1 is V.NO_VALUE or arg is V.NO_VALUE:
            truth = arg1 is arg
        else:
            if V.type_name(arg1) != V.type_name(arg) and not (_is_nil(arg1) or _is_nil(arg)):
                raise FuncError(f"non-comparable types {sprintf('%s', arg1)}: {V.type_name(arg1)}, "
                                f"{V.type_name(arg)}: {sprint(arg)}")
            if _is_nil(arg1) or _is_nil(arg):
                truth = _is_nil(arg1) == _is_nil(arg)
            elif not _comparable(arg):
                raise FuncError(f"non-comparable type {sprintf('%s', arg)}: {V.type_name(arg)}")
            else:
                truth = arg1 == arg
        if truth:
            return True
    return False


def ne(arg1: Any, arg2: Any) -> bool:
    return not eq(arg1, arg2)


def lt(arg1: Any, arg2: Any) -> bool:
    arg1, arg2 = _ii(arg1), _ii(arg2)
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if k1 is None or k2 is None:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise FuncError("invalid type for comparison")
    if k1 == "string":
        return bool(V.str_bytes(arg1) < V.str_bytes(arg2))
    return bool(arg1 < arg2)


def le(arg1: Any, arg2: Any) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def gt(arg1: Any, arg2: Any) -> bool:
    return not le(arg1, arg2)


def ge(arg1: Any, arg2: Any) -> bool:
    return not lt(arg1, arg2)


# ---- indexing ----------------------------------------------------------------------------------


def _index_arg(index: Any, cap: int) -> int:
    if V.kind(index) == V.INT:
        x = int(index)
    elif index is V.NO_VALUE:
        raise FuncError("cannot index slice/array with nil")
    else:
        raise FuncError(f"cannot index slice/array with type {V.type_name(index)}")
    if x < 0 or x > cap:
        raise FuncError(f"index out of range: {x}")
    return x


def _map_key_type(m: Mapping[Any, Any]) -> str | None:
    for k in m:
        return "string" if isinstance(k, str) else V.type_name(k)
    return "string"


def index(item: Any, *indexes: Any) -> Any:
    item = _ii(item)
    if item is V.NO_VALUE:
        raise FuncError("index of untyped nil")
    for idx in indexes:
        idx = _ii(idx)
        if isinstance(item, V.NilPointer):
            raise FuncError("index of nil pointer")
        k = V.kind(item)
        if k == V.STRING:
            b = V.str_bytes(item)
            x = _index_arg(idx, len(b))
            if x >= len(b):
                raise FuncError("reflect: string index out of range")
            item = b[x]
        elif k == V.SLICE:
            x = _index_arg(idx, len(item))
            if x >= len(item):
                raise FuncError("reflect: slice index out of range")
            item = item[x]
        elif k == V.MAP:
            key_type = _map_key_type(item)
            if idx is V.NO_VALUE:
                raise FuncError(f"value is nil; should be of type {key_type}")
            if key_type == "string" and not isinstance(idx, str):
                raise FuncError(f"value has type {V.type_name(idx)}; should be string")
            if idx in item:
                item = item[idx]
            elif isinstance(item, V.GoMap):
                item = item.go_zero()
            else:
                item = None
        else:
            raise FuncError(f"can't index item of type {V.type_name(item)}")
    return item


def slice_(item: Any, *indexes: Any) -> Any:
    item = _ii(item)
    if item is V.NO_VALUE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    k = V.kind(item)
    if k == V.STRING:
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: Any = V.str_bytes(item)
    elif k == V.SLICE:
        seq = item
    else:
        raise FuncError(f"can't slice item of type {V.type_name(item)}")
    idx = [0, len(seq), len(seq)]
    for i, index_ in enumerate(indexes):
        idx[i] = _index_arg(_ii(index_), len(seq))
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0] : idx[1]]
    if k == V.STRING:
        return V.bytes_str(out)
    return out


def length(item: Any) -> int:
    if item is V.NO_VALUE:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if item is None or isinstance(item, V.NilPointer):
        raise FuncError("len of nil pointer")
    k = V.kind(item)
    if k in (V.STRING, V.SLICE, V.MAP):
        return V.go_len(item)
    raise FuncError(f"len of type {V.type_name(item)}")


def not_(arg: Any) -> bool:
    return not V.truth(_ii(arg))


def call(fn: Any, *args: Any) -> Any:
    fn = _ii(fn)
    if fn is V.NO_VALUE:
        raise FuncError("call of nil")
    if V.kind(fn) != V.FUNC:
        raise FuncError(f"non-function of type {V.type_name(fn)}")
    return fn(*(None if a is V.NO_VALUE else a for a in args))


# ---- escaping ----------------------------------------------------------------------------------


def eval_args(args: tuple[Any, ...]) -> str:
    """evalArgs: the single string argument, or fmt.Sprint of all."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


def html_escape_string(s: str) -> str:
    if not any(c in "\"'&<>\0" for c in s):
        return s
    table = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in s)


def js_escape_string(s: str) -> str:
    out = []
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
             "=": "\\u003D"}
    for c in s:
        r = ord(c)
        if c in table:
            out.append(table[c])
        elif r < 0x20:
            out.append(f"\\u{r:04X}")
        elif r < 0x80 or (c.isprintable() and not 0xD800 <= r <= 0xDFFF):
            out.append(c)
        else:
            out.append(f"\\u{0xFFFD if 0xD800 <= r <= 0xDFFF else r:04X}")
    return "".join(out)


def html(*args: Any) -> str:
    return html_escape_string(eval_args(args))


def js(*args: Any) -> str:
    return js_escape_string(eval_args(args))


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(V.str_bytes(eval_args(args)), safe="")


def printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, *args)


def _missing(*_args: Any) -> Any:  # and/or are evaluated by the executor (short-circuit)
    raise AssertionError("and/or are special-cased")


BUILTINS: dict[str, Func] = {
    "and": Func(_missing, ("value",), "value"),
    "or": Func(_missing, ("value",), "value"),
    "not": Func(not_, ("value",)),
    "call": Func(call, ("value",), "value"),
    "html": Func(html, (), "any"),
    "js": Func(js, (), "any"),
    "urlquery": Func(urlquery, (), "any"),
    "index": Func(index, ("value",), "value"),
    "slice": Func(slice_, ("value",), "value"),
    "len": Func(length, ("value",)),
    "print": Func(sprint, (), "any"),
    "printf": Func(printf, ("string",), "any"),
    "println": Func(sprintln, (), "any"),
    "eq": Func(eq, ("value",), "value"),
    "ne": Func(ne, ("value", "value")),
    "lt": Func(lt, ("value", "value")),
    "le": Func(le, ("value", "value")),
    "gt": Func(gt, ("value", "value")),
    "ge": Func(ge, ("value", "value")),
}
