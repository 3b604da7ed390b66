"""Go's JSON scanner and base64 decoder, for their exact error texts (spec §0).

`scan` finds the first JSON value of a body like json.Decoder does (trailing bytes after an
object are never read) and raises `GoSyntaxError` with the message Go's scanner gives
("invalid character 'x' looking for beginning of value", "unexpected EOF"). `base64_error` is
encoding/base64's StdEncoding.Decode verdict on a `[]byte` field ("illegal base64 data at input
byte N").
"""

from __future__ import annotations

import re

from ollmlx.options import go_quote

# -- the scanner ----------------------------------------------------------------------------------

_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
# a run of string bytes that need no look (no quote, backslash or control byte): skipped in one C
# call, so a long message or a base64 image costs microseconds, not a Python step per byte
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]+')
_SPACES = re.compile(rb"[ \t\r\n]+")


class GoSyntaxError(ValueError):
    """Go's *json.SyntaxError (or io.ErrUnexpectedEOF from a json.Decoder)."""


class _EOF(Exception):
    pass


def _quote_char(c: int) -> str:
    """encoding/json quoteChar: the offending byte as Go prints it."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


def _syntax(c: int, context: str) -> GoSyntaxError:
    return GoSyntaxError(f"invalid character {_quote_char(c)} {context}")


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def peek(self) -> int:
        if self.i >= len(self.data):
            raise _EOF
        return self.data[self.i]

    def skip_space(self) -> int:
        m = _SPACES.match(self.data, self.i)
        if m:
            self.i = m.end()
        return self.peek()

    def value(self, c: int) -> None:
        """One value starting at byte c (already known not to be space)."""
        if c == ord("{"):
            self.i += 1
            c = self.skip_space()
            if c == ord("}"):
                self.i += 1
                return
            while True:
                if c != ord('"'):
                    raise _syntax(c, "looking for beginning of object key string")
                self.string()
                c = self.skip_space()
                if c != ord(":"):
                    raise _syntax(c, "after object key")
                self.i += 1
                c = self.skip_space()
                self.value(c)
                c = self.skip_space()
                if c == ord(","):
                    self.i += 1
                    c = self.skip_space()
                    continue
                if c == ord("}"):
                    self.i += 1
                    return
                raise _syntax(c, "after object key:value pair")
        if c == ord("["):
            self.i += 1
            c = self.skip_space()
            if c == ord("]"):
                self.i += 1
                return
            while True:
                self.value(c)
                c = self.skip_space()
                if c == ord(","):
                    self.i += 1
                    c = self.skip_space()
                    continue
                if c == ord("]"):
                    self.i += 1
                    return
                raise _syntax(c, "after array element")
        if c == ord('"'):
            self.string()
            return
        if c == ord("-") or c in _DIGITS:
            self.number()
            return
        for word in ("true", "false", "null"):
            if c == ord(word[0]):
                self.i += 1
                for expect in word[1:]:
                    got = self.peek()
                    if got != ord(expect):
                        raise _syntax(got, f"in literal {word} (expecting {_quote_char(ord(expect))})")
                    self.i += 1
                return
        raise _syntax(c, "looking for beginning of value")

    def string(self) -> None:
        self.i += 1  # the opening quote
        while True:
            m = _PLAIN.match(self.data, self.i)
            if m:
                self.i = m.end()
            c = self.peek()
            self.i += 1
            if c == ord('"'):
                return
            if c == ord("\\"):
                e = self.peek()
                self.i += 1
                if e == ord("u"):
                    for _ in range(4):
                        h = self.peek()
                        if h not in _HEX:
                            raise _syntax(h, "in \\u hexadecimal character escape")
                        self.i += 1
                elif e not in b'"\\/bfnrt':
                    raise _syntax(e, "in string escape code")
            elif c < 0x20:
                raise _syntax(c, "in string literal")

    def _digits(self) -> None:
        while self.i < len(self.data) and self.data[self.i] in _DIGITS:
            self.i += 1

    def number(self) -> None:
        if self.peek() == ord("-"):
            self.i += 1
            c = self.peek()
            if c not in _DIGITS:
                raise _syntax(c, "in numeric literal")
        if self.peek() == ord("0"):
            self.i += 1
        else:
            self._digits()
        if self.i < len(self.data) and self.data[self.i] == ord("."):
            self.i += 1
            c = self.peek()
            if c not in _DIGITS:
                raise _syntax(c, "after decimal point in numeric literal")
            self._digits()
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            self.i += 1
            c = self.peek()
            if c in b"+-":
                self.i += 1
                c = self.peek()
            if c not in _DIGITS:
                raise _syntax(c, "in exponent of numeric literal")
            self._digits()


def scan(data: bytes) -> bytes | None:
    """The bytes of the first JSON value in `data` (None for an empty/blank body), or
    GoSyntaxError with Go's message. A number or literal ending the body is complete at EOF."""
    s = _Scanner(data)
    try:
        c = s.skip_space()
    except _EOF:
        return None
    start = s.i
    try:
        s.value(c)
    except _EOF:
        raise GoSyntaxError("unexpected EOF") from None
    return data[start:s.i]



# -- base64 (encoding/base64 StdEncoding.Decode, for []byte fields) ---------------------------

_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(src: bytes) -> str | None:
    """Go's `illegal base64 data at input byte N`, or None when `src` decodes."""
    si = 0
    n = len(src)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return f"illegal base64 data at input byte {si - j}"
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in b"\r\n":
                continue
            if c != ord("="):
                return f"illegal base64 data at input byte {si - 1}"
            if j in (0, 1):
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:
                while si < n and src[si] in b"\r\n":
                    si += 1
                if si == n:
                    return f"illegal base64 data at input byte {n}"
                if src[si] != ord("="):
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < n and src[si] in b"\r\n":
                si += 1
            if si < n:
                return f"illegal base64 data at input byte {si}"
            return None
    return None
