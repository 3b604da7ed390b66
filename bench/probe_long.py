"""Decode speed along one long solo stream, in 64-token windows, repeated (is a slow stretch a
one-time kernel compile or steady?). Engine level.

    python bench/probe_long.py --model-dir /tmp/llama-3.2-1b
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    args = ap.parse_args()
    from bench.mlx_engine_setup import load_model, start_engine
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    engine = start_engine(*load_model(args.model_dir), num_ctx=4096, parallel=16)

    def once(prompt: list[int], n: int) -> list[float]:
        ev = threading.Event()
        stamps: list[float] = []

        def emit(chunk: dict[str, Any]) -> None:
            if "content" in chunk:
                stamps.append(time.perf_counter())
            if chunk.get("done") or "error" in chunk:
                ev.set()

        engine.submit(CompletionRequest(prompt="", tokens=prompt, options=SamplingOptions(temperature=0, num_predict=n)), emit)
        ev.wait(600)
        return [round(64 / (stamps[i + 63] - stamps[i]), 1) for i in range(0, len(stamps) - 64, 64)]

    for label, prompt, n in (("A 512", [11 + j for j in range(40)], 512), ("A 512 again", [11 + j for j in range(40)], 512),
                             ("B 512 (shares A's first 20)", [11 + j for j in range(20)] + [900 + j for j in range(20)], 512),
                             ("C 512 new", [500 + j for j in range(33)], 512)):
        print(json.dumps({"run": label, "tok_s_per_64": once(prompt, n), "solo_tokens": engine.solo_tokens}), flush=True)
    engine.stop()


if __name__ == "__main__":
    main()
