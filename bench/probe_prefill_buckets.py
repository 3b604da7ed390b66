"""The bucketed last chunk (prefill_buckets.py) against the model's own forward on this machine's
device: max |logit difference| over histories and chunk lengths, and the time of each.

    python bench/probe_prefill_buckets.py --model-dir /tmp/m8b
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
    args = ap.parse_args()
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx import prefill_buckets
    from ollmlx.runner.engines.mlx.host import tune_for_host

    model, _ = load(args.model_dir)
    print(json.dumps(tune_for_host(model)), flush=True)
    vocab = model.args.vocab_size - 8
    for history, new in [(300, 20), (1000, 28), (1900, 17), (2040, 100), (3000, 5)]:
        ids = [(i * 7919) % vocab + 4 for i in range(history + new)]
        theirs, ours = make_prompt_cache(model), make_prompt_cache(model)
        for c in (theirs, ours):
            for start in range(0, history, 512):
                model(mx.array(ids[start:min(history, start + 512)])[None], cache=c)
            mx.eval([x.state for x in c])
        t0 = time.perf_counter()
        want = model(mx.array(ids[history:])[None], cache=theirs)[:, -1, :]
        mx.eval(want)
        t1 = time.perf_counter()
        got = prefill_buckets.forward(model, ours, mx.array(ids[history:]))
        mx.eval(got)
        t2 = time.perf_counter()
        scale = float(mx.abs(want).max())
        print(json.dumps({"history": history, "new": new, "max_abs_diff": round(float(mx.abs(got - want).max()), 5),
                          "max_abs_logit": round(scale, 3), "same_argmax": int(mx.argmax(got)) == int(mx.argmax(want)),
                          "model_ms": round((t1 - t0) * 1e3, 2), "bucketed_ms": round((t2 - t1) * 1e3, 2)}), flush=True)


if __name__ == "__main__":
    main()
