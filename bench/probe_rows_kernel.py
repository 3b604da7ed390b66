"""The few-row 4-bit kernel (cuda_rows.py) against mlx-cuda's `quantized_matmul` on one GPU, in
one process: µs per product for 8B-shaped layers at 1-32 input rows (1, 2 and 4 weight tiles per
block, 2 or 4 words a lane), then a model's batched
decode (raw BatchGenerator, flattened layers) and a warm turn's forward (28 new tokens over a
cached 1,900-token prefix) with the kernel off and on.

    python bench/probe_rows_kernel.py --model-dir /tmp/m8b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {"q/o": (4096, 4096), "kv": (1024, 4096), "gate/up": (14336, 4096), "down": (4096, 14336),
          "head": (128256, 4096)}
ROWS = (1, 2, 4, 8, 16, 17, 32)


def _best_us(fn: object, layers: list[object]) -> float:
    import mlx.core as mx

    best = float("inf")
    for _ in range(4):
        outs = [fn(lay) for lay in layers]  # type: ignore[operator]
        mx.synchronize()
        t = time.perf_counter()
        mx.eval(outs)
        mx.synchronize()
        best = min(best, (time.perf_counter() - t) / len(layers))
    return round(best * 1e6, 1)


def products(report: dict[str, object]) -> None:
    """µs per product, mlx's quantized_matmul against the kernel at 1, 2 and 4 weight tiles per
    block and 2 or 4 words a lane reads, and the bytes-per-second the best of them reads the
    weights at."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx import cuda_rows

    class Layer(dict):
        bits, mode, group_size = 4, "affine", 64

    for name, (n, k) in SHAPES.items():
        layers = []
        for _ in range(2 if name == "head" else 8):  # more bytes than the L2 cache
            q, s, b = mx.quantize(mx.random.normal((n, k)).astype(mx.bfloat16) * 0.05, group_size=64, bits=4)
            layers.append(Layer(weight=q, scales=s, biases=b))
        mx.eval([list(lay.values()) for lay in layers])
        nbytes = n * k // 2 + 2 * n * (k // 64) * 2
        for rows in ROWS:
            x = mx.random.normal((rows, k)).astype(mx.bfloat16)
            mx.eval(x)
            row: dict[str, float] = {"qmm": _best_us(lambda lay, x=x: mx.quantized_matmul(
                x, lay["weight"], lay["scales"], lay["biases"], transpose=True, group_size=64, bits=4), layers)}
            for tiles in (1, 2, 4):
                for words in (2, 4):
                    row[f"mma x{tiles} w{words}"] = _best_us(
                        lambda lay, x=x, t=tiles, w=words: cuda_rows.rows_product(lay, x, t, w), layers)
            row["mma default"] = _best_us(lambda lay, x=x: cuda_rows.rows_product(lay, x), layers)
            if rows == 1 or rows == 16:
                want = mx.quantized_matmul(x, layers[0]["weight"], layers[0]["scales"], layers[0]["biases"],
                                           transpose=True, group_size=64, bits=4).astype(mx.float32)
                got = cuda_rows.rows_product(layers[0], x).astype(mx.float32)
                row["max |diff| / max |out|"] = round((mx.abs(got - want).max() / mx.abs(want).max()).item(), 5)
            best = min(v for key, v in row.items() if key.startswith("mma x"))
            row["mma GB/s"] = round(nbytes / best / 1e3, 1)
            report[f"{name} {rows} rows us"] = row
            print(name, rows, row, flush=True)


def model_level(model_dir: str, report: dict[str, object]) -> None:
    from bench.mlx_engine_setup import load_model, prefix_forward_ms, raw_batch_tps, synthetic_prompts
    from ollmlx.runner.engines.mlx.flat_rows import flatten_quantized_rows, set_rows_kernel

    model, _, config = load_model(model_dir)
    flatten_quantized_rows(model)
    vocab = int(config.get("vocab_size", 32000))
    for on in (False, True, False, True):
        set_rows_kernel(on)
        key = "rows kernel" if on else "mlx qmm"
        tps16 = raw_batch_tps(model, synthetic_prompts(16, 3, 32, vocab - 10), 64)
        warm = prefix_forward_ms(model, 1900, 28)
        report.setdefault(f"{key}: BatchGenerator 16 streams tok/s", []).append(round(tps16, 1))  # type: ignore[union-attr]
        report.setdefault(f"{key}: 28 tokens over 1,900 ms", []).append(warm)  # type: ignore[union-attr]
        print(key, round(tps16, 1), warm, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir")
    ap.add_argument("--skip-products", action="store_true")
    args = ap.parse_args()
    report: dict[str, object] = {}
    if not args.skip_products:
        products(report)
    if args.model_dir:
        model_level(args.model_dir, report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
