"""ollmlx's CPU kernels for mlx: the decode step's products, rotary embedding and attention.

Why they exist: on a CPU host, mlx's own kernels for these are its generic ones. Its quantized
product is scalar code, so the runner used to dequantize every weight to float32 for BLAS, which
streams 8x the bytes of 4-bit codes per decoded token. Its rope and attention are compositions of
a dozen ops each. On a 2-core host, SmolLM2-135M's decode step took 64-68 ms that way; these three
kernels (AVX2, OpenMP) take it to ~17 ms, 13.4 ms pipelined (bench/RESULTS.md).

They are an mlx C++ extension (mlx's documented way to add a primitive), built on first need or
at install (build.py), and each is checked against mlx's own op when a model loads (layers.py);
any failure leaves the model on the float32 layout, and /info says why.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from functools import cache
from types import ModuleType

from ollmlx.runner.engines.mlx.cpu_kernels.build import MODULE, BuildError, ensure_built, library_path

log = logging.getLogger("ollmlx.runner")

REQUIRED_FLAGS = ("avx2", "fma", "f16c")


def cpu_supports() -> str | None:
    """None when this CPU runs the kernels, else why not."""
    if sys.platform != "linux":
        return "not a Linux host"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "cannot read /proc/cpuinfo"
    missing = [flag for flag in REQUIRED_FLAGS if flag not in flags]
    return f"this CPU lacks {', '.join(missing)}" if missing else None


@cache
def load() -> tuple[ModuleType | None, str]:
    """The kernels' module (building it if needed) and "" or, when None, why it is unavailable."""
    if os.environ.get("OLLMLX_CPU_KERNELS", "1") == "0":
        return None, "off (OLLMLX_CPU_KERNELS=0)"
    reason = cpu_supports()
    if reason:
        return None, reason
    try:
        ensure_built()
    except (BuildError, OSError) as e:
        log.warning("ollmlx CPU kernels unavailable: %s", e)
        return None, f"not built: {e}"
    path = library_path()
    assert path is not None  # ensure_built returns once it is there
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:  # e.g. built against another mlx whose symbols moved
        return None, f"failed to load: {e}"
    return module, ""
