"""What reusing a cached prefix costs before the first new token: mlx-lm's LRUPromptCache hands out
a copy that shares the cached KV buffers, so the first append to it copies every layer's whole
buffer (mlx arrays are values; a buffer another array holds cannot be written in place). An
unshared buffer with room takes the append in place. Pure mlx, KV shapes of a real model.

    python bench/probe_prefix_copy.py --layers 30 --kv-heads 3 --head-dim 64 --tokens 6300   # SmolLM2-135M
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=6300, help="not a multiple of 256: the buffer has room")
    ap.add_argument("--new", type=int, default=9)
    ap.add_argument("--dtype", default="float32", help="float32 is the KV of ollmlx's CPU layout")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    dtype = getattr(mx, args.dtype)
    shape = (1, args.kv_heads, args.tokens, args.head_dim)
    new_shape = (1, args.kv_heads, args.new, args.head_dim)

    def filled() -> list[Any]:
        caches = []
        for _ in range(args.layers):
            c = KVCache()
            c.update_and_fetch(mx.random.normal(shape).astype(dtype), mx.random.normal(shape).astype(dtype))
            caches.append(c)
        mx.eval([c.keys for c in caches] + [c.values for c in caches])
        return caches

    def append(caches: list[Any]) -> float:
        t = time.perf_counter()
        out = []
        for c in caches:
            out += c.update_and_fetch(mx.random.normal(new_shape).astype(dtype),
                                      mx.random.normal(new_shape).astype(dtype))
        mx.eval(out)
        return (time.perf_counter() - t) * 1e3

    kv_mb = 2 * args.layers * args.kv_heads * args.tokens * args.head_dim * mx.zeros((), dtype).itemsize / 2**20
    rows = []
    for _ in range(args.repeat):
        stored = filled()
        t = time.perf_counter()
        shared = copy.deepcopy(stored)  # what fetch_nearest_cache returns
        mx.eval([c.keys for c in shared])
        fetch_ms = (time.perf_counter() - t) * 1e3
        shared_ms = append(shared)
        owned_ms = append(filled())  # nothing else holds it, and the buffer has room
        rows.append({"fetch_ms": round(fetch_ms, 1), "first_append_shared_ms": round(shared_ms, 1),
                     "first_append_owned_ms": round(owned_ms, 1)})
    print(json.dumps({"kv_mb": round(kv_mb, 1), "device": str(mx.default_device()), **vars(args), "runs": rows}))


if __name__ == "__main__":
    main()
