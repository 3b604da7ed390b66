"""Where a batched decode step's time goes on one GPU: for B streams over mlx-lm's BatchKVCache,
ms per step to build the graph in Python (the model call), to run it (eval after build), and
pipelined (the next step built while the GPU runs this one, as BatchGenerator does), against
BatchGenerator's own aggregate tok/s. Tells whether the batch is bound by the GPU's work or by
launches and Python.

    python bench/probe_batch_step.py --model-dir /tmp/m8b --batches 1,16,64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_costs(model: object, batch: int, context: int, steps: int) -> dict[str, object]:
    import mlx.core as mx
    from mlx_lm.models.cache import BatchKVCache

    layers = len(model.layers)  # type: ignore[attr-defined]
    cache = [BatchKVCache([0] * batch) for _ in range(layers)]
    prompt = mx.array([[(7 * j + 13 * b) % 900 + 20 for j in range(context)] for b in range(batch)])
    y = mx.argmax(model(prompt, cache=cache)[:, -1:], axis=-1)  # type: ignore[operator]
    mx.eval(y)
    build = run = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        nxt = mx.argmax(model(y, cache=cache), axis=-1)  # type: ignore[operator]
        t1 = time.perf_counter()
        mx.eval(nxt)
        t2 = time.perf_counter()
        build, run, y = build + t1 - t0, run + t2 - t1, nxt
    mx.async_eval(y)
    t0 = time.perf_counter()
    for _ in range(steps):
        nxt = mx.argmax(model(y, cache=cache), axis=-1)  # type: ignore[operator]
        mx.async_eval(nxt)
        y.tolist()
        y = nxt
    mx.eval(y)
    piped = time.perf_counter() - t0
    return {"build ms": round(build / steps * 1e3, 2), "run ms": round(run / steps * 1e3, 2),
            "pipelined ms": round(piped / steps * 1e3, 2), "tok/s": round(batch * steps / piped, 1)}


def main() -> None:
    from bench.mlx_engine_setup import load_model, raw_batch_tps, synthetic_prompts

    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--flatten", action="store_true", help="ollmlx's flattened rows (one product per step)")
    ap.add_argument("--batch-step", action="store_true", help="also BatchGenerator through batch_step.py")
    ap.add_argument("--rows-kernel", action="store_true", help="2-32 row products through cuda_rows.py (with --flatten)")
    args = ap.parse_args()
    model, _, config = load_model(args.model_dir)
    if args.flatten:
        from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows, set_rows_kernel

        flatten_quantized_rows(model)
        set_rows_kernel(args.rows_kernel)
    vocab = int(config.get("vocab_size", 32000))
    report: dict[str, object] = {}
    batched = None
    if args.batch_step:
        from ollmlx.runner.engines.mlx.batch_step import BatchedModel, BatchStep, agrees

        print("batch step agrees with the model:", agrees(model), flush=True)
        batched = BatchedModel(model, BatchStep(model))
    for batch in [int(b) for b in args.batches.split(",")]:
        step_costs(model, batch, args.context, 4)  # warm kernels for this batch size
        row = step_costs(model, batch, args.context, args.steps)
        for label, m in (("BatchGenerator tok/s", model), ("BatchGenerator, batch step tok/s", batched)) * 2:
            if m is not None:  # twice each, alternating: the first of a batch size pays its traces
                tps = raw_batch_tps(m, synthetic_prompts(batch, 5, args.context, vocab - 10), args.steps)
                row.setdefault(label, []).append(round(tps, 1))  # type: ignore[attr-defined]
        report[f"B={batch}"] = row
        print(batch, row, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
