"""The environment a runner process gets (server side; no engine imports)."""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

_OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)


def find_openblas() -> str | None:
    override = os.environ.get("OLLMLX_OPENBLAS")
    if override is not None:
        return override or None  # empty: explicitly disabled
    for path in _OPENBLAS_CANDIDATES:
        if Path(path).is_file():
            return path
    name = ctypes.util.find_library("openblas")
    return name


def runner_env(engine: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # a native crash (segfault, abort) prints the runner's Python stacks to stderr, which the
    # server captures: the crash explains itself in the server log and the client's error
    env.setdefault("PYTHONFAULTHANDLER", "1")
    # The runner must import this very ollmlx, also when it runs from a source checkout.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    if engine == "mlx":
        # mlx-cuda plans a cuDNN attention graph for every new (prompt, context) length: 40-60 ms
        # on the first request at each length, i.e. on nearly every request of a chat server. Its
        # own kernels serve any length; with them a warm turn 2 and batched serving are faster
        # on an H100 (bench/RESULTS.md). Only the CUDA backend reads this; set it to 1 to keep cuDNN.
        env.setdefault("MLX_CUDA_USE_CUDNN_SDPA", "0")
    if engine == "mlx" and sys.platform.startswith("linux") and env.get("OLLMLX_MLX_DEVICE") != "gpu":
        # mlx's Linux CPU wheel ships reference BLAS; OpenBLAS is ~50x faster for its matmuls.
        blas = find_openblas()
        if blas:
            env["LD_PRELOAD"] = " ".join(p for p in (blas, env.get("LD_PRELOAD", "")) if p)
            env["OLLMLX_BLAS"] = blas
    return env


if __name__ == "__main__":
    # `eval "$(python -m ollmlx.runner.env)"`: a shell (the test script) gets what a runner gets, for
    # processes that load an engine themselves.
    import shlex

    _env = runner_env("mlx")
    for _key in ("LD_PRELOAD", "OLLMLX_BLAS"):
        if _key in _env:
            print(f"export {_key}={shlex.quote(_env[_key])}")
