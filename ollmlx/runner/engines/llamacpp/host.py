"""llama.cpp settings for this host, and what was chosen (reported by the runner's /info)."""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import llama_cpp

log = logging.getLogger("ollmlx.runner.llamacpp.native")
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_last_level = [logging.INFO]
_errors: deque[str] = deque(maxlen=8)  # the last error lines: why a load or a decode failed


@llama_cpp.llama_log_callback
def _native_log(level: int, text: bytes, user_data: object) -> None:
    py_level = _last_level[0] if level == 5 else _LEVELS.get(level, logging.INFO)
    _last_level[0] = py_level
    line = text.decode(errors="replace").rstrip("\n")
    if line and py_level >= logging.ERROR:
        _errors.append(line.split(": ", 1)[-1])  # without the C function name
    if line and log.isEnabledFor(py_level):
        log.log(py_level, "%s", line)


def take_errors() -> list[str]:
    """The native error lines logged since the last call."""
    out = list(_errors)
    _errors.clear()
    return out


def quiet_native_logs() -> None:
    """llama.cpp writes every load detail to stderr by default: route it to logging, where only
    warnings show unless the runner runs with --debug."""
    llama_cpp.llama_log_set(_native_log, None)


def gpu_offload() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def cpu_has_amx() -> bool:
    try:
        return " amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def weight_repack() -> bool:
    """Whether llama.cpp may repack weights into its extra CPU buffer types.

    On CPUs with AMX the repack picks ggml's AMX buffer, and decoding then segfaults inside
    llama_decode (llama-cpp-python 0.3.36 wheel, seen on Sapphire Rapids VMs); elsewhere the
    repacked layouts are the fast path. OLLMLX_LLAMACPP_REPACK=1/0 overrides."""
    forced = os.environ.get("OLLMLX_LLAMACPP_REPACK", "").strip()
    if forced:
        return forced not in ("0", "false", "False")
    return not cpu_has_amx()


def threads() -> int:
    """Physical cores less one, at least one. ggml's threads meet at spinning barriers after every
    op: when another process takes a core (the server streaming tokens, anything else on the
    host), a thread waits a whole scheduler slice at each barrier. On a 2-core host under load,
    two threads decoded 4.4 tok/s where one thread kept 25-29 (docs/supported-models.md).
    OLLMLX_LLAMACPP_THREADS overrides."""
    forced = os.environ.get("OLLMLX_LLAMACPP_THREADS", "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    return max(1, physical_cores() - 1)


def physical_cores() -> int:
    """Cores this process may run on, hyperthread siblings counted once."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    try:
        for block in Path("/proc/cpuinfo").read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            if fields.get("processor", "").isdigit() and int(fields["processor"]) in allowed:
                cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
    except OSError:
        pass
    return max(1, len(cores) or len(allowed))


def details() -> dict[str, Any]:
    return {
        "device": "gpu" if gpu_offload() else "cpu",
        "threads": threads(),
        "weight_repack": weight_repack(),
        "llama_cpp_python": llama_cpp.__version__,
    }
