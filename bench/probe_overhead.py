"""Where ollmlx's MLX engine loses to raw mlx-lm BatchGenerator at many streams, and where a warm
turn-2's first token goes (GPU issues). Engine level, in one process, on one model:

1. aggregate tok/s at each level: raw BatchGenerator vs MLXEngine (same prompts, greedy), with the
   engine loop split into time inside BatchGenerator.next() and time in ollmlx's per-token work;
2. a warm request on a cached 2,000-token prefix: every model forward between submit and the first
   token, with its input shape and duration.

    python bench/probe_overhead.py --model-dir /tmp/llama-3.2-1b --levels 16,64
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--levels", default="16,64")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=40)
    ap.add_argument("--history", type=int, default=2000)
    args = ap.parse_args()
    import mlx.core as mx

    from bench.mlx_engine_setup import load_model, raw_batch_tps, start_engine, synthetic_prompts
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    model, tok, config = load_model(args.model_dir)
    vocab = int(config["vocab_size"]) - 8
    levels = [int(x) for x in args.levels.split(",")]

    def prompts(n: int, salt: int) -> list[list[int]]:
        return synthetic_prompts(n, salt, args.prompt_len, vocab)

    def raw(n: int, tokens: int, salt: int) -> float:
        return raw_batch_tps(model, prompts(n, salt), tokens)

    engine = start_engine(model, tok, config, num_ctx=4096, parallel=max(levels))
    split = {"next": 0.0, "tokens": 0.0, "steps": 0}

    real_next = None

    def timed_next() -> Any:
        t0 = time.perf_counter()
        out = real_next()  # type: ignore[misc]
        t1 = time.perf_counter()
        split["next"] += t1 - t0
        split["steps"] += 1
        split["_t1"] = t1
        return out

    real_on_token = engine._on_token

    def timed_on_token(r: Any) -> None:
        t0 = time.perf_counter()
        real_on_token(r)
        split["tokens"] += time.perf_counter() - t0

    engine._on_token = timed_on_token  # type: ignore[method-assign]

    def run_engine(n: int, tokens: int, salt: int) -> float:
        nonlocal real_next
        while engine._gen is None:
            time.sleep(0.01)
        if real_next is None:
            real_next = engine._gen.next
            engine._gen.next = timed_next  # type: ignore[method-assign]
        done = threading.Semaphore(0)
        count = {"n": 0}

        def emit(chunk: dict[str, Any]) -> None:
            if chunk.get("done") or "error" in chunk:
                count["n"] += int(chunk.get("eval_count", 0))
                done.release()

        t0 = time.perf_counter()
        for p in prompts(n, salt):
            engine.submit(CompletionRequest(prompt="", tokens=p, options=SamplingOptions(
                temperature=0, num_predict=tokens)), emit)
        for _ in range(n):
            done.acquire()
        return count["n"] / (time.perf_counter() - t0)

    rows = []
    for n in levels:
        raw(n, 8, 1)
        run_engine(n, 8, 2)
        r = raw(n, args.tokens, 3)
        for k in ("next", "tokens", "steps"):
            split[k] = 0
        e = run_engine(n, args.tokens, 4)
        rows.append({"streams": n, "raw_tps": round(r, 1), "engine_tps": round(e, 1), "engine/raw": round(e / r, 3),
                     "ms_in_next_per_step": round(1e3 * split["next"] / max(1, split["steps"]), 2),
                     "ms_ollmlx_per_step": round(1e3 * split["tokens"] / max(1, split["steps"]), 2),
                     "steps": split["steps"]})
        print(json.dumps(rows[-1]), flush=True)

    # the forwards of a warm request
    calls: list[tuple[float, tuple[int, ...], float]] = []
    cls = type(model)
    inner = cls.__call__

    def traced(self: Any, x: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        out = inner(self, x, *a, **kw)
        calls.append((t0, tuple(x.shape), time.perf_counter() - t0))
        return out

    def first_token(tokens: list[int]) -> float:
        ev = threading.Event()
        out: dict[str, float] = {}
        t0 = time.perf_counter()

        def emit(chunk: dict[str, Any]) -> None:
            if "t" not in out and (chunk.get("content") is not None or chunk.get("done")):
                out["t"] = time.perf_counter() - t0
            if chunk.get("done") or "error" in chunk:
                ev.set()

        engine.submit(CompletionRequest(prompt="", tokens=tokens, options=SamplingOptions(temperature=0, num_predict=4)), emit)
        ev.wait(600)
        out["t0"] = t0
        return out["t"]

    reps = max(1, args.history // args.prompt_len)
    hist = prompts(1, 99)[0] * reps
    first_token(hist)
    first_token(hist + prompts(1, 5)[0][:28])  # this length once, so kernels exist
    hist2 = prompts(1, 77)[0] * reps
    first_token(hist2)
    cls.__call__ = traced  # type: ignore[method-assign]
    calls.clear()
    t_start = time.perf_counter()
    ttft = first_token(hist2 + prompts(1, 6)[0][:28])
    print(json.dumps({"warm_ttft_ms": round(ttft * 1e3, 2),
                      "forwards": [{"at_ms": round((t - t_start) * 1e3, 2), "shape": s, "build_ms": round(d * 1e3, 2)}
                                   for t, s, d in calls[:12]]}), flush=True)
    engine.stop()
    mx.synchronize()


if __name__ == "__main__":
    main()
