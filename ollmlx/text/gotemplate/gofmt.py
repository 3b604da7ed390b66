"""Go's fmt package (Sprint, Sprintln, Sprintf) for the template engine's value model."""

from __future__ import annotations

import math
from typing import Any

from . import values as V
from .strconv import can_backquote, format_float, quote, quote_rune

_TOO_LARGE = 1_000_000


def _too_large(x: int) -> bool:
    return x > _TOO_LARGE or x < -_TOO_LARGE


class _Printer:
    def __init__(self) -> None:
        self.buf: list[str] = []
        self.erroring = False
        self.deref = False  # print a top-level pointer as its target (template printValue)
        self.reordered = False  # printf state (see printf.py)
        self.good_arg_num = True
        self.clear_flags()

    def clear_flags(self) -> None:
        self.plus = self.minus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False

    # ---- padding -------------------------------------------------------------------------------
    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero and not self.minus else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    def _truncate(self, s: str) -> str:
        if self.prec_present and self.prec < len(s):
            return s[: self.prec]
        return s

    # ---- basic formatters ----------------------------------------------------------------------
    def fmt_integer(self, v: int, base: int, verb: str, upper: bool = False) -> None:
        negative = v < 0
        u = -v if negative else v
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                old, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and not self.minus and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        digits = {10: str(u), 16: format(u, "X" if upper else "x"), 8: format(u, "o"), 2: format(u, "b")}[base]
        if len(digits) < prec:
            digits = "0" * (prec - len(digits)) + digits
        if self.sharp:
            if base == 2:
                digits = "0b" + digits
            elif base == 8 and not digits.startswith("0"):
                digits = "0" + digits
            elif base == 16:
                digits = ("0X" if upper else "0x") + digits
        if verb == "O":
            digits = "0o" + digits
        if negative:
            digits = "-" + digits
        elif self.plus:
            digits = "+" + digits
        elif self.space:
            digits = " " + digits
        old, self.zero = self.zero, False
        self.pad(digits)
        self.zero = old

    def fmt_float_raw(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec)
        if num[0] not in "+-":
            num = "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            old, self.zero = self.zero, False
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad(num)
            self.zero = old
            return
        if self.sharp and verb not in "bvx" and "." not in num and "e" not in num.lower():
            num += "."
        if self.plus or num[0] != "+":
            if self.zero and not self.minus and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    def fmt_bool(self, v: bool, verb: str) -> None:
        if verb in "tv":
            self.pad("true" if v else "false")
        else:
            self.bad_verb(verb, v)

    def fmt_int(self, v: int, verb: str) -> None:
        if verb in "vd":
            self.fmt_integer(v, 10, verb)
        elif verb == "b":
            self.fmt_integer(v, 2, verb)
        elif verb in "oO":
            self.fmt_integer(v, 8, verb)
        elif verb in "xX":
            self.fmt_integer(v, 16, verb, upper=verb == "X")
        elif verb == "c":
            self.pad(_rune(v))
        elif verb == "q":
            self.pad(quote_rune(v, ascii_only=self.plus))
        elif verb == "U":
            s = f"U+{v:04X}" if v >= 0 else f"U+{v & 0xFFFFFFFFFFFFFFFF:04X}"
            if self.sharp and 0 <= v <= 0x10FFFF and _rune(v).isprintable():
                s += " '" + _rune(v) + "'"
            old, self.zero = self.zero, False
            self.pad(s)
            self.zero = old
        else:
            self.bad_verb(verb, v)

    def fmt_float(self, v: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float_raw(v, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float_raw(v, verb, -1)
        elif verb in "feEF":
            self.fmt_float_raw(v, verb, 6)
        else:
            self.bad_verb(verb, v)

    def fmt_complex(self, v: complex, verb: str) -> None:
        if verb not in "vbgGxXfFeE":
            self.bad_verb(verb, v)
            return
        old_plus = self.plus
        self.buf.append("(")
        self.fmt_float(v.real, verb)
        self.plus = True
        self.fmt_float(v.imag, verb)
        self.buf.append("i)")
        self.plus = old_plus

    def fmt_string(self, s: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(s)
            else:
                self.pad(self._truncate(s))
        elif verb == "s":
            self.pad(self._truncate(s))
        elif verb in "xX":
            self.fmt_sbx(V.str_bytes(s), verb == "X")
        elif verb == "q":
            self.fmt_q(s)
        else:
            self.bad_verb(verb, s)

    def fmt_q(self, s: str) -> None:
        s = self._truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
        else:
            self.pad(quote(s, ascii_only=self.plus))

    def fmt_sbx(self, b: bytes, upper: bool) -> None:
        length = len(b)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        prefix = "0X" if upper else "0x"
        out = [prefix] if self.sharp else []
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append(prefix)
            out.append(format(b[i], "02X" if upper else "02x"))
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_bytes(self, b: bytes | bytearray, verb: str, depth: int) -> None:
        if verb in "vd":
            self.buf.append("[")
            for i, c in enumerate(b):
                if i:
                    self.buf.append(" ")
                self.fmt_integer(c, 10, verb)
            self.buf.append("]")
        elif verb == "s":
            self.pad(self._truncate(V.bytes_str(bytes(b))))
        elif verb in "xX":
            self.fmt_sbx(bytes(b), verb == "X")
        elif verb == "q":
            self.fmt_q(V.bytes_str(bytes(b)))
        else:
            self.print_list(list(b), verb, depth)

    def bad_verb(self, verb: str, arg: Any) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if arg is None:
            self.buf.append("<nil>")
        else:
            self.buf.append(V.type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")
        self.erroring = False

    # ---- composite values ----------------------------------------------------------------------
    def handle_methods(self, arg: Any, verb: str) -> bool:
        if self.erroring or self.sharp_v or verb not in "vsxXq":
            return False
        go_str = getattr(arg, "__go_str__", None)
        if go_str is None:
            return False
        self.fmt_string(go_str(), verb)
        return True

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None or arg is V.NO_VALUE:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.pad(V.type_name(arg))
            return
        self.print_value(arg, verb, 0)

    def print_value(self, v: Any, verb: str, depth: int) -> None:
        if self.handle_methods(v, verb):
            return
        k = V.kind(v)
        if k in (V.NIL, V.INVALID):
            if verb == "v" or depth > 0:
                self.buf.append("<nil>")
            else:
                self.bad_verb(verb, None)
        elif k == V.BOOL:
            self.fmt_bool(v, verb)
        elif k == V.INT:
            self.fmt_int(v, verb)
        elif k == V.FLOAT:
            self.fmt_float(v, verb)
        elif k == V.COMPLEX:
            self.fmt_complex(v, verb)
        elif k == V.STRING:
            self.fmt_string(v, verb)
        elif k == V.SLICE:
            if isinstance(v, bytes | bytearray):
                self.fmt_bytes(v, verb, depth)
            else:
                self.print_list(v, verb, depth)
        elif k == V.MAP:
            self.buf.append("map[")
            for i, (key, val) in enumerate(V.sorted_items(v)):
                if i:
                    self.buf.append(" ")
                self.print_value(key, verb, depth + 1)
                self.buf.append(":")
                self.print_value(val, verb, depth + 1)
            self.buf.append("]")
        elif k == V.PTR:
            if verb == "v":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, v)
        elif k == V.FUNC:
            self.buf.append("0xc000000000" if verb == "v" else "%!" + verb + "(func)")
        else:
            self.print_struct(v, verb, depth)

    def print_list(self, v: Any, verb: str, depth: int) -> None:
        self.buf.append("[")
        for i, item in enumerate(v):
            if i:
                self.buf.append(" ")
            self.print_value(item, verb, depth + 1)
        self.buf.append("]")

    def print_struct(self, v: Any, verb: str, depth: int) -> None:
        if getattr(v, "go_pointer", False) and not (depth == 0 and self.deref):
            if depth > 0:
                self.buf.append("0xc000010000")
                return
            self.buf.append("&")
        self.buf.append("{")
        for i, (name, val) in enumerate(V.struct_fields(v)):
            if i:
                self.buf.append(" ")
            if self.plus_v:
                self.buf.append(name + ":")
            self.print_value(val, verb, depth + 1)
        self.buf.append("}")

    # ---- entry points --------------------------------------------------------------------------
def _rune(v: int) -> str:
    if v < 0 or v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
        return "\ufffd"
    return chr(v)


def sprint(*args: Any) -> str:
    p = _Printer()
    prev_string = False
    for n, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if n > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(arg, "v")
        prev_string = is_string
    return "".join(p.buf)


def fprint_value(arg: Any) -> str:
    """What a template action prints for a value: fmt.Print of it, pointers dereferenced."""
    p = _Printer()
    p.deref = True
    p.print_arg(arg, "v")
    return "".join(p.buf)


def sprintln(*args: Any) -> str:
    p = _Printer()
    for n, arg in enumerate(args):
        if n:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)


def is_nan_or_inf(f: float) -> bool:
    return math.isnan(f) or math.isinf(f)
