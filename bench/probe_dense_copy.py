"""Dense weight copies for multi-row products (OLLMLX_MLX_DENSE_COPY), engine level, one process.

mlx-cuda 0.32.4's quantized matmul is efficient for one row (a lone stream's decode step) but its
few-row tile kernel is slow: an 8B model reads 17 new tokens in ~28 ms and a 64-stream decode step
takes ~30 ms, where reading its weights once takes ~1.5 ms. With a 16-bit copy of each weight, any
product of two rows or more runs as a dense matmul. This probe times, with the layers flattened
(as every MLX runner has them) and then with dense copies: raw mlx-lm BatchGenerator aggregate
tok/s at each level, one greedy stream, and forwards of N new tokens over a cached prefix.

    python bench/probe_dense_copy.py --model-dir /tmp/llama-3.1-8b --levels 16,64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--levels", default="16,64")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--new-tokens", default="17,512")
    ap.add_argument("--prefix", type=int, default=1900)
    args = ap.parse_args()
    import mlx.core as mx

    from bench.mlx_engine_setup import (
        load_model,
        prefix_forward_ms,
        raw_batch_tps,
        raw_single_tps,
        synthetic_prompts,
    )
    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows, keep_dense_copies

    model, _tok, config = load_model(args.model_dir)
    vocab = int(config["vocab_size"]) - 8
    flatten_quantized_rows(model)
    def forward_ms(new: int) -> float:
        return prefix_forward_ms(model, args.prefix, new)

    rows = {}
    for label in ("flattened", "dense copies"):
        if label == "dense copies":
            print(json.dumps({"dense_copy_gb": round(keep_dense_copies(model) / 1e9, 2),
                              "active_gb": round(mx.get_active_memory() / 1e9, 2)}), flush=True)
        row: dict[str, float] = {}
        raw_single_tps(model, synthetic_prompts(1, 5, 40, vocab)[0], 8)
        row["single"] = round(raw_single_tps(model, synthetic_prompts(1, 5, 40, vocab)[0], args.tokens)[0], 1)
        for n in [int(v) for v in args.new_tokens.split(",")]:
            row[f"forward_{n}_ms"] = forward_ms(n)
        for n in [int(v) for v in args.levels.split(",")]:
            raw_batch_tps(model, synthetic_prompts(n, 1, 40, vocab), 8)
            row[f"batch{n}"] = round(raw_batch_tps(model, synthetic_prompts(n, 3, 40, vocab), args.tokens), 1)
        rows[label] = row
        print(json.dumps({label: row}), flush=True)
    a, d = rows["flattened"], rows["dense copies"]
    print(json.dumps({"dense/flattened": {k: round(d[k] / a[k], 2) for k in a}}), flush=True)


if __name__ == "__main__":
    main()
