"""Ollama's human-readable numbers, sizes, times and durations (format/bytes.go, format/time.go,
format/format.go, api.Metrics.Summary), and the display width of text on a terminal."""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

from ollmlx.durations import format_go_duration_ns


def human_bytes(b: int) -> str:
    """format.HumanBytes: SI units; one decimal below 10 unless the value is whole."""
    for unit, div in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if b >= div:
            v = b / div
            if v >= 10 or v == math.trunc(v):
                return f"{int(v)} {unit}"
            return f"{v:.1f} {unit}"
    return f"{b} B"


def human_number(n: int) -> str:
    """format.HumanNumber: 135M, 1.5B, 2.25M, 12K."""
    if n >= 1_000_000_000:
        v = n / 1_000_000_000
        return f"{v:.0f}B" if v == math.floor(v) else f"{v:.1f}B"
    if n >= 1_000_000:
        v = n / 1_000_000
        return f"{v:.0f}M" if v == math.floor(v) else f"{v:.2f}M"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def human_duration(seconds_f: float) -> str:
    seconds = int(seconds_f)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(seconds_f / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds_f / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds_f / 3600) // 24 // 365} years"


def human_time(ts: float, zero: str = "Never", now: float | None = None) -> str:
    """format.HumanTime: "2 days ago", "4 minutes from now", "Forever" (> 20 years ahead)."""
    if ts <= 0:
        return zero
    delta = (time.time() if now is None else now) - ts
    # Go: int(delta.Hours())/24/365 truncates toward zero
    if int(int(delta / 3600) / 24 / 365) < -20:
        return "Forever"
    if delta < 0:
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def parse_timestamp(s: str) -> float:
    """An RFC 3339 timestamp as the server writes it (nanosecond fractions allowed) → epoch."""
    import datetime

    if not s or s.startswith("0001-01-01"):
        return 0.0
    s = s.replace("Z", "+00:00")
    if "." in s:  # Python wants at most 6 fractional digits
        head, _, rest = s.partition(".")
        n = len(rest) - len(rest.lstrip("0123456789"))
        digits, tz = rest[:n], rest[n:]
        s = f"{head}.{digits[:6]}{tz}"
    try:
        return datetime.datetime.fromisoformat(s).timestamp()
    except ValueError:
        return 0.0


def go_duration(ns: int) -> str:
    """Go's time.Duration String (``1.234567891s``, ``153.2ms``)."""
    return format_go_duration_ns(ns)


def metrics_summary(m: Mapping[str, Any]) -> str:
    """api.Metrics.Summary: the lines `--verbose` prints to stderr after a response."""
    out = []
    total, load = int(m.get("total_duration") or 0), int(m.get("load_duration") or 0)
    pc, pd = int(m.get("prompt_eval_count") or 0), int(m.get("prompt_eval_duration") or 0)
    ec, ed = int(m.get("eval_count") or 0), int(m.get("eval_duration") or 0)
    if total > 0:
        out.append(f"total duration:       {go_duration(total)}")
    if load > 0:
        out.append(f"load duration:        {go_duration(load)}")
    if pc > 0:
        out.append(f"prompt eval count:    {pc} token(s)")
    if pd > 0:
        out.append(f"prompt eval duration: {go_duration(pd)}")
        out.append(f"prompt eval rate:     {pc / (pd / 1e9):.2f} tokens/s")
    if ec > 0:
        out.append(f"eval count:           {ec} token(s)")
    if ed > 0:
        out.append(f"eval duration:        {go_duration(ed)}")
        out.append(f"eval rate:            {ec / (ed / 1e9):.2f} tokens/s")
    return "".join(line + "\n" for line in out)


def char_width(ch: str) -> int:
    """Cells a character takes on a terminal (go-runewidth's answer for common text)."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(s: str) -> int:
    return sum(char_width(ch) for ch in s)
