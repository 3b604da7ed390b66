"""Go's fmt.Sprintf: parsing the format string (flags, width, precision, argument indexes)."""

from __future__ import annotations

from typing import Any

from . import values as V
from .gofmt import _Printer, _too_large


def do_printf(self: _Printer, fmt: str, args: list[Any]) -> None:
    end = len(fmt)
    arg_num = 0
    after_index = False
    self.reordered = False
    i = 0
    while i < end:
        self.good_arg_num = True
        j = fmt.find("%", i)
        if j < 0:
            self.buf.append(fmt[i:])
            break
        if j > i:
            self.buf.append(fmt[i:j])
        i = j + 1
        self.clear_flags()
        while i < end and fmt[i] in "#0+- ":
            c = fmt[i]
            if c == "#":
                self.sharp = True
            elif c == "0":
                self.zero = not self.minus
            elif c == "+":
                self.plus = True
            elif c == "-":
                self.minus, self.zero = True, False
            else:
                self.space = True
            i += 1
        arg_num, i, after_index = _arg_number(self, arg_num, fmt, i, len(args))
        if i < end and fmt[i] == "*":
            i += 1
            self.wid, self.wid_present, arg_num = _int_from_arg(args, arg_num)
            if not self.wid_present:
                self.buf.append("%!(BADWIDTH)")
            if self.wid < 0:
                self.wid, self.minus, self.zero = -self.wid, True, False
            after_index = False
        else:
            self.wid, self.wid_present, i = _parsenum(fmt, i, end)
            if after_index and self.wid_present:
                self.good_arg_num = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                self.good_arg_num = False
            arg_num, i, after_index = _arg_number(self, arg_num, fmt, i, len(args))
            if i < end and fmt[i] == "*":
                i += 1
                self.prec, self.prec_present, arg_num = _int_from_arg(args, arg_num)
                if self.prec < 0:
                    self.prec, self.prec_present = 0, False
                if not self.prec_present:
                    self.buf.append("%!(BADPREC)")
                after_index = False
            else:
                self.prec, self.prec_present, i = _parsenum(fmt, i, end)
                if not self.prec_present:
                    self.prec, self.prec_present = 0, True
        if not after_index:
            arg_num, i, after_index = _arg_number(self, arg_num, fmt, i, len(args))
        if i >= end:
            self.buf.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            self.buf.append("%")
        elif not self.good_arg_num:
            self.buf.append("%!" + verb + "(BADINDEX)")
        elif arg_num >= len(args):
            self.buf.append("%!" + verb + "(MISSING)")
        else:
            if verb == "v":
                self.sharp_v, self.sharp = self.sharp, False
                self.plus_v, self.plus = self.plus, False
            self.print_arg(args[arg_num], verb)
            arg_num += 1
    if not self.reordered and arg_num < len(args):
        self.clear_flags()
        self.buf.append("%!(EXTRA ")
        for n, arg in enumerate(args[arg_num:]):
            if n:
                self.buf.append(", ")
            if arg is None:
                self.buf.append("<nil>")
            else:
                self.buf.append(V.type_name(arg) + "=")
                self.print_arg(arg, "v")
        self.buf.append(")")

def _arg_number(self: _Printer, arg_num: int, fmt: str, i: int, num_args: int) -> tuple[int, int, bool]:
    if len(fmt) <= i or fmt[i] != "[":
        return arg_num, i, False
    self.reordered = True
    index, wid, ok = _parse_arg_number(fmt[i:])
    if ok and 0 <= index < num_args:
        return index, i + wid, True
    self.good_arg_num = False
    return arg_num, i + wid, ok


def _parsenum(s: str, start: int, end: int) -> tuple[int, bool, int]:
    if start >= end:
        return 0, False, end
    num, isnum, i = 0, False, start
    while i < end and "0" <= s[i] <= "9":
        if _too_large(num):
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def _parse_arg_number(fmt: str) -> tuple[int, int, bool]:
    if len(fmt) < 3:
        return 0, 1, False
    for i in range(1, len(fmt)):
        if fmt[i] == "]":
            width, ok, newi = _parsenum(fmt, 1, i)
            if not ok or newi != i:
                return 0, i + 1, False
            return width - 1, i + 1, True
    return 0, 1, False


def _int_from_arg(args: list[Any], arg_num: int) -> tuple[int, bool, int]:
    if arg_num >= len(args):
        return 0, False, arg_num
    a = args[arg_num]
    if isinstance(a, int) and not isinstance(a, bool) and not _too_large(a):
        return a, True, arg_num + 1
    return 0, False, arg_num + 1


def sprintf(fmt: str, *args: Any) -> str:
    p = _Printer()
    do_printf(p, fmt, list(args))
    return "".join(p.buf)
