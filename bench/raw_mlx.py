"""Raw mlx-lm decode speed on one model, in its own process (so LD_PRELOAD choices apply).

Prints one JSON line: {"ttft_s", "decode_tps", "tokens", "layout"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--layout", choices=["as-stored", "float32", "kernels"], default="as-stored",
                   help="kernels: as a runner lays it out on this host (host.tune_for_host: ollmlx's CPU kernels)")
    p.add_argument("--batch", default="", help="comma list: aggregate tok/s of BatchGenerator at these sizes")
    args = p.parse_args()
    model, tok = load(args.model)
    if args.layout == "float32":
        from ollmlx.runner.engines.mlx.build import dequantize_for_cpu

        dequantize_for_cpu(model, mx.float32)
    elif args.layout == "kernels":
        from ollmlx.runner.engines.mlx.host import tune_for_host

        os.environ["OLLMLX_CPU_WEIGHTS"] = "kernels"
        tune_for_host(model, generates=False)
    prompt = tok.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True,
                                     tokenize=False)
    ids = tok.encode(prompt, add_special_tokens=False)
    # warm-up (kernels, caches)
    for _ in stream_generate(model, tok, ids, max_tokens=4, sampler=make_sampler(0.0)):
        pass
    t0 = time.perf_counter()
    first = last = None
    n = 0
    for _ in stream_generate(model, tok, ids, max_tokens=args.tokens, sampler=make_sampler(0.0)):
        now = time.perf_counter()
        first = first or now
        last = now
        n += 1
    assert first is not None and last is not None
    out = {"ttft_s": first - t0, "decode_tps": (n - 1) / (last - first) if n > 1 else 0.0,
           "tokens": n, "layout": args.layout, "device": str(mx.default_device())}
    if args.batch:
        out["batch"] = {int(b): batch_tps(model, ids, int(b), args.tokens) for b in args.batch.split(",")}
    print(json.dumps(out))


def batch_tps(model, ids: list[int], n: int, tokens: int) -> float:  # type: ignore[no-untyped-def]
    """Raw mlx-lm BatchGenerator: n sequences of `tokens` tokens, aggregate output tok/s."""
    from mlx_lm.generate import BatchGenerator

    def once(max_tokens: int) -> float:
        gen = BatchGenerator(model, max_tokens=max_tokens, completion_batch_size=n, prefill_batch_size=min(n, 8))
        prompts = [[*ids, i % 100 + 5] for i in range(n)]  # distinct prompts, same length
        gen.insert(prompts, max_tokens=[max_tokens] * n)
        t0 = time.perf_counter()
        produced = 0
        live = n
        while live:
            for r in gen.next_generated():
                produced += 1
                if r.finish_reason is not None:
                    live -= 1
        dt = time.perf_counter() - t0
        gen.close()
        return produced / dt

    once(8)  # warm-up: kernels for this batch size are compiled on first use
    return once(tokens)


if __name__ == "__main__":
    main()
