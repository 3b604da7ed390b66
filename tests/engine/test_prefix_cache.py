"""The engine's prefix cache (runner/engines/mlx/prefix_cache.py): mlx-lm's LRUPromptCache whose
trie finds a stored prompt below a divergence by following one branch."""

from __future__ import annotations

import random
from typing import Any

import pytest

mx = pytest.importorskip("mlx.core")

from mlx_lm.models.cache import KVCache, PromptTrie  # noqa: E402

from ollmlx.runner.engines.mlx.prefix_cache import PrefixCache, _Trie  # noqa: E402


def _tries(prompts: list[list[int]]) -> tuple[PromptTrie, _Trie]:
    theirs, ours = PromptTrie(), _Trie()
    for i, p in enumerate(prompts):
        theirs.add("m", p, i)
        ours.add("m", p, i)
    return theirs, ours


def test_search_agrees_with_mlx_lms_and_finds_a_stored_prompt_below_a_divergence() -> None:
    rng = random.Random(0)
    system = [1, 2, 3, 4]
    prompts = [system + [100 + i] + [rng.randrange(50) for _ in range(rng.randrange(5, 60))] for i in range(12)]
    prompts.append(prompts[0][:9])  # a stored prefix of another stored prompt
    theirs, ours = _tries(prompts)
    queries = [
        prompts[3],  # exact
        prompts[3] + [7, 7],  # a stored prompt, then more
        [*prompts[0][:9], 99],  # past a stored prefix, off the longer one
        [*prompts[5][:-3], 999, 998],  # part-way down one, then off
        [*system, 999],  # a new conversation after the shared opening
        [999],  # nothing shared
        [],
    ]
    for q in queries:
        a, b = theirs.search("m", q), ours.search("m", q)
        assert (a.exact, a.shorter, a.common_prefix) == (b.exact, b.shorter, b.common_prefix), q
        assert (a.longer is None) == (b.longer is None), q
        if b.longer is not None:
            assert b.longer[: b.common_prefix] == q[: b.common_prefix]
            assert b.longer in prompts, q  # a prompt that is stored, so fetch can read its cache


def _cache(n: int) -> list[Any]:
    c = KVCache()
    c.update_and_fetch(mx.ones((1, 2, n, 4)), mx.ones((1, 2, n, 4)))
    return [c]


def test_a_new_conversation_reuses_the_shared_opening_of_a_stored_one() -> None:
    cache = PrefixCache(max_size=8, max_bytes=1 << 30)
    stored = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    cache.insert_cache("m", stored, _cache(len(stored)))
    fetched, rest = cache.fetch_nearest_cache("m", [1, 2, 3, 4, 50, 51])
    assert fetched is not None and fetched[0].offset == 4
    assert rest == [50, 51]
    again, _ = cache.fetch_nearest_cache("m", stored)  # the stored entry itself is left whole
    assert again is not None and again[0].offset == len(stored)


def test_the_engine_keeps_its_prefixes_in_this_cache(tiny_loaded: Any, engine_factory: Any) -> None:
    engine = engine_factory(tiny_loaded)
    assert isinstance(engine.prompt_cache, PrefixCache)
    assert isinstance(engine.prompt_cache._trie, _Trie)
