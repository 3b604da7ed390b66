"""Where a lone stream's decode step goes on mlx-cuda: building the graph in Python, `async_eval`
(mlx encodes the step into CUDA graphs and launches them), and waiting for the token (`item`).
With --sleep-ms, a host-side pause after each `async_eval`: if the step time grows by the pause,
the host is the bound; if it stays, the GPU ran the step meanwhile. Run it under different
MLX_MAX_OPS_PER_BUFFER / MLX_USE_CUDA_GRAPHS to see what mlx-cuda's graph building costs.

    python bench/probe_eval_cost.py --model-dir /tmp/m8b [--fused] [--sleep-ms 0,2,4] [--prompt-len 40]
    (--fused takes OLLMLX_MLX_FUSED's mode: =whole for the whole step under one compile)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--sleep-ms", default="0")
    ap.add_argument("--prompt-len", type=int, default=40, help="context before the measured steps")
    ap.add_argument("--no-settle", action="store_true",
                    help="leave the model's and the fused kernels' constant arrays lazy (as before the fix)")
    args = ap.parse_args()
    os.environ.setdefault("MLX_CUDA_USE_CUDNN_SDPA", "0")  # as runners run (runner/env.py)
    import mlx.core as mx
    from mlx_lm.generate import generation_stream
    from mlx_lm.models.cache import make_prompt_cache

    from bench.mlx_engine_setup import load_model

    model, _, _ = load_model(args.model_dir)
    if args.no_settle:
        from ollmlx.runner.engines.mlx import cuda_kernels

        cuda_kernels.SETTLE = False
    else:
        from ollmlx.runner.engines.mlx.host import settle_constants

        settle_constants(model)
    prompt = mx.array([(13 * j) % 1000 + 10 for j in range(args.prompt_len)])
    out: dict[str, object] = {"env": {k: v for k, v in os.environ.items() if k.startswith("MLX_")},
                              "fused": args.fused and os.environ.get("OLLMLX_MLX_FUSED", "1"),
                              "settled": not args.no_settle, "prompt_len": args.prompt_len}
    for sleep_ms in [float(s) for s in args.sleep_ms.split(",")]:
        for _ in range(2):  # the first round builds kernels and graphs
            cache = make_prompt_cache(model)
            if args.fused:
                from ollmlx.runner.engines.mlx.fused_step import FusedDecoder

                dec = FusedDecoder(model, cache)

                def step(y: mx.array, dec: FusedDecoder = dec) -> mx.array:
                    return dec.forward(y)
            else:
                def step(y: mx.array, cache: list = cache) -> mx.array:  # type: ignore[type-arg]
                    return model(y[None], cache=cache)[:, -1, :]
            with mx.stream(generation_stream):
                y = mx.argmax(model(prompt[None], cache=cache)[:, -1, :], axis=-1)
            mx.eval(y)
            build, launch, wait, total = [], [], [], []
            nxt = y
            t_start = time.perf_counter()
            for _ in range(args.tokens):
                t0 = time.perf_counter()
                with mx.stream(generation_stream):
                    cur, nxt = nxt, mx.argmax(step(nxt), axis=-1)
                t1 = time.perf_counter()
                mx.async_eval(nxt)
                t2 = time.perf_counter()
                if sleep_ms:
                    time.sleep(sleep_ms / 1e3)
                t3 = time.perf_counter()
                cur.item()
                t4 = time.perf_counter()
                build.append(t1 - t0)
                launch.append(t2 - t1)
                wait.append(t4 - t3)
                total.append(t4 - t0)
            tps = args.tokens / (time.perf_counter() - t_start)
        row = {"sleep_ms": sleep_ms, "tok/s": round(tps, 1),
               **{k: round(statistics.median(v) * 1e3, 3) for k, v in
                  (("build ms", build), ("async_eval ms", launch), ("item wait ms", wait), ("step ms", total))}}
        out[f"sleep {sleep_ms}"] = row
        print(json.dumps(row), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
