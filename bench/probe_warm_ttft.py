"""Where a warm turn-2's time to first token goes on the MLX engine (GPU issue: warm TTFT was 31% of
cold on an H200). Engine level, no server: cold 2,000-token prompt, then several conversations'
turn 2 on a warm prefix cache, each timed; then the same with mx.clear_cache disabled.

    python bench/probe_warm_ttft.py --model-dir /tmp/llama-3.2-1b
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--history", type=int, default=2000)
    ap.add_argument("--warmup", action="store_true")
    ap.add_argument("--timeline", action="store_true", help="also print one warm turn's timeline: when the "
                    "engine's steps (admission, prefix-cache lookup, forward queued, first token read) start and end")
    ap.add_argument("--fresh-lengths", default="", help="comma-separated history lengths, each seen once: cold "
                    "and warm turn-2 time to first token where every shape is new, as in real conversations "
                    "(kernel plans built per shape, such as cuDNN attention graphs, are paid then)")
    ap.add_argument("--fresh-passes", type=int, default=1, help="passes over --fresh-lengths, each pass's "
                    "lengths --fresh-shift tokens longer than the last's (new lengths, shapes maybe seen)")
    ap.add_argument("--fresh-shift", type=int, default=50)
    ap.add_argument("--fresh-only", action="store_true", help="stop after --fresh-lengths")
    ap.add_argument("--first-cold-only", action="store_true", help="time the first cold --history-token prompt "
                    "after the engine's load-time warm-up (and a first 8-token request), then stop")
    ap.add_argument("--tuned", action="store_true", help="the runner's host tuning first (flattened rows, few-row "
                    "kernel, fused and batch steps), as a served model gets it")
    args = ap.parse_args()
    os.environ.setdefault("MLX_CUDA_USE_CUDNN_SDPA", "0")  # as runners run (runner/env.py)
    import mlx.core as mx

    from bench.mlx_engine_setup import load_model, start_engine
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    model, tok, config = load_model(args.model_dir)
    if args.tuned:
        from bench.mlx_engine_setup import prefix_forward_ms
        from ollmlx.runner.engines.mlx.host import tune_for_host

        print(json.dumps(tune_for_host(model)), flush=True)
        print(json.dumps({"case": f"model forward, 28 tokens over {args.history}",
                          "ms": prefix_forward_ms(model, args.history, 28)}), flush=True)
    engine = start_engine(model, tok, config, num_ctx=8192, parallel=16)
    rng = random.Random(0)
    vocab = int(config["vocab_size"]) - 8

    def run(tokens: list[int], n: int = 8) -> tuple[float, list[int]]:
        done = threading.Event()
        out: dict[str, Any] = {}
        t0 = time.perf_counter()

        def emit(chunk: dict[str, Any]) -> None:
            if "ttft" not in out and (chunk.get("content") or chunk.get("done")):
                out["ttft"] = time.perf_counter() - t0
            if chunk.get("done") or "error" in chunk:
                out["final"] = chunk
                done.set()

        engine.submit(CompletionRequest(prompt="", tokens=tokens,
                                        options=SamplingOptions(temperature=0, num_predict=n)), emit)
        done.wait(600)
        return out["ttft"], out["final"]

    def ids(n: int) -> list[int]:
        return [rng.randrange(10, vocab) for _ in range(n)]

    rows: list[dict[str, Any]] = []
    run(ids(8), 1)
    if args.first_cold_only:
        for label in ("first cold", "second cold"):
            cold, final = run(ids(args.history))
            print(json.dumps({"case": label, "ttft_ms": round(cold * 1e3, 1),
                              "prompt_eval_ms": round(final["prompt_eval_duration"] / 1e6, 1)}), flush=True)
        engine.stop()
        return
    events = _record_timeline() if args.timeline else []
    if args.fresh_lengths:
        import statistics

        for shift in range(0, args.fresh_passes * args.fresh_shift, args.fresh_shift):
            colds, warms = [], []
            slowest: tuple[float, list[tuple[float, str]]] = (0.0, [])
            for n in (int(x) + shift for x in args.fresh_lengths.split(",")):
                hist = ids(n)
                cold, _ = run(hist, 8)
                events.clear()
                t0 = time.perf_counter()
                warm, final = run(hist + ids(8) + ids(20), 8)
                if warm > slowest[0]:
                    slowest = (warm, [(round((t - t0) * 1e3, 2), what) for t, what in events])
                colds.append(cold * 1e3)
                warms.append(warm * 1e3)
                print(json.dumps({"fresh_length": n, "cold_ms": round(cold * 1e3, 1), "warm_ms": round(warm * 1e3, 1),
                                  "prompt_eval": final.get("prompt_eval_count")}), flush=True)
            print(json.dumps({"fresh_pass_shift": shift, "fresh_median_cold_ms": round(statistics.median(colds), 1),
                              "fresh_median_warm_ms": round(statistics.median(warms), 1),
                              "warm_over_cold": round(statistics.median(warms) / statistics.median(colds), 3)}),
                  flush=True)
            for ms, what in slowest[1][:24]:
                print(json.dumps({"fresh_slowest_timeline_ms": ms, "event": what}), flush=True)
        if args.fresh_only:
            t0 = time.perf_counter()
            for _ in range(3):
                run(ids(28), 65)
            print(json.dumps({"decode_step_ms_approx": round((time.perf_counter() - t0) / 3 / 65 * 1e3, 2)}), flush=True)
            engine.stop()
            return
    if args.timeline and not args.fresh_only:
        for _ in range(3):  # the last of three
            hist = ids(args.history)
            run(hist, 8)
            events.clear()
            t0 = time.perf_counter()
            run(hist + ids(8) + ids(20), 8)
            timeline = [(round((t - t0) * 1e3, 2), what) for t, what in events]
        for ms, what in timeline[:24]:
            print(json.dumps({"timeline_ms": ms, "event": what}), flush=True)
    if args.warmup:  # a cached continuation of a short prompt first: are the warm path's kernels shape-specific?
        h = ids(64)
        run(h, 8)
        run(h + ids(28), 8)
    cold, _ = run(ids(args.history))
    rows.append({"case": "cold", "ttft_ms": round(cold * 1e3, 1)})
    for label in ("warm 1", "warm 2", "warm 3", "warm 4"):
        hist = ids(args.history)
        run(hist, 8)
        t, final = run(hist + ids(8) + ids(20), 8)
        rows.append({"case": label, "ttft_ms": round(t * 1e3, 1), "prompt_eval": final.get("prompt_eval_count")})
    for n in (1000, 3000, 1500):
        hist = ids(n)
        run(hist, 8)
        t, final = run(hist + ids(8) + ids(20), 8)
        rows.append({"case": f"warm, {n}-token history", "ttft_ms": round(t * 1e3, 1), "prompt_eval": final.get("prompt_eval_count")})
    real_clear = mx.clear_cache
    mx.clear_cache = lambda: None  # type: ignore[assignment]
    for label in ("warm, no clear_cache 1", "warm, no clear_cache 2"):
        hist = ids(args.history)
        run(hist, 8)
        t, final = run(hist + ids(8) + ids(20), 8)
        rows.append({"case": label, "ttft_ms": round(t * 1e3, 1), "prompt_eval": final.get("prompt_eval_count")})
    mx.clear_cache = real_clear
    for label in ("cold, kernels compiled 1", "cold, kernels compiled 2"):
        t, _ = run(ids(args.history))
        rows.append({"case": label, "ttft_ms": round(t * 1e3, 1)})
    for label in ("short prompt 1", "short prompt 2"):
        t, _ = run(ids(28), 8)
        rows.append({"case": label, "ttft_ms": round(t * 1e3, 1)})
    t0 = time.perf_counter()
    for _ in range(3):
        run(ids(28), 33)
    rows.append({"case": "decode step (ms, approx)", "ttft_ms": round((time.perf_counter() - t0) / 3 / 33 * 1e3, 2)})
    engine.stop()
    for r in rows:
        print(json.dumps(r))


def _record_timeline() -> list[tuple[float, str]]:
    """Wraps the engine's steps to record (time, "+name"/"-name") at their starts and ends."""
    import functools

    from ollmlx.runner.engines.mlx import engine as engine_mod
    from ollmlx.runner.engines.mlx import solo

    events: list[tuple[float, str]] = []

    def wrap(cls: Any, name: str) -> None:
        f = getattr(cls, name)

        @functools.wraps(f)
        def timed(*a: Any, **k: Any) -> Any:
            events.append((time.perf_counter(), "+" + name))
            try:
                return f(*a, **k)
            finally:
                events.append((time.perf_counter(), "-" + name))

        setattr(cls, name, timed)

    for name in ("submit", "_admit", "_prompt_tokens", "_on_token"):
        wrap(engine_mod.MLXEngine, name)
    for name in ("prefill", "step", "_forward"):
        wrap(solo.SoloStream, name)
    wrap(engine_mod.LRUPromptCache, "fetch_nearest_cache")
    return events


if __name__ == "__main__":
    main()
