"""Few-row prefill on the GPU: mlx-cuda's quantized matmul against dequantize-then-matmul.

A warm turn 2 reads 17-28 new tokens over a cached prefix. On an H100 that forward costs an 8B
model ~30 ms, while a one-token decode step costs 4-6 (bench/RESULTS.md): mlx-cuda 0.32.4 runs a
few rows through its `qmm_sm80` tile kernel. This probe times, per layer shape and row count,
`mx.quantized_matmul` against `x @ mx.dequantize(w).T`, then a whole forward of N new tokens over a
cached 2,000-token prefix with the layers as loaded and with layers that dequantize for row counts
in a window.

    python bench/probe_dequant.py --model-dir /tmp/llama-3.1-8b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--rows", default="1,4,8,16,28,64,256,2048")
    ap.add_argument("--new-tokens", default="1,8,17,28,64")
    ap.add_argument("--prefix", type=int, default=2000)
    args = ap.parse_args()
    import mlx.core as mx
    import mlx.nn as nn

    from bench.mlx_engine_setup import load_model, prefix_forward_ms

    model, _tok, _config = load_model(args.model_dir)

    def timed(fn: Any, reps: int = 20) -> float:
        for _ in range(3):
            mx.eval(fn())
        t0 = time.perf_counter()
        for _ in range(reps):
            mx.eval(fn())
        return (time.perf_counter() - t0) / reps * 1e6

    shapes: dict[tuple[int, int], Any] = {}
    for _, m in model.named_modules():
        if isinstance(m, nn.QuantizedLinear):
            shapes.setdefault((m.weight.shape[0], m.weight.shape[1] * 32 // m.bits), m)
    for (n, k), m in shapes.items():
        for r in [int(v) for v in args.rows.split(",")]:
            x = mx.random.normal((r, k)).astype(m.scales.dtype)

            def q(m: Any = m, x: mx.array = x) -> mx.array:
                return mx.quantized_matmul(x, m.weight, m.scales, m.biases, transpose=True,
                                           group_size=m.group_size, bits=m.bits)

            def d(m: Any = m, x: mx.array = x) -> mx.array:
                w = mx.dequantize(m.weight, m.scales, m.biases, group_size=m.group_size, bits=m.bits)
                return x @ w.T

            print(json.dumps({"N": n, "K": k, "rows": r, "qmm_us": round(timed(q), 1),
                              "dequant_us": round(timed(d), 1)}), flush=True)

    def forward_ms(new: int) -> float:
        return prefix_forward_ms(model, args.prefix, new)

    class Dequantizing(nn.QuantizedLinear):
        lo, hi = 2, 512

        def __call__(self, x: mx.array) -> mx.array:
            rows = x.size // x.shape[-1]
            if not self.lo <= rows <= self.hi:
                return super().__call__(x)
            w = mx.dequantize(self["weight"], self["scales"], self.get("biases"), group_size=self.group_size,
                              bits=self.bits)
            y = x @ w.T
            return y + self["bias"] if "bias" in self else y

    news = [int(v) for v in args.new_tokens.split(",")]
    before = {n: forward_ms(n) for n in news}
    print(json.dumps({"forward_ms_as_loaded": before}), flush=True)
    for _, m in model.named_modules():
        if type(m) is nn.QuantizedLinear:
            m.__class__ = Dequantizing
    after = {n: forward_ms(n) for n in news}
    print(json.dumps({"forward_ms_dequant_2_512": after}), flush=True)


if __name__ == "__main__":
    main()
