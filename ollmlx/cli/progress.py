"""Progress on stderr like Ollama's progress package: a list of states (spinners and bars)
redrawn in place every 100 ms. A bar reads
`pulling 1a2b3c4d5e6f:  45% ▕████████        ▏  44 MB/ 98 MB  5.1 MB/s     10s`.

When stderr is not a terminal nothing is redrawn: each state is printed once, as it is when the
next one appears (or when progress stops), so logs stay readable.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import Protocol, TextIO

from ollmlx.cli.humanize import human_bytes

DEFAULT_TERM_WIDTH = 80
DEFAULT_TERM_HEIGHT = 24
SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class State(Protocol):
    def render(self, width: int) -> str: ...

    def finished(self) -> bool: ...


def _term_size(out: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(out.fileno())
        return size.columns, size.lines
    except (OSError, ValueError, AttributeError):
        fallback = shutil.get_terminal_size((DEFAULT_TERM_WIDTH, DEFAULT_TERM_HEIGHT))
        return fallback.columns, fallback.lines


def format_eta(seconds: float) -> str:
    """progress.formatDuration: at most two units, `99h+` beyond 100 hours."""
    if seconds >= 100 * 3600:
        return "99h+"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds // 60) % 60}m"
    s = round(seconds)
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def _rjust6(s: str) -> str:
    return " " * max(0, 6 - len(s)) + s


class Spinner:
    def __init__(self, message: str = "") -> None:
        self.message = message
        self.started = time.monotonic()
        self.stopped: float | None = None

    def stop(self) -> None:
        if self.stopped is None:
            self.stopped = time.monotonic()

    def finished(self) -> bool:
        return self.stopped is not None

    def render(self, width: int = DEFAULT_TERM_WIDTH) -> str:
        out = ""
        if self.message.strip():
            out = self.message.strip() + " "
        if self.stopped is None:
            frame = int((time.monotonic() - self.started) * 10) % len(SPINNER_FRAMES)
            out += SPINNER_FRAMES[frame] + " "
        return out


class Bar:
    """progress.Bar: percent, a bar filling the terminal, sizes, rate and time left."""

    MAX_BUCKETS = 10

    def __init__(self, message: str, total: int, initial: int = 0, clock: float | None = None) -> None:
        self.message = message
        self.total = total
        self.initial = initial
        self.current = initial
        self.started = time.monotonic() if clock is None else clock
        self.stopped: float | None = self.started if initial >= total else None
        self.buckets: list[tuple[float, int]] = []

    def set(self, value: int, clock: float | None = None) -> None:
        now = time.monotonic() if clock is None else clock
        value = min(value, self.total)
        self.current = value
        if value >= self.total and self.stopped is None:
            self.stopped = now
        # the rate is measured over buckets at most one per second, the last ten kept
        if not self.buckets or now - self.buckets[-1][0] > 1:
            self.buckets.append((now, value))
            self.buckets = self.buckets[-self.MAX_BUCKETS:]

    def finished(self) -> bool:
        return self.stopped is not None

    def percent(self) -> float:
        return self.current / self.total * 100 if self.total > 0 else 0.0

    def rate(self) -> float:
        if self.stopped is not None:
            num, den = self.current - self.initial, round(self.stopped - self.started)
        elif len(self.buckets) == 1:
            num, den = self.buckets[0][1] - self.initial, round(self.buckets[0][0] - self.started)
        elif self.buckets:
            (t0, v0), (t1, v1) = self.buckets[0], self.buckets[-1]
            num, den = v1 - v0, round(t1 - t0)
        else:
            return 0.0
        return num / den if den else 0.0

    def render(self, width: int = DEFAULT_TERM_WIDTH) -> str:
        pre = (self.message.strip() + " " if self.message else "") + f"{self.percent():3.0f}%"
        running = self.stopped is None
        if running:
            suf = _rjust6(human_bytes(self.current)) + "/" + _rjust6(human_bytes(self.total))
        else:
            suf = _rjust6(human_bytes(self.total)) + " " * 7
        rate = self.rate()
        if running and rate > 0:
            suf += "  " + _rjust6(human_bytes(int(rate))) + "/s"
            suf += "  " + _rjust6(format_eta(int((self.total - self.current) / rate)))
        else:
            suf += " " * 18
        free = width - len(pre) - len(suf) - 5
        n = int(free * self.percent() / 100)
        return pre + " ▕" + "█" * max(0, n) + " " * max(0, free - n) + "▏ " + suf


class Progress:
    """Draws states on stderr; `stop()` leaves them on screen, `stop_and_clear()` erases them."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.states: list[State] = []
        self.printed: set[int] = set()  # non-TTY: states already written
        self.pos = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        if self.tty:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

    def add(self, state: State) -> None:
        with self.lock:
            if not self.tty:
                self._print_pending()
            self.states.append(state)

    def _print_pending(self) -> None:
        for state in self.states:
            if id(state) in self.printed:
                continue
            self.printed.add(id(state))
            text = state.message.strip() if isinstance(state, Spinner) else state.render(DEFAULT_TERM_WIDTH)
            if text.strip():
                self.out.write(text.rstrip() + "\n")
        self.out.flush()

    def _loop(self) -> None:
        while not self.done.wait(0.1):
            with self.lock:
                self._render()

    def _render(self) -> None:
        width, height = _term_size(self.out)
        buf = ["\x1b[?2026h\x1b[?25l"]
        buf.append("\x1b[A" * max(0, self.pos - 1) + "\x1b[1G")
        shown = self.states[-height:] if height > 0 else self.states
        for i, state in enumerate(shown):
            buf.append(state.render(width) + "\x1b[K")
            if i < len(shown) - 1:
                buf.append("\n")
        buf.append("\x1b[?25h\x1b[?2026l")
        self.pos = len(shown)
        self.out.write("".join(buf))
        self.out.flush()

    def _stop(self) -> bool:
        """Stop the redraw thread, once. It is joined without holding the lock: it may be waiting
        for the lock to draw one more frame, and would never finish."""
        with self.lock:
            if self.done.is_set():
                return False
            self.done.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            for state in self.states:
                if isinstance(state, Spinner):
                    state.stop()
        return True

    def stop(self) -> None:
        if not self._stop():
            return
        with self.lock:
            if self.tty:
                if self.states:
                    self._render()
                    self.out.write("\n")
            else:
                self._print_pending()
            self.out.flush()

    def stop_and_clear(self) -> None:
        if not self._stop() or not self.tty:
            return
        with self.lock:
            buf = ["\x1b[?25l"]
            for i in range(self.pos):
                if i > 0:
                    buf.append("\x1b[A")
                buf.append("\x1b[2K\x1b[1G")
            buf.append("\x1b[?25h")
            self.out.write("".join(buf))
            self.out.flush()
