"""Fuzzing helpers shared by tests/fuzz: a hypothesis profile with a fixed budget, and per-example
guards for "no hang" (a wall-clock limit) and "bounded memory" (tracemalloc's peak).

OLLMLX_FUZZ_EXAMPLES raises the number of examples per property (CI: 150) for a longer run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tracemalloc
from collections.abc import Iterator

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ollmlx",
    max_examples=int(os.environ.get("OLLMLX_FUZZ_EXAMPLES", "150")),
    deadline=None,  # the wall-clock guard below is the hang check; hypothesis' deadline is flaky here
    database=None,  # nothing written into the checkout; a failure prints its reproducer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("ollmlx")


class Hang(Exception):
    """The code under test ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than `seconds`."""

    fired = []

    def on_alarm(signum: int, frame: object) -> None:
        fired.append(True)
        raise Hang(f"no result after {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:  # the alarm landed somewhere that swallowed it (a gc callback): still a hang
        raise Hang(f"no result after {seconds}s")


@contextlib.contextmanager
def memory_limit(max_bytes: int) -> Iterator[None]:
    """Fail if Python allocations (numpy's included) peak above `max_bytes` within the block."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= max_bytes, f"peak allocation {peak / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB"
