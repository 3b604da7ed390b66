"""Single-stream decode on the GPU, engine level: raw mlx-lm `generate_step` vs BatchGenerator at
batch 1 vs MLXEngine with one request (GPU issue: ollmlx single stream measured 0.6x raw).

    python bench/probe_single.py --model-dir /tmp/llama-3.2-1b
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--tune", action="store_true", help="lay the model out as a runner does (host.tune_for_host)")
    ap.add_argument("--fused-ab", type=int, default=0, metavar="ROUNDS",
                    help="instead: MLXEngine x1 with the fused CUDA step on and off, alternating, and raw")
    args = ap.parse_args()
    from mlx_lm.generate import BatchGenerator

    from bench.mlx_engine_setup import load_model, raw_single_tps, start_engine
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    model, tok, config = load_model(args.model_dir)
    if args.tune:
        from ollmlx.runner.engines.mlx.host import tune_for_host

        print("tuned:", tune_for_host(model), flush=True)
    prompt = [(13 * j) % 1000 + 10 for j in range(40)]
    n = args.tokens

    def raw() -> float:
        return raw_single_tps(model, prompt, n)[0]

    def batch1() -> float:
        gen = BatchGenerator(model, max_tokens=n, completion_batch_size=1, prefill_batch_size=1)
        gen.insert([prompt], max_tokens=[n])
        t0, k, done = 0.0, 0, False
        while not done:
            for r in gen.next_generated():
                if not t0:
                    t0 = time.perf_counter()
                    continue
                k += 1
                done = r.finish_reason is not None
        gen.close()
        return k / (time.perf_counter() - t0)

    engine = start_engine(model, tok, config, num_ctx=4096, parallel=16)

    def solo_direct() -> float:
        # the engine's lone-stream path without the engine loop around it
        from mlx_lm.models.cache import make_prompt_cache

        from ollmlx.runner.engines.mlx.solo import SoloStream

        solo = SoloStream(model, make_prompt_cache(model), [], prompt, lambda x: mx.argmax(x, axis=-1), [])
        while not solo.ready:
            solo.prefill()
        solo.step()
        rows["solo decoder"] = [type(solo._decoder).__name__]
        t0 = time.perf_counter()
        for _ in range(n - 1):
            solo.step()
        return (n - 1) / (time.perf_counter() - t0)

    def engine1() -> float:
        ev = threading.Event()
        t: dict[str, Any] = {}

        def emit(chunk: dict[str, Any]) -> None:
            if chunk.get("done") or "error" in chunk:
                t["final"] = chunk
                ev.set()

        engine.submit(CompletionRequest(prompt="", tokens=prompt, options=SamplingOptions(temperature=0, num_predict=n)), emit)
        ev.wait(600)
        f = t["final"]
        return (f["eval_count"] - 1) / (f["eval_duration"] / 1e9)

    rows: dict[str, list[Any]] = {}
    import mlx.core as mx

    if args.fused_ab:
        from ollmlx.runner.engines.mlx import fused_step

        fused_ok = fused_step.usable(model)  # checks once; the switch below flips the cached verdict
        worker = ThreadPoolExecutor(1)  # one lasting thread, as the engine's: is a thread slower?
        for _ in range(args.fused_ab):
            for name, on in (("MLXEngine x1, fused", True), ("MLXEngine x1, not fused", False)):
                object.__setattr__(model, fused_step._VERDICT, on and fused_ok)
                rows.setdefault(name, []).append(round(engine1(), 1))
            for name, on in (("SoloStream direct, fused", True), ("SoloStream direct, not fused", False)):
                object.__setattr__(model, fused_step._VERDICT, on and fused_ok)
                rows.setdefault(name, []).append(round(solo_direct(), 1))
                rows.setdefault(name + ", in a thread", []).append(round(worker.submit(solo_direct).result(), 1))
            rows.setdefault("raw generate_step", []).append(round(raw(), 1))
            print(rows, flush=True)
        print(json.dumps(rows))
        worker.shutdown()
        engine.stop()
        return
    for name, fn in (("raw generate_step", raw), ("BatchGenerator x1", batch1), ("MLXEngine x1", engine1),
                     ("SoloStream direct", solo_direct)) * 2:
        rows.setdefault(name, []).append(round(fn(), 1))
        print(name, rows[name][-1], flush=True)
    print(json.dumps(rows))
    engine.stop()


if __name__ == "__main__":
    main()
