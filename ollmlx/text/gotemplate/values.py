"""How Python values stand in for Go values inside the template engine.

Mapping (Go <- Python):

* invalid ``reflect.Value`` <- :data:`NO_VALUE` (internal; prints ``<no value>``)
* nil interface             <- ``None``
* typed nil pointer         <- :class:`NilPointer`
* bool / int / float64 / complex128 / string <- ``bool`` / ``int`` / ``float`` / ``complex`` / ``str``
* ``[]byte``                <- ``bytes`` / ``bytearray``
* slice                     <- ``list`` / ``tuple`` (:class:`NilSlice` is a nil slice: JSON ``null``)
* map                       <- any ``Mapping`` (ranged, printed and marshalled with sorted keys);
  :class:`NilMap` is a nil map
* struct                    <- any other object; :class:`GoStruct` dataclasses give field order,
  JSON tags (``field(metadata={"json": "name,omitempty"})``) and a Go type name
* func                      <- a Python function / method

Objects may define ``__go_str__()`` (Go's ``String()`` method, used when printing),
``__go_json__()`` (Go's ``MarshalJSON``: returns the JSON text) and ``__go_type__`` (type name
used in error messages).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar


class _NoValue:
    """Go's invalid reflect.Value: what a nil interface becomes once a pipeline ends."""

    __slots__ = ()
    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class NilPointer:
    """A typed nil pointer (prints ``<nil>``, marshals to ``null``)."""

    __slots__ = ("go_type",)

    def __init__(self, go_type: str = "*struct {}") -> None:
        self.go_type = go_type

    def __repr__(self) -> str:
        return f"NilPointer({self.go_type!r})"

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NilPointer)

    def __hash__(self) -> int:
        return 0


class NilSlice(list):
    """A nil slice: behaves as an empty list, marshals to JSON ``null``."""

    __go_type__ = "[]interface {}"


class NilMap(dict):
    """A nil map: behaves as an empty dict, marshals to JSON ``null``."""

    __go_type__ = "map[string]interface {}"


class GoMap(dict):
    """A map whose missing keys yield a typed zero value (``zero()``) under missingkey=zero."""

    __go_type__ = "map[string]interface {}"

    def __init__(self, *args: Any, zero: Callable[[], Any] | None = None,
                 go_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._zero = zero
        self.typed = zero is not None  # elements have a concrete type (not interface {})
        if go_type is not None:
            self.__go_type__ = go_type

    def go_zero(self) -> Any:
        return None if self._zero is None else self._zero()


class GoStruct:
    """Base for dataclasses that model Go structs (field order, JSON tags, type name)."""

    go_type: ClassVar[str] = ""

    def go_field_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]


# Kinds, as reflect.Kind names.
INVALID, NIL, BOOL, INT, FLOAT, COMPLEX, STRING = "invalid", "nil", "bool", "int", "float", "complex", "string"
SLICE, MAP, STRUCT, PTR, FUNC = "slice", "map", "struct", "ptr", "func"

_FUNC_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
               types.BuiltinMethodType, types.LambdaType)


def kind(v: Any) -> str:
    if v is NO_VALUE:
        return INVALID
    if v is None:
        return NIL
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return INT
    if isinstance(v, float):
        return FLOAT
    if isinstance(v, complex):
        return COMPLEX
    if isinstance(v, str):
        return STRING
    if isinstance(v, list | tuple | bytes | bytearray):
        return SLICE
    if isinstance(v, Mapping):
        return MAP
    if isinstance(v, NilPointer):
        return PTR
    if isinstance(v, (*_FUNC_TYPES, type)):
        return FUNC
    return STRUCT


def type_name(v: Any) -> str:
    """The Go type name used in error messages."""
    override = getattr(type(v), "__go_type__", None)
    if isinstance(override, str) and override:
        return override
    if isinstance(v, GoStruct) and v.go_type:
        return v.go_type
    if isinstance(v, NilPointer):
        return v.go_type
    return {
        INVALID: "<nil>", NIL: "interface {}", BOOL: "bool", INT: "int", FLOAT: "float64",
        COMPLEX: "complex128", STRING: "string", MAP: "map[string]interface {}", FUNC: "func()",
    }.get(kind(v)) or _slice_or_struct_name(v)


def _slice_or_struct_name(v: Any) -> str:
    if isinstance(v, bytes | bytearray):
        return "[]uint8"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    return type(v).__name__


def is_true(v: Any) -> tuple[bool, bool]:
    """Go's isTrue: (truth, ok)."""
    k = kind(v)
    if k in (INVALID, NIL):
        return False, True
    if k in (STRING, SLICE, MAP):
        return len(v) > 0, True
    if k in (BOOL, INT, FLOAT, COMPLEX):
        return v != 0, True
    if k == PTR:
        return False, True
    return True, True  # structs, funcs


def truth(v: Any) -> bool:
    return is_true(v)[0]


def struct_fields(v: Any) -> list[tuple[str, Any]]:
    """(name, value) for the exported fields of a struct-like object, in declaration order."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
    names = getattr(v, "__slots__", None) or list(getattr(v, "__dict__", {}))
    return [(n, getattr(v, n)) for n in names if isinstance(n, str) and n[:1].isupper()]


MISSING_FIELD = object()


def get_field(v: Any, name: str) -> Any:
    """A struct field's value, or MISSING_FIELD."""
    if name.startswith("_"):
        return MISSING_FIELD
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        if any(f.name == name for f in dataclasses.fields(v)):
            return getattr(v, name)
        return MISSING_FIELD
    try:
        return getattr(v, name)
    except AttributeError:
        return MISSING_FIELD


def find_method(v: Any, name: str) -> Callable[..., Any] | None:
    """A Go method of v: a callable defined on its class, or String() from __go_str__."""
    if name == "String" and hasattr(v, "__go_str__"):
        return v.__go_str__
    if name.startswith("_") or isinstance(v, str | int | float | complex | bytes | bytearray | list | tuple):
        return None
    if isinstance(v, Mapping) and not isinstance(v, GoMap):
        return None
    attr = inspect.getattr_static(type(v), name, None)
    if isinstance(attr, staticmethod | classmethod) or inspect.isfunction(attr):
        return getattr(v, name)
    return None


def sorted_items(m: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Map entries in Go's fmtsort order (numbers numerically, strings bytewise, ...)."""
    return sorted(m.items(), key=lambda kv: _sort_key(kv[0]))


def _sort_key(k: Any) -> tuple[int, Any]:
    if k is None:
        return (0, 0)
    if isinstance(k, bool):
        return (1, int(k))
    if isinstance(k, int | float):
        return (2, (0, 0) if k != k else (1, k))  # NaN first
    if isinstance(k, str):
        return (3, k.encode("utf-8", "surrogateescape"))
    return (4, str(k))


def iter_map(m: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
    return iter(sorted_items(m))


def str_bytes(s: str) -> bytes:
    """A Go string's bytes (lone surrogates stand for invalid UTF-8 bytes)."""
    return s.encode("utf-8", "surrogateescape")


def bytes_str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def go_len(v: Any) -> int:
    if isinstance(v, str):
        return len(str_bytes(v)) if not v.isascii() else len(v)
    return len(v)
