"""Numeric and character literals: classify them the way Go's parse.newNumber does."""

from __future__ import annotations

import math
from typing import Any

from .lexer import T
from .nodes import NumberNode
from .strconv import SyntaxErr, parse_float, parse_int, parse_uint, quote, unquote_char


def new_number(pos: int, text: str, typ: T, tr: Any = None) -> NumberNode:
    """parse.newNumber: classify a numeric literal the way Go does."""
    n = NumberNode(pos, text, tr)
    if typ == T.CHAR_CONSTANT:
        ch, tail = unquote_char(text[1:], text[0])
        if tail != "'":
            raise SyntaxErr(f"malformed character constant: {text}")
        r = ord(ch) - 0xDC00 if 0xDC80 <= ord(ch) <= 0xDCFF else ord(ch)
        n.int64 = n.uint64 = r
        n.float64 = float(r)
        n.is_int = n.is_uint = n.is_float = True
        return n
    if typ == T.COMPLEX:
        try:
            n.complex128 = complex(text.replace("_", "").replace("i", "j"))
        except ValueError:
            raise SyntaxErr("expected integer") from None
        n.is_complex = True
        _simplify_complex(n)
        return n
    if text.endswith("i"):
        try:
            f = parse_float(text[:-1])
        except SyntaxErr:
            pass
        else:
            n.is_complex = True
            n.complex128 = complex(0, f)
            _simplify_complex(n)
            return n
    try:
        n.uint64 = parse_uint(text)
        n.is_uint = True
    except SyntaxErr:
        pass
    try:
        n.int64 = parse_int(text)
        n.is_int = True
        if n.int64 == 0:
            n.is_uint = True
    except SyntaxErr:
        pass
    if n.is_int:
        n.is_float, n.float64 = True, float(n.int64)
    elif n.is_uint:
        n.is_float, n.float64 = True, float(n.uint64)
    else:
        try:
            f = parse_float(text)
        except SyntaxErr:
            pass
        else:
            if not any(c in text for c in ".eEpP"):
                raise SyntaxErr(f"integer overflow: {quote(text)}")
            n.is_float, n.float64 = True, f
            if f.is_integer() and -(2**63) <= f < 2**63:
                n.is_int, n.int64 = True, int(f)
            if f.is_integer() and 0 <= f < 2**64:
                n.is_uint, n.uint64 = True, int(f)
    if not (n.is_int or n.is_uint or n.is_float):
        raise SyntaxErr(f"illegal number syntax: {quote(text)}")
    return n


def _simplify_complex(n: NumberNode) -> None:
    n.is_float = n.complex128.imag == 0
    if n.is_float:
        f = n.complex128.real
        n.float64 = f
        ok = not math.isinf(f) and not math.isnan(f) and f.is_integer()
        n.is_int = ok and -(2**63) <= f < 2**63
        if n.is_int:
            n.int64 = int(f)
        n.is_uint = ok and 0 <= f < 2**64
        if n.is_uint:
            n.uint64 = int(f)
