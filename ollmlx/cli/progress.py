"""Progress display for long work (create, pull): a status line per step, and for steps with a
total a bar like Ollama's (`pulling 1a2b3c... 45% ▕████    ▏ 44 MB/98 MB`). On a non-TTY each
status is printed once, so logs stay readable."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ollmlx.cli.humanize import human_bytes

BAR_WIDTH = 25


class Progress:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.current: str | None = None
        self.started: dict[str, float] = {}
        self.last_draw = 0.0

    def _bar(self, status: str, completed: int, total: int) -> str:
        frac = min(1.0, completed / total) if total else 0.0
        filled = int(frac * BAR_WIDTH)
        start = self.started.setdefault(status, time.monotonic())
        rate = completed / max(1e-6, time.monotonic() - start)
        rate_s = f" {human_bytes(int(rate))}/s" if completed < total and rate > 0 else ""
        return (f"{status} {int(frac * 100):3d}% ▕{'█' * filled}{' ' * (BAR_WIDTH - filled)}▏ "
                f"{human_bytes(completed)}/{human_bytes(total)}{rate_s}")

    def update(self, obj: dict[str, Any]) -> None:
        status = str(obj.get("status", ""))
        total = int(obj.get("total") or 0)
        completed = int(obj.get("completed") or 0)
        line = self._bar(status, completed, total) if total else status
        if self.tty:
            now = time.monotonic()
            if status == self.current and total and completed < total and now - self.last_draw < 0.1:
                return
            self.last_draw = now
            if status != self.current and self.current is not None:
                self.out.write("\n")
            self.out.write("\r\x1b[K" + line)
        elif status != self.current and (not total or completed >= total):
            self.out.write(line + "\n")
        elif status != self.current:
            return  # on a non-TTY, a step with a total is printed once, when complete
        self.current = status
        self.out.flush()

    def done(self) -> None:
        if self.tty and self.current is not None:
            self.out.write("\n")
            self.out.flush()
        self.current = None
