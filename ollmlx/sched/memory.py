"""Memory the scheduler may still fill (spec §18 fit check): OLLMLX_MAX_MEMORY less what the loaded
models are estimated to take, or else the host's available memory (unified memory on Apple
Silicon, RAM for CPU runners), of which Ollama plans to fill 80%."""

from __future__ import annotations

from collections.abc import Iterable

from ollmlx import config

HOST_SHARE = 0.8


def host_available() -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    return int(psutil.virtual_memory().available)


def room(loaded_estimates: Iterable[int]) -> int | None:
    """Bytes a new model may take now, or None when that is not known."""
    cap = config.max_memory_bytes()
    if cap > 0:
        return cap - sum(loaded_estimates)
    available = host_available()
    return None if available is None else int(available * HOST_SHARE)
