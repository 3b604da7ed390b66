"""The last few texts a runner tokenized, with their token ids.

A chat request's prompt is tokenized twice with the same text: once when the server checks that
it fits num_ctx (/tokenize), once when the engine reads it. For a long conversation that is
milliseconds each time (~4 ms for 2,600 tokens on this project's CPU), spent on the engine's
thread while other streams wait, and counted in the time to first token.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class RecentEncodings:
    def __init__(self, encode: Callable[[str], list[int]], size: int = 8) -> None:
        self._encode = encode
        self._size = size
        self._recent: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            ids = self._recent.get(text)
            if ids is not None:
                self._recent.move_to_end(text)
                self.hits += 1
                return list(ids)
        ids = tuple(self._encode(text))
        with self._lock:
            self._recent[text] = ids
            while len(self._recent) > self._size:
                self._recent.popitem(last=False)
        return list(ids)
