"""One decode-step product on a CPU, by weight layout: float32 (through OpenBLAS when the runner
preloads it), bfloat16 and float16 (mlx's own CPU gemm), and 4-bit (mlx's quantized_matmul).
SmolLM2-135M's up-projection shape (1536 x 576), one input row, 30 distinct weights per timing.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 python bench/probe_cpu_products.py
"""

from __future__ import annotations

import json
import time

import mlx.core as mx


def main(k: int = 576, n: int = 1536, copies: int = 30) -> None:
    x32 = mx.random.normal((1, k))
    out: dict[str, float] = {}
    for name, dtype in (("float32", mx.float32), ("bfloat16", mx.bfloat16), ("float16", mx.float16)):
        ws = [mx.random.normal((n, k)).astype(dtype) for _ in range(copies)]
        x = x32.astype(dtype)
        mx.eval(ws, x)
        for _ in range(2):  # the second timing counts
            t0 = time.perf_counter()
            mx.eval([x @ w.T for w in ws])
            out[name] = (time.perf_counter() - t0) / copies * 1e6
    qs = [mx.quantize(mx.random.normal((n, k)), group_size=32, bits=4) for _ in range(copies)]
    mx.eval(qs)
    for _ in range(2):
        t0 = time.perf_counter()
        mx.eval([mx.quantized_matmul(x32, q, s, b, transpose=True, group_size=32, bits=4) for q, s, b in qs])
        out["4-bit"] = (time.perf_counter() - t0) / copies * 1e6
    print(json.dumps({f"{k} us": round(v, 1) for k, v in out.items()}))


if __name__ == "__main__":
    main()
