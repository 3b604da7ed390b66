"""What the engine-level GPU probes share: an MLX model directory loaded with mlx-lm, a started
MLXEngine on it (no server, no runner process), synthetic prompts, and raw mlx-lm throughput
(`generate_step`, BatchGenerator) as the baselines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def load_model(model_dir: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, config.json) of an MLX model directory."""
    from mlx_lm import load

    model, tok = load(model_dir)
    return model, tok, json.loads((Path(model_dir) / "config.json").read_text())


def start_engine(model: Any, tok: Any, config: dict[str, Any], *, num_ctx: int, parallel: int) -> Any:
    from ollmlx.runner.engines.mlx.engine import MLXEngine
    from ollmlx.runner.engines.mlx.loader import LoadedModel

    engine = MLXEngine(LoadedModel(model, tok, config, 8192, None), num_ctx=num_ctx, parallel=parallel)
    engine.start()
    return engine


def synthetic_prompts(n: int, salt: int, length: int, vocab: int) -> list[list[int]]:
    """n distinct token prompts of `length` tokens, all below `vocab` (random-weight models have no
    text worth writing)."""
    return [[(7 * i + 13 * j + salt) % vocab + 5 for j in range(length)] for i in range(n)]


def raw_single_tps(model: Any, prompt: list[int], tokens: int) -> tuple[float, list[int]]:
    """Greedy decode tok/s of mlx-lm's `generate_step` after its first token, and the tokens."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    out: list[int] = []
    t0 = time.perf_counter()
    for tok, _ in generate_step(mx.array(prompt), model, max_tokens=tokens):
        out.append(int(tok))
        if len(out) == 1:
            t0 = time.perf_counter()
    return (len(out) - 1) / (time.perf_counter() - t0), out


def decoder_tps(model: Any, prompt: list[int], tokens: int, make_decoder: Any) -> tuple[float, list[int]]:
    """Greedy decode tok/s after the first token, and the tokens, of a one-token-step replacement
    (`make_decoder(cache)` -> object with forward(token) -> logits), pipelined like
    `generate_step`: the next step is queued before the current token is read."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    tok = mx.argmax(model(mx.array(prompt)[None], cache=cache)[:, -1, :], axis=-1)
    dec = make_decoder(cache)
    out = [int(tok.item())]
    nxt = mx.argmax(dec.forward(tok), axis=-1)
    mx.async_eval(nxt)
    t0 = time.perf_counter()
    for _ in range(tokens - 1):
        cur = nxt
        nxt = mx.argmax(dec.forward(cur), axis=-1)
        mx.async_eval(nxt)
        out.append(int(cur.item()))
    return (tokens - 1) / (time.perf_counter() - t0), out


def raw_batch_tps(model: Any, prompts: list[list[int]], tokens: int) -> float:
    """Aggregate tok/s of mlx-lm's BatchGenerator generating `tokens` for every prompt at once."""
    from mlx_lm.generate import BatchGenerator

    n = len(prompts)
    gen = BatchGenerator(model, max_tokens=tokens, completion_batch_size=n, prefill_batch_size=min(n, 8))
    gen.insert(prompts, max_tokens=[tokens] * n)
    t0 = time.perf_counter()
    produced, live = 0, n
    while live:
        for r in gen.next_generated():
            produced += 1
            live -= r.finish_reason is not None
    dt = time.perf_counter() - t0
    gen.close()
    return produced / dt


def prefix_forward_ms(model: Any, prefix_len: int, new: int) -> float:
    """Best-of-four ms of one forward of `new` tokens over a cached `prefix_len`-token prefix (the
    shape of a warm turn 2, or of a prompt chunk); the cache is trimmed back after each."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    model(mx.array([(11 * j) % 1000 + 10 for j in range(prefix_len)])[None], cache=cache)
    mx.eval([c.state for c in cache])
    tail = mx.array([(7 * j) % 900 + 20 for j in range(new)])[None]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        mx.eval(model(tail, cache=cache))
        times.append((time.perf_counter() - t0) * 1e3)
        for c in cache:
            c.trim(new)
    return round(min(times[1:]), 2)
