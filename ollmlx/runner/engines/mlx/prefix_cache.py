"""The engine's prefix cache: mlx-lm's LRUPromptCache over a trie whose search does not stall.

mlx-lm's `PromptTrie.search`, when a prompt leaves the trie part-way down (a new conversation
after the template's opening tokens; a turn whose history differs from what was generated), looks
for the shortest stored prompt below that point with a depth-first search that copies the path at
every node: O(entries x length^2). With 16 stored 2,000-token conversations that share a system
prompt, one search took 57 ms on a 2-core CPU; a served 8B's cache holds 3-4 such entries, each
searched through on every new conversation. Any stored prompt below the point serves
(`fetch_nearest_cache` trims it back to the shared prefix), so here the search follows one branch
down to the nearest stored prompt: O(length), no copies. Everything else is mlx-lm's.
"""

from __future__ import annotations

from typing import Any

from mlx_lm.models.cache import LRUPromptCache, PromptTrie, PromptTrieResult


class _Trie(PromptTrie):
    def search(self, model: Any, tokens: list[int]) -> PromptTrieResult:
        trie: dict[Any, Any] = self._trie
        if model not in trie:
            return PromptTrieResult(model, None, None, None, 0)
        node = trie[model]
        if not tokens and "__value__" in node:
            return PromptTrieResult(model, [], None, None, 0)
        last = -1  # the longest stored prompt that is a prefix of tokens ends here
        index = 0
        while index < len(tokens) and tokens[index] in node:
            node = node[tokens[index]]
            if "__value__" in node:
                last = index
            index += 1
        if last == len(tokens) - 1 >= 0:
            return PromptTrieResult(model, tokens, None, None, 0)
        shorter = tokens[: last + 1] if last > 0 else None
        longer = None
        if index > 0:  # a stored prompt that goes on past the shared part: follow one branch to it
            extra: list[int] = []
            while "__value__" not in node:
                token = next(t for t in node if t != "__value__")
                extra.append(token)
                node = node[token]
            longer = tokens[:index] + extra
        return PromptTrieResult(model, None, shorter, longer, index)


class PrefixCache(LRUPromptCache):
    """LRUPromptCache (bounded in entries and bytes) with `_Trie`'s search."""

    def __init__(self, max_size: int, max_bytes: int) -> None:
        super().__init__(max_size=max_size, max_bytes=max_bytes)
        self._trie = _Trie()
