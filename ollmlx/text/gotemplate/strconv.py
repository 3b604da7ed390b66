"""The parts of Go's strconv that templates need: float formatting, quoting, literal parsing.

Go strings are bytes; here they are Python ``str`` in which bytes that are not valid UTF-8 are
carried as lone surrogates (``surrogateescape``).
"""

from __future__ import annotations

import math
import re

_HEX = "0123456789abcdef"


class SyntaxErr(ValueError):
    """strconv.ErrSyntax / ErrRange; str() is Go's message."""


# ---- floats ------------------------------------------------------------------------------------


def shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and the decimal point position (0.DIGITS x 10^dp)."""
    if f == 0:
        return "", 0
    mant, _, exp = repr(abs(f)).partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    all_digits = ip + fp
    stripped = all_digits.lstrip("0")
    dp = len(ip) - (len(all_digits) - len(stripped)) + e
    return stripped.rstrip("0"), dp


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, ch: str) -> str:
    out = ["-" if neg else "", digits[0] if digits else "0"]
    if prec > 0:
        frac = digits[1 : prec + 1]
        out.append("." + frac + "0" * (prec - len(frac)))
    exp = dp - 1 if digits else 0
    sign = "-" if exp < 0 else "+"
    out.append(f"{ch}{sign}{abs(exp):02d}")
    return "".join(out)


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    out = ["-" if neg else ""]
    if dp > 0:
        out.append(digits[:dp] + "0" * max(0, dp - len(digits)))
    else:
        out.append("0")
    if prec > 0:
        frac = "".join(digits[j] if 0 <= j < len(digits) else "0" for j in range(dp, dp + prec))
        out.append("." + frac)
    return "".join(out)


def format_float(f: float, fmt: str, prec: int) -> str:
    """strconv.FormatFloat(f, fmt, prec, 64)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = math.copysign(1.0, f) < 0
    if fmt in "xX":
        return _fmt_hex(f, fmt, prec)
    if fmt == "b":
        m, e = math.frexp(abs(f))
        mant = int(m * (1 << 53))
        return ("-" if neg else "") + (f"{mant}p{e - 53:+d}" if mant else "0p-1074")
    if prec >= 0:
        p = max(prec, 1) if fmt in "gG" else prec
        s = f"%.{p}{fmt}" % f
        return s.replace("inf", "Inf").replace("nan", "NaN")
    digits, dp = shortest_digits(f)
    if fmt in "eE":
        return _fmt_e(neg, digits, dp, max(len(digits) - 1, 0), fmt)
    if fmt in "fF":
        return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
    exp = dp - 1
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, digits, dp, len(digits) - 1, "e" if fmt == "g" else "E")
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


def _fmt_hex(f: float, fmt: str, prec: int) -> str:
    h = float.hex(abs(f))  # 0x1.8000000000000p+1
    mant, _, exp = h[2:].partition("p")
    ip, _, fp = mant.partition(".")
    fp = fp.rstrip("0")
    if prec >= 0:
        fp = (fp + "0" * prec)[:prec]
    e = int(exp)
    s = ("-" if math.copysign(1.0, f) < 0 else "") + "0x" + ip + ("." + fp if fp else "")
    s += f"p{'-' if e < 0 else '+'}{abs(e):02d}"
    return s.upper() if fmt == "X" else s


# ---- quoting -----------------------------------------------------------------------------------


def _escaped_rune(r: int, quote_ch: str, ascii_only: bool) -> str:
    c = chr(r)
    if c == quote_ch or c == "\\":
        return "\\" + c
    if ascii_only:
        if r < 0x80 and c.isprintable():
            return c
    elif c.isprintable() and not 0xD800 <= r <= 0xDFFF:
        return c
    simple = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if r in simple:
        return simple[r]
    if r < 0x20 or r == 0x7F:
        return "\\x" + _HEX[r >> 4] + _HEX[r & 0xF]
    if 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    if r < 0x10000:
        return f"\\u{r:04x}"
    return f"\\U{r:08x}"


def quote(s: str, ascii_only: bool = False) -> str:
    out = ['"']
    for c in s:
        r = ord(c)
        if 0xDC80 <= r <= 0xDCFF:  # an invalid UTF-8 byte
            b = r - 0xDC00
            out.append("\\x" + _HEX[b >> 4] + _HEX[b & 0xF])
        else:
            out.append(_escaped_rune(r, '"', ascii_only))
    out.append('"')
    return "".join(out)


def quote_rune(r: int, ascii_only: bool = False) -> str:
    if r < 0 or r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    return "'" + _escaped_rune(r, "'", ascii_only) + "'"


def can_backquote(s: str) -> bool:
    for c in s:
        r = ord(c)
        if r >= 0x80:
            if r == 0xFEFF or 0xD800 <= r <= 0xDFFF:
                return False
            continue
        if (r < 0x20 and c != "\t") or c == "`" or r == 0x7F:
            return False
    return True


# ---- literals ----------------------------------------------------------------------------------

_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote_char(s: str, quote_ch: str) -> tuple[str, str]:
    """strconv.UnquoteChar: (decoded text, tail). Bytes from \\x/octal escapes become surrogates."""
    if not s:
        raise SyntaxErr("invalid syntax")
    c = s[0]
    if c == quote_ch and quote_ch in "'\"":
        raise SyntaxErr("invalid syntax")
    if c != "\\":
        return c, s[1:]
    if len(s) <= 1:
        raise SyntaxErr("invalid syntax")
    c, s = s[1], s[2:]
    if c in _SIMPLE_ESC:
        return _SIMPLE_ESC[c], s
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        if len(s) < n or not re.fullmatch(r"[0-9a-fA-F]+", s[:n]):
            raise SyntaxErr("invalid syntax")
        v = int(s[:n], 16)
        if c == "x":
            return (chr(v) if v < 0x80 else chr(0xDC00 + v)), s[n:]
        if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            raise SyntaxErr("invalid syntax")
        return chr(v), s[n:]
    if c in "01234567":
        if len(s) < 2 or not re.fullmatch(r"[0-7]{2}", s[:2]):
            raise SyntaxErr("invalid syntax")
        v = int(c + s[:2], 8)
        if v > 255:
            raise SyntaxErr("invalid syntax")
        return (chr(v) if v < 0x80 else chr(0xDC00 + v)), s[2:]
    if c in "'\"":
        if c != quote_ch:
            raise SyntaxErr("invalid syntax")
        return c, s
    raise SyntaxErr("invalid syntax")


def unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals."""
    if len(s) < 2 or s[0] != s[-1]:
        raise SyntaxErr("invalid syntax")
    q, body = s[0], s[1:-1]
    if q == "`":
        if "`" in body:
            raise SyntaxErr("invalid syntax")
        return body.replace("\r", "")
    if q not in "\"'":
        raise SyntaxErr("invalid syntax")
    if "\n" in body:
        raise SyntaxErr("invalid syntax")
    if "\\" not in body and q not in body:
        if q == "'" and len(body) != 1:
            raise SyntaxErr("invalid syntax")
        return body
    out = []
    while body:
        ch, body = unquote_char(body, q)
        out.append(ch)
        if q == "'" and body:
            raise SyntaxErr("invalid syntax")
    return "".join(out)


def _underscore_ok(s: str) -> bool:
    saw = "^"
    i = 0
    if s[:1] in "+-":
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c.isdigit() or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def parse_uint(s: str) -> int:
    """strconv.ParseUint(s, 0, 64)."""
    if not s:
        raise SyntaxErr("invalid syntax")
    s0, base = s, 10
    if s[0] == "0":
        if len(s) >= 3 and s[1].lower() in "box":
            base = {"b": 2, "o": 8, "x": 16}[s[1].lower()]
            s = s[2:]
        else:
            base, s = 8, s[1:]
    digits = "0123456789abcdef"[:base]
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        d = digits.find(c.lower())
        if d < 0:
            raise SyntaxErr("invalid syntax")
        n = n * base + d
    if underscores and not _underscore_ok(s0):
        raise SyntaxErr("invalid syntax")
    if n >= 1 << 64:
        raise SyntaxErr("value out of range")
    return n


def parse_int(s: str) -> int:
    """strconv.ParseInt(s, 0, 64)."""
    if not s:
        raise SyntaxErr("invalid syntax")
    neg = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    u = parse_uint(body)
    v = -u if neg else u
    if not -(1 << 63) <= v < (1 << 63):
        raise SyntaxErr("value out of range")
    return v


def parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) for the literals the lexer can produce."""
    body = s[1:] if s[:1] in "+-" else s
    if "_" in s and not _underscore_ok(s):
        raise SyntaxErr("invalid syntax")
    if body[:2].lower() == "0x":
        if "p" not in body.lower():
            raise SyntaxErr("invalid syntax")
        try:
            v = float.fromhex(body.replace("_", ""))
        except ValueError:
            raise SyntaxErr("invalid syntax") from None
        return -v if s[0] == "-" else v
    if not re.fullmatch(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d[\d_]*)?", s):
        raise SyntaxErr("invalid syntax")
    v = float(s.replace("_", ""))
    if math.isinf(v):
        raise SyntaxErr("value out of range")
    return v
