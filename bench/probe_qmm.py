"""Does folding a batch's sequences into rows speed up mlx's quantized matmuls? (GPU issue)

A batched decode step hands each linear layer (sequences, 1, hidden). This probe times, in one
process on one model:

1. `mx.quantized_matmul` on each distinct layer shape at several batch sizes, with the input shaped
   (B, 1, K) as mlx-lm passes it and (B, K) as `flat_rows` passes it;
2. raw mlx-lm `BatchGenerator` aggregate tok/s at each level, with the model as loaded and after
   `flatten_quantized_rows`, and one greedy `generate_step` stream before/after (must not change).

    python bench/probe_qmm.py --model-dir /tmp/llama-3.2-1b --levels 16,64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--levels", default="16,64")
    ap.add_argument("--batches", default="1,8,16,32,64")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=40)
    args = ap.parse_args()
    import mlx.core as mx
    import mlx.nn as nn

    from bench.mlx_engine_setup import load_model, raw_batch_tps, raw_single_tps, synthetic_prompts
    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows

    model, _tok, config = load_model(args.model_dir)
    vocab = int(config["vocab_size"]) - 8

    shapes: dict[tuple[int, int], nn.Module] = {}
    for _, m in model.named_modules():
        if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding):
            shapes.setdefault((m.weight.shape[0], m.weight.shape[1] * 32 // m.bits), m)

    def qmm(m: nn.Module, x: mx.array) -> mx.array:
        return mx.quantized_matmul(x, m.weight, scales=m.scales, biases=m.biases, transpose=True,
                                   group_size=m.group_size, bits=m.bits, mode=getattr(m, "mode", "affine"))

    def timed(m: nn.Module, x: mx.array, reps: int = 50) -> float:
        for _ in range(3):
            mx.eval(qmm(m, x))
        t0 = time.perf_counter()
        for _ in range(reps):
            mx.eval(qmm(m, x))
        return (time.perf_counter() - t0) / reps * 1e6

    for (n, k), m in shapes.items():
        for b in [int(v) for v in args.batches.split(",")]:
            x = mx.random.normal((b, 1, k)).astype(m.scales.dtype)
            y3, y2 = qmm(m, x), qmm(m, x.reshape(b, k))
            same = bool(mx.allclose(y3.reshape(b, n), y2, atol=1e-2, rtol=1e-2).item())
            print(json.dumps({"N": n, "K": k, "batch": b, "us_B1K": round(timed(m, x), 1),
                              "us_BK": round(timed(m, x.reshape(b, k)), 1), "same": same}), flush=True)

    def prompts(n: int, salt: int) -> list[list[int]]:
        return synthetic_prompts(n, salt, args.prompt_len, vocab)

    def raw_batch(n: int, tokens: int, salt: int) -> float:
        return raw_batch_tps(model, prompts(n, salt), tokens)

    def single(tokens: int) -> tuple[float, list[int]]:
        return raw_single_tps(model, prompts(1, 5)[0], tokens)

    levels = [int(v) for v in args.levels.split(",")]
    rows: dict[str, dict[str, float]] = {}
    outs: dict[str, list[int]] = {}
    for label in ("as loaded", "flattened"):
        if label == "flattened":
            print(json.dumps({"flattened_layers": flatten_quantized_rows(model)}), flush=True)
        single(8)
        tps, outs[label] = single(args.tokens)
        rows[label] = {"single": round(tps, 1)}
        for n in levels:
            raw_batch(n, 8, 1)
            rows[label][f"batch{n}"] = round(raw_batch(n, args.tokens, 3), 1)
        print(json.dumps({label: rows[label]}), flush=True)
    a, f = rows["as loaded"], rows["flattened"]
    print(json.dumps({"flattened/as_loaded": {k: round(f[k] / a[k], 2) for k in a},
                      "same_greedy_single": outs["as loaded"] == outs["flattened"]}), flush=True)


if __name__ == "__main__":
    main()
