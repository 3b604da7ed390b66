"""`python -m ollmlx.runner --engine mlx|llamacpp --spec FILE --socket PATH`: one model, one process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from ollmlx.runner.engine_api import Engine
from ollmlx.runner.protocol import ModelSpec
from ollmlx.runner.server import RunnerState, build_app

SWITCH_INTERVAL = 0.0005  # seconds


def _die_with_parent(parent_pid: int) -> None:
    """Exit when the server goes away, even by SIGKILL: a runner never outlives its server."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def make_factory(engine: str, spec: ModelSpec, num_ctx: int, parallel: int,
                 group: Any = None) -> Callable[[], Engine]:
    def factory() -> Engine:
        if engine == "mlx":
            from ollmlx.runner.engines.mlx.runner_engine import MLXRunnerEngine

            return MLXRunnerEngine(spec, num_ctx, parallel, group)
        if engine == "llamacpp":
            from ollmlx.runner.engines.llamacpp.runner_engine import LlamaCppRunnerEngine

            return LlamaCppRunnerEngine(spec, num_ctx, parallel)
        raise ValueError(f"unknown engine {engine!r}")

    return factory


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ollmlx.runner")
    p.add_argument("--engine", choices=["mlx", "llamacpp"], required=True)
    p.add_argument("--spec", required=True, help="JSON file with the ModelSpec")
    p.add_argument("--socket", required=True)
    p.add_argument("--num-ctx", type=int, default=0)
    p.add_argument("--parallel", type=int, default=0)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--debug", action="store_true")
    p.add_argument("--backend", help="run as a rank of an mx.distributed group (docs/distributed.md)")
    args = p.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s runner[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    # The engine thread holds the GIL for milliseconds while it builds a forward in Python; the HTTP
    # thread that sends the token just drawn waited for it up to Python's switch interval (5 ms).
    # At 0.5 ms a served warm turn's first token reached the server ~0.7 ms sooner (8B on an H100).
    sys.setswitchinterval(float(os.environ.get("OLLMLX_SWITCH_INTERVAL") or SWITCH_INTERVAL))
    group = None
    if args.backend:  # every rank starts here; rank 0 goes on to serve, the others follow it
        if args.engine != "mlx":
            p.error("--backend needs --engine mlx")
        from ollmlx.runner.engines.mlx.distributed import join, run_follower

        group = join(args.backend)
        if not group.leader:
            run_follower(group)
    spec = ModelSpec.model_validate_json(Path(args.spec).read_text())
    state = RunnerState(make_factory(args.engine, spec, args.num_ctx, args.parallel, group))
    state.load_in_background()
    Path(args.socket).unlink(missing_ok=True)
    uvicorn.run(build_app(state, args.socket), uds=args.socket, log_level="warning", timeout_graceful_shutdown=2)
    # Served and stopped: leave without the interpreter's teardown. With the engine thread still
    # holding MLX state it can abort there ("terminate called without an active exception", seen
    # in engine probes on an H100 and on a CPU). Nothing is left to save.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
