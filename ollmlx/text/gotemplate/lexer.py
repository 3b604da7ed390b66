"""Lexer for Go text/template (mirrors text/template/parse/lex.go)."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from .strconv import quote


class T(enum.IntEnum):
    """Item types, in Go's order (keywords after KEYWORD)."""

    ERROR = 0
    BOOL = enum.auto()
    CHAR = enum.auto()
    CHAR_CONSTANT = enum.auto()
    COMMENT = enum.auto()
    COMPLEX = enum.auto()
    ASSIGN = enum.auto()
    DECLARE = enum.auto()
    EOF = enum.auto()
    FIELD = enum.auto()
    IDENTIFIER = enum.auto()
    LEFT_DELIM = enum.auto()
    LEFT_PAREN = enum.auto()
    NUMBER = enum.auto()
    PIPE = enum.auto()
    RAW_STRING = enum.auto()
    RIGHT_DELIM = enum.auto()
    RIGHT_PAREN = enum.auto()
    SPACE = enum.auto()
    STRING = enum.auto()
    TEXT = enum.auto()
    VARIABLE = enum.auto()
    KEYWORD = enum.auto()
    BLOCK = enum.auto()
    BREAK = enum.auto()
    CONTINUE = enum.auto()
    DOT = enum.auto()
    DEFINE = enum.auto()
    ELSE = enum.auto()
    END = enum.auto()
    IF = enum.auto()
    NIL = enum.auto()
    RANGE = enum.auto()
    TEMPLATE = enum.auto()
    WITH = enum.auto()


KEYWORDS = {
    ".": T.DOT, "block": T.BLOCK, "break": T.BREAK, "continue": T.CONTINUE, "define": T.DEFINE,
    "else": T.ELSE, "end": T.END, "if": T.IF, "range": T.RANGE, "nil": T.NIL,
    "template": T.TEMPLATE, "with": T.WITH,
}

SPACE_CHARS = " \t\r\n"


@dataclass(slots=True)
class Item:
    typ: T
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == T.EOF:
            return "EOF"
        if self.typ == T.ERROR:
            return self.val
        if self.typ > T.KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def is_space(c: str) -> bool:
    return c != "" and c in SPACE_CHARS


def is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


def fmt_sharp_u(c: str) -> str:
    """Go's %#U."""
    s = f"U+{ord(c):04X}"
    return s + f" '{c}'" if c.isprintable() else s


class _LexError(Exception):
    def __init__(self, msg: str, pos: int) -> None:
        self.msg, self.pos = msg, pos


class Lexer:
    def __init__(self, text: str, left: str = "{{", right: str = "}}",
                 break_ok: bool = True, continue_ok: bool = True) -> None:
        self.input = text
        self.left = left or "{{"
        self.right = right or "}}"
        self.break_ok, self.continue_ok = break_ok, continue_ok
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._items = self._run()
        self._done = False

    def line_at(self, pos: int) -> int:
        return 1 + bisect.bisect_left(self._newlines, pos)

    def next_item(self) -> Item:
        if not self._done:
            try:
                return next(self._items)
            except StopIteration:
                self._done = True
        return Item(T.EOF, len(self.input), "", self.line_at(len(self.input)))

    def _item(self, typ: T, start: int, end: int) -> Item:
        return Item(typ, start, self.input[start:end], self.line_at(start))

    def _run(self) -> Iterator[Item]:
        try:
            yield from self._lex()
        except _LexError as e:
            yield Item(T.ERROR, e.pos, e.msg, self.line_at(e.pos))
            self._done = True

    # ---- helpers -------------------------------------------------------------------------------
    def _has_left_trim(self, pos: int) -> bool:
        s = self.input
        return pos + 1 < len(s) and s[pos] == "-" and is_space(s[pos + 1])

    def _at_right_delim(self, pos: int) -> tuple[bool, bool]:
        s = self.input
        if pos + 1 < len(s) and is_space(s[pos]) and s[pos + 1] == "-" and s.startswith(self.right, pos + 2):
            return True, True
        return s.startswith(self.right, pos), False

    def _left_trim_length(self, pos: int) -> int:
        s = self.input
        end = pos
        while end < len(s) and s[end] in SPACE_CHARS:
            end += 1
        return end - pos

    def _at_terminator(self, pos: int) -> bool:
        c = self.input[pos : pos + 1]
        if c == "" or is_space(c) or c in ".,|:)(":
            return True
        return self.input.startswith(self.right, pos)

    # ---- states --------------------------------------------------------------------------------
    def _lex(self) -> Iterator[Item]:
        s, n = self.input, len(self.input)
        pos = 0
        while True:
            x = s.find(self.left, pos)
            if x < 0:
                if pos < n:
                    yield self._item(T.TEXT, pos, n)
                yield Item(T.EOF, n, "", self.line_at(n))
                return
            text_end = x
            if self._has_left_trim(x + len(self.left)):
                text_end = pos + len(s[pos:x].rstrip(SPACE_CHARS))
            if text_end > pos:
                yield self._item(T.TEXT, pos, text_end)
            pos = x + len(self.left)
            after = 2 if self._has_left_trim(pos) else 0
            if s.startswith("/*", pos + after):
                pos = self._lex_comment(pos + after)
                continue
            yield Item(T.LEFT_DELIM, x, self.left, self.line_at(x))
            pos += after
            pos = yield from self._lex_action(pos)

    def _lex_comment(self, start: int) -> int:
        end = self.input.find("*/", start + 2)
        if end < 0:
            raise _LexError("unclosed comment", start)
        pos = end + 2
        delim, trim = self._at_right_delim(pos)
        if not delim:
            raise _LexError("comment ends before closing delimiter", start)
        if trim:
            pos += 2
        pos += len(self.right)
        if trim:
            pos += self._left_trim_length(pos)
        return pos

    def _lex_action(self, pos: int) -> Generator[Item, None, int]:
        s, n = self.input, len(self.input)
        depth = 0
        while True:
            delim, trim = self._at_right_delim(pos)
            if delim:
                if depth == 0:
                    if trim:
                        pos += 2
                    yield Item(T.RIGHT_DELIM, pos, self.right, self.line_at(pos))
                    pos += len(self.right)
                    if trim:
                        pos += self._left_trim_length(pos)
                    return pos
                raise _LexError("unclosed left paren", pos)
            start = pos
            if pos >= n:
                raise _LexError("unclosed action", start)
            c = s[pos]
            pos += 1
            if is_space(c):
                pos -= 1
                num = 0
                while pos < n and is_space(s[pos]):
                    pos += 1
                    num += 1
                if self._at_right_delim(pos - 1) == (True, True):
                    pos -= 1
                    if num == 1:
                        continue
                yield self._item(T.SPACE, start, pos)
            elif c == "=":
                yield self._item(T.ASSIGN, start, pos)
            elif c == ":":
                if s[pos : pos + 1] != "=":
                    raise _LexError("expected :=", start)
                pos += 1
                yield self._item(T.DECLARE, start, pos)
            elif c == "|":
                yield self._item(T.PIPE, start, pos)
            elif c == '"':
                pos = self._scan_quote(start, pos, '"', "unterminated quoted string")
                yield self._item(T.STRING, start, pos)
            elif c == "`":
                end = s.find("`", pos)
                if end < 0:
                    raise _LexError("unterminated raw quoted string", start)
                pos = end + 1
                yield self._item(T.RAW_STRING, start, pos)
            elif c == "'":
                pos = self._scan_quote(start, pos, "'", "unterminated character constant")
                yield self._item(T.CHAR_CONSTANT, start, pos)
            elif c == "$":
                if self._at_terminator(pos):
                    yield self._item(T.VARIABLE, start, pos)
                else:
                    pos = self._scan_word(pos)
                    yield self._item(T.VARIABLE, start, pos)
            elif c == "." and pos < n and not "0" <= s[pos] <= "9":
                if self._at_terminator(pos):
                    yield self._item(T.DOT, start, pos)
                else:
                    pos = self._scan_word(pos)
                    yield self._item(T.FIELD, start, pos)
            elif c in "+-." or "0" <= c <= "9":
                pos, typ = self._lex_number(start)
                yield self._item(typ, start, pos)
            elif is_alnum(c):
                while pos < n and is_alnum(s[pos]):
                    pos += 1
                if not self._at_terminator(pos):
                    raise _LexError(f"bad character {fmt_sharp_u(s[pos])}", start)
                yield self._item(self._word_type(s[start:pos]), start, pos)
            elif c == "(":
                depth += 1
                yield self._item(T.LEFT_PAREN, start, pos)
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise _LexError("unexpected right paren", start)
                yield self._item(T.RIGHT_PAREN, start, pos)
            elif ord(c) < 0x80 and c.isprintable():
                yield self._item(T.CHAR, start, pos)
            else:
                raise _LexError(f"unrecognized character in action: {fmt_sharp_u(c)}", start)

    def _word_type(self, word: str) -> T:
        kw = KEYWORDS.get(word)
        if kw is not None and kw > T.KEYWORD:
            if (kw == T.BREAK and not self.break_ok) or (kw == T.CONTINUE and not self.continue_ok):
                return T.IDENTIFIER
            return kw
        if word in ("true", "false"):
            return T.BOOL
        return T.IDENTIFIER

    def _scan_word(self, pos: int) -> int:
        s = self.input
        start = pos
        while pos < len(s) and is_alnum(s[pos]):
            pos += 1
        if not self._at_terminator(pos):
            raise _LexError(f"bad character {fmt_sharp_u(s[pos])}", start - 1)
        return pos

    def _scan_quote(self, start: int, pos: int, q: str, msg: str) -> int:
        s, n = self.input, len(self.input)
        while True:
            c = s[pos] if pos < n else ""
            pos += 1
            if c == "\\":
                c2 = s[pos] if pos < n else ""
                pos += 1
                if c2 not in ("", "\n"):
                    continue
                raise _LexError(msg, start)
            if c in ("", "\n"):
                raise _LexError(msg, start)
            if c == q:
                return pos

    def _lex_number(self, start: int) -> tuple[int, T]:
        ok, pos = self._scan_number(start)
        if not ok:
            raise _LexError(f"bad number syntax: {quote(self.input[start:pos])}", start)
        if self.input[pos : pos + 1] in ("+", "-"):
            ok, pos = self._scan_number(pos)
            if not ok or self.input[pos - 1] != "i":
                raise _LexError(f"bad number syntax: {quote(self.input[start:pos])}", start)
            return pos, T.COMPLEX
        return pos, T.NUMBER

    def _scan_number(self, pos: int) -> tuple[bool, int]:
        s = self.input

        def accept(valid: str) -> bool:
            nonlocal pos
            if pos < len(s) and s[pos] in valid:
                pos += 1
                return True
            return False

        def accept_run(valid: str) -> None:
            while accept(valid):
                pass

        accept("+-")
        digits = "0123456789_"
        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        accept_run(digits)
        if accept("."):
            accept_run(digits)
        if len(digits) == 11 and accept("eE"):
            accept("+-")
            accept_run("0123456789_")
        if len(digits) == 23 and accept("pP"):
            accept("+-")
            accept_run("0123456789_")
        accept("i")
        if pos < len(s) and is_alnum(s[pos]):
            return False, pos + 1
        return True, pos
