"""A lone stream's decoding (runner/engines/mlx/solo.py) on the real model code: the first token is
handed out before its successor's forward is queued (time to first token), and every way out of
the solo path (the next step, finishing, moving to the batch) sees a cache that holds exactly the
tokens it says."""

from __future__ import annotations

from typing import Any

from helpers import tiny_llama


def _greedy(lp: Any) -> Any:
    import mlx.core as mx

    return mx.argmax(lp, axis=-1)


def _solo(model: Any, prompt: list[int]) -> Any:
    from mlx_lm.models.cache import make_prompt_cache

    from ollmlx.runner.engines.mlx.solo import SoloStream

    solo = SoloStream(model, make_prompt_cache(model), [], prompt, _greedy, [])
    solo.prefill()
    return solo


def test_the_first_token_goes_out_before_the_second_forward_and_the_tokens_are_generate_steps() -> None:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    model = tiny_llama(4)
    prompt = [3, 14, 15, 92, 65, 35]
    want = [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=12, sampler=_greedy)]
    solo = _solo(model, prompt)
    first, _ = solo.step()
    assert solo.cache[0].offset == len(prompt)  # the second token's forward waits for the next step
    got = [first, *(solo.step()[0] for _ in range(11))]
    assert got == want
    assert solo.cache[0].offset == len(solo.tokens)  # later steps: forward queued with each token


def test_after_the_first_token_settle_and_leave_give_a_whole_cache() -> None:
    model = tiny_llama(4)
    prompt = [7, 8, 9, 10]
    solo = _solo(model, prompt)
    solo.step()
    solo.settle()  # what finishing right after the first token does before keeping the cache
    assert solo.cache[0].offset == len(solo.tokens) == len(prompt) + 1
    other = _solo(model, prompt)
    token, _ = other.step()
    cache, cached, rest = other.leave()  # a second request came right after the first token
    assert cache[0].offset == len(cached) and cached + rest == [*prompt, token]
