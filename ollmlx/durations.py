"""Go ``time.Duration`` parsing/formatting and Ollama's ``keep_alive`` rules (spec §8, §22).

Everything here mirrors Go's ``time.ParseDuration`` / ``Duration.String`` and Ollama's
``api.Duration.UnmarshalJSON`` / ``envconfig.KeepAlive`` so that error texts and the
serialised forms are byte-for-byte what Ollama produces.

Durations are exchanged as float seconds; ``math.inf`` stands for Ollama's "forever"
(``time.Duration(math.MaxInt64)``).  The ``*_ns`` variants work on exact integer
nanoseconds like Go does.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_LOAD_TIMEOUT",
    "MAX_DURATION_NS",
    "GoDurationError",
    "KeepAliveError",
    "env_var_value",
    "format_go_duration",
    "format_go_duration_ns",
    "go_type_name",
    "keep_alive_from_env",
    "keep_alive_to_json",
    "load_timeout_from_env",
    "parse_go_duration",
    "parse_go_duration_ns",
    "parse_keep_alive",
]

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

MAX_DURATION_NS = (1 << 63) - 1
MIN_DURATION_NS = -(1 << 63)

DEFAULT_KEEP_ALIVE = 300.0  # 5m
DEFAULT_LOAD_TIMEOUT = 300.0  # 5m

_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_LIMIT = 1 << 63


class GoDurationError(ValueError):
    """A string that Go's ``time.ParseDuration`` rejects; ``str()`` is Go's error text."""


class KeepAliveError(ValueError):
    """A ``keep_alive`` JSON value of an unsupported type (HTTP 400 in Ollama)."""


def _go_time_quote(s: str) -> str:
    """Go's ``time.quote``: non-ASCII and control bytes become ``\\xHH`` (per UTF-8 byte)."""
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ch < " ":
            for byte in ch.encode("utf-8", "surrogatepass"):
                out.append(f"\\x{byte:02x}")
        else:
            if ch in ('"', "\\"):
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def _invalid(orig: str) -> GoDurationError:
    return GoDurationError("time: invalid duration " + _go_time_quote(orig))


def _leading_int(s: str) -> tuple[int, str]:
    i = 0
    x = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > _LIMIT // 10:
            raise OverflowError
        x = x * 10 + ord(s[i]) - 48
        if x > _LIMIT:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    i = 0
    x = 0
    scale = 1.0
    overflow = False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if x > (_LIMIT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > _LIMIT:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration_ns(s: str) -> int:
    """Parse a Go duration string (``"1h30m"``, ``"-1.5s"``, ``"300ms"``) into nanoseconds.

    Raises :class:`GoDurationError` with Go's exact message, e.g.
    ``time: missing unit in duration "3600"`` or ``time: invalid duration "abc"``.
    """
    orig = s
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise _invalid(orig)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise _invalid(orig)
        before = len(s)
        try:
            v, s = _leading_int(s)
        except OverflowError:
            raise _invalid(orig) from None
        pre = before != len(s)
        post = False
        f, scale = 0, 1.0
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise _invalid(orig)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise GoDurationError("time: missing unit in duration " + _go_time_quote(orig))
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise GoDurationError(
                "time: unknown unit " + _go_time_quote(unit_name) + " in duration " + _go_time_quote(orig)
            )
        if v > _LIMIT // unit:
            raise _invalid(orig)
        v *= unit
        if f > 0:
            v += int(float(f) * (float(unit) / scale))
            if v > _LIMIT:
                raise _invalid(orig)
        total += v
        if total > _LIMIT:
            raise _invalid(orig)
    if neg:
        return -total
    if total > MAX_DURATION_NS:
        raise _invalid(orig)
    return total


def parse_go_duration(s: str) -> float:
    """Parse a Go duration string into float seconds (see :func:`parse_go_duration_ns`)."""
    return parse_go_duration_ns(s) / SECOND


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's ``fmtFrac``: the fraction ``v % 10**prec`` without trailing zeros."""
    digits: list[str] = []
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        v //= 10
    if printed:
        return "." + "".join(reversed(digits)), v
    return "", v


def format_go_duration_ns(ns: int) -> str:
    """Go's ``Duration.String()``: ``0s``, ``1.5µs``, ``300ms``, ``5m0s``, ``1h30m0s``."""
    ns = max(MIN_DURATION_NS, min(MAX_DURATION_NS, int(ns)))
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "µs"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        text = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        text = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            if u > 0:
                text = f"{u}h{text}"
    return "-" + text if neg else text


def _seconds_to_ns(seconds: float) -> int:
    if math.isnan(seconds):
        raise ValueError("duration is NaN")
    if seconds == math.inf:
        return MAX_DURATION_NS
    if seconds == -math.inf:
        return MIN_DURATION_NS
    ns = round(seconds * SECOND)
    return max(MIN_DURATION_NS, min(MAX_DURATION_NS, ns))


def format_go_duration(seconds: float) -> str:
    """Format float seconds like Go's ``Duration.String()`` (rounded to the nanosecond).

    ``math.inf`` formats as ``time.Duration(math.MaxInt64)``: ``2562047h47m16.854775807s``.
    """
    return format_go_duration_ns(_seconds_to_ns(seconds))


def go_type_name(value: Any) -> str:
    """The Go type name ``reflect.TypeOf`` reports for a JSON-decoded value."""
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def parse_keep_alive(value: Any) -> float | None:
    """Decode a request's ``keep_alive`` JSON value (Ollama's ``Duration.UnmarshalJSON``).

    * ``None`` (JSON null / absent) -> ``None``: leave the runner's duration unchanged.
    * number -> seconds (floats allowed); negative -> ``math.inf`` (forever).
    * string -> Go duration; negative -> ``math.inf``; errors raise :class:`GoDurationError`
      with Go's message (e.g. ``time: missing unit in duration "3600"``).
    * anything else -> :class:`KeepAliveError` ``Unsupported type: '<go type>'``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise KeepAliveError(f"Unsupported type: '{go_type_name(value)}'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # a JSON integer beyond float64: huge or negative -> forever
            return math.inf
        if math.isnan(seconds):
            raise KeepAliveError("Unsupported type: 'float64'")
        if seconds < 0:
            return math.inf
        # Go truncates t*1e9 to int64 nanoseconds; beyond MaxInt64 treat as forever.
        ns = seconds * SECOND
        if ns >= float(MAX_DURATION_NS):
            return math.inf
        return int(ns) / SECOND
    if isinstance(value, str):
        ns_value = parse_go_duration_ns(value)
        if ns_value < 0:
            return math.inf
        return ns_value / SECOND
    raise KeepAliveError(f"Unsupported type: '{go_type_name(value)}'")


def keep_alive_to_json(seconds: float) -> int | str:
    """Ollama's ``Duration.MarshalJSON``: negative -> ``-1``, else the Go duration string.

    Note Ollama stores "forever" as MaxInt64 (positive), which marshals as
    ``"2562047h47m16.854775807s"``; only explicitly negative values give ``-1``.
    """
    if seconds < 0:
        return -1
    return format_go_duration(seconds)


def env_var_value(value: str | None) -> str:
    """Ollama's ``envconfig.Var`` cleanup: trim whitespace, then surrounding quotes."""
    if value is None:
        return ""
    return value.strip().strip("\"'")


def _wrap_int64(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= (1 << 63) else n


def _env_duration_ns(value: str | None, default_ns: int) -> int:
    s = env_var_value(value)
    if not s:
        return default_ns
    try:
        return parse_go_duration_ns(s)
    except GoDurationError:
        pass
    body = s[1:] if s[:1] in ("+", "-") else s
    if body.isascii() and body.isdigit():
        n = int(s)
        if MIN_DURATION_NS <= n <= MAX_DURATION_NS:
            return _wrap_int64(n * SECOND)  # Go's Duration(n)*time.Second wraps on overflow
    return default_ns


def keep_alive_from_env(value: str | None) -> float:
    """``OLLAMA_KEEP_ALIVE``: a Go duration or bare integer seconds; negative = forever.

    Unset/empty/unparseable -> the 5m default.  Returns seconds (``math.inf`` = forever).
    """
    ns = _env_duration_ns(value, 5 * MINUTE)
    if ns < 0:
        return math.inf
    return ns / SECOND


def load_timeout_from_env(value: str | None) -> float:
    """``OLLAMA_LOAD_TIMEOUT``: like keep-alive, but zero or negative means infinite (default 5m)."""
    ns = _env_duration_ns(value, 5 * MINUTE)
    if ns <= 0:
        return math.inf
    return ns / SECOND
