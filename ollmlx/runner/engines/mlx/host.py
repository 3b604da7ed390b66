"""Make MLX as fast as it can be on this host, and say what was chosen.

On Linux CPUs the mlx wheel's bundled reference BLAS is ~50x slower than OpenBLAS; the server
preloads OpenBLAS into the runner's environment when present (see runner/env.py), and here we
pick the weight layout: dense float32 through BLAS beats MLX's scalar quantized CPU kernels.
"""

from __future__ import annotations

import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx.build import dequantize_for_cpu


def device_name() -> str:
    return "gpu" if mx.default_device() == mx.gpu else "cpu"


def tune_for_host(model: nn.Module) -> dict[str, Any]:
    details: dict[str, Any] = {"device": device_name()}
    blas = os.environ.get("OLLMLX_BLAS", "")
    details["blas"] = blas or "bundled"
    if device_name() == "cpu":
        layout = os.environ.get("OLLMLX_CPU_WEIGHTS", "auto")
        if layout == "auto":
            layout = "float32" if blas else "quantized"
        if layout == "float32":
            n = dequantize_for_cpu(model, mx.float32)
            details["weights"] = f"float32 (dequantized {n} layers for BLAS)" if n else "float32"
        else:
            details["weights"] = "as stored"
    else:
        details["weights"] = "as stored"
    return details


def memory_bytes() -> int:
    try:
        return int(mx.get_active_memory())
    except AttributeError:  # older mlx
        return int(mx.metal.get_active_memory())
