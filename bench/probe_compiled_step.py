"""A compiled decode step against mlx-lm's `generate_step`, engine level (issue 7: "compiled decode
steps, fewer kernel launches per token").

mlx-lm's KV cache slices its buffer to the current length, so every step has new shapes and
`mx.compile` would trace again each token. The compiled path keeps the KV buffers at a fixed
capacity, passes the position as an array, and masks the unused tail, so one trace serves every
step until the buffer grows.

    python bench/probe_compiled_step.py --model-dir /tmp/m1b [--float32] [--tokens 128]
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
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=40)
    ap.add_argument("--float32", action="store_true", help="ollmlx's CPU layout (dense float32 weights)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import mlx.core as mx
    from mlx_lm import load

    from bench.mlx_engine_setup import decoder_tps, raw_single_tps
    from ollmlx.runner.engines.mlx.compiled_step import CompiledDecoder

    model, _ = load(args.model_dir)
    if args.float32:
        from ollmlx.runner.engines.mlx.build import dequantize_for_cpu

        dequantize_for_cpu(model, mx.float32)
    prompt = [(13 * j) % 1000 + 10 for j in range(args.prompt_len)]
    n = args.tokens

    def compiled(jit: bool = True) -> tuple[float, list[int]]:
        return decoder_tps(model, prompt, n, lambda cache: CompiledDecoder(model, cache, compiled=jit))

    rows: dict[str, list[float]] = {}
    ref: list[int] = []
    same = True
    for _ in range(args.rounds):
        tps, toks = raw_single_tps(model, prompt, n)
        rows.setdefault("raw generate_step", []).append(round(tps, 1))
        ref = ref or toks
        tps, toks = compiled()
        rows.setdefault("compiled step", []).append(round(tps, 1))
        same = same and toks[: len(ref)] == ref[: len(toks)]
        tps, _ = compiled(jit=False)
        rows.setdefault("fixed buffer, not compiled", []).append(round(tps, 1))
        print(rows, flush=True)
    print(json.dumps({"device": str(mx.default_device()), "rows": rows, "same_tokens": same}))


if __name__ == "__main__":
    main()
