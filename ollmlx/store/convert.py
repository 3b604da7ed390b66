"""Run the conversion worker (an engine subprocess) for `create`: GGUF → MLX, MLX re-quantization,
GGUF quantization. Progress lines are relayed as create statuses."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from ollmlx import config
from ollmlx.errors import BadRequest, OllmlxError
from ollmlx.runner.env import runner_env

Progress = Callable[[dict[str, Any]], None]


class ConvertError(OllmlxError):
    status = 500


def run_worker(args: list[str], progress: Progress, status_map: Callable[[dict[str, Any]], dict[str, Any] | None]
               ) -> None:
    engine = "llamacpp" if args and args[0] == "quantize-gguf" else "mlx"
    proc = subprocess.Popen([config.runner_python(), "-m", "ollmlx.runner.engines.convert_worker", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=runner_env(engine))
    assert proc.stdout is not None and proc.stderr is not None
    error = None
    for line in proc.stdout:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "error" in obj:
            error = str(obj["error"])
            continue
        mapped = status_map(obj)
        if mapped:
            progress(mapped)
    stderr = proc.stderr.read()
    code = proc.wait()
    if code != 0:
        message = error or (stderr.strip().splitlines() or [f"conversion failed with code {code}"])[-1]
        if "only supported" in message or "unsupported" in message:
            raise BadRequest(message)
        raise ConvertError(message)
