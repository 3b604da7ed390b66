"""A chat prompt tokenized piece by piece, each piece kept, so a conversation's history is not
tokenized again every turn.

A turn's prompt is the whole conversation rendered again: ~2,000 tokens of history cost 2-5 ms
of tokenization on this project's CPU (SmolLM2's tokenizer: 4.9 ms for 2,600 tokens), spent on
every turn before the first token. Hugging Face tokenizers cut the text at added tokens first
and tokenize each piece between them on its own, so a prompt cut where a special token starts
(`<|im_start|>`, `<|eot_id|>`; for a token that strips the whitespace on its left, where that
whitespace starts) gives the same ids piece by piece. Each piece's ids are kept (LRU), and only
the new turn's pieces are tokenized.

Tokenizers are many, and some differ (a normalizer across the cut, a template without special
tokens): the first prompts cut into several pieces are also tokenized whole and compared, and one
difference turns the cutting off for the runner's life.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

log = logging.getLogger(__name__)

CHECKS = 3  # prompts compared with a whole tokenization before the pieces are trusted
KEPT_CHARS = 4_000_000  # the kept pieces' text, all told (a few tens of MB with their ids)


class SegmentEncoder:
    def __init__(self, encode: Callable[[str], list[int]], specials: Iterable[tuple[str, bool]],
                 kept_chars: int = KEPT_CHARS) -> None:
        """`specials`: (text, strips the whitespace on its left) for every token the tokenizer cuts
        the text at before tokenizing the pieces. The least recently used pieces go once the kept
        ones hold more than `kept_chars` characters."""
        self._encode = encode
        self._budget = kept_chars
        self._chars = 0
        self._pieces: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._checks_left = CHECKS
        plain: list[str] = []
        lstrip: list[str] = []
        for text, strips in specials:
            if text:
                (lstrip if strips else plain).append(re.escape(text))
        alternatives = ([rf"\s*(?:{'|'.join(sorted(lstrip, key=len, reverse=True))})"] if lstrip else []) + \
            ([f"(?:{'|'.join(sorted(plain, key=len, reverse=True))})"] if plain else [])
        self._cuts = re.compile("|".join(alternatives)) if alternatives else None
        self.enabled = self._cuts is not None
        self.reused = 0  # pieces found kept (tests, logs)

    def __call__(self, text: str) -> list[int]:
        pieces = self._split(text) if self.enabled else [text]
        if len(pieces) < 2:
            return list(self._encode(text))
        ids = [i for piece in pieces for i in self._piece(piece)]
        if self._checks_left > 0:
            whole = list(self._encode(text))
            with self._lock:
                if whole != ids:
                    self.enabled = False
                    self._pieces.clear()
                    self._chars = 0
                    log.warning("tokenizing prompts piece by piece disabled: this tokenizer encodes the pieces "
                                "of a prompt differently from the whole")
                    return whole
                self._checks_left -= 1
        return ids

    def _split(self, text: str) -> list[str]:
        assert self._cuts is not None
        starts = [m.start() for m in self._cuts.finditer(text) if m.start() > 0]
        bounds = [0, *starts, len(text)]
        return [text[a:b] for a, b in pairwise(bounds) if b > a]

    def _piece(self, piece: str) -> tuple[int, ...]:
        with self._lock:
            ids = self._pieces.get(piece)
            if ids is not None:
                self._pieces.move_to_end(piece)
                self.reused += 1
                return ids
        ids = tuple(self._encode(piece))
        if len(piece) > self._budget:
            return ids
        with self._lock:
            if piece not in self._pieces:
                self._pieces[piece] = ids
                self._chars += len(piece)
            while self._chars > self._budget:
                self._chars -= len(self._pieces.popitem(last=False)[0])
        return ids


def special_tokens(tokenizer: Any) -> list[tuple[str, bool]]:
    """(text, lstrip) of a Hugging Face tokenizer's added tokens matched on the raw text (not
    normalized first), the ones it cuts a text at as they are; none for any other tokenizer."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if not isinstance(decoder, dict):
        return []
    out = []
    for token in decoder.values():
        content = getattr(token, "content", None)
        if isinstance(content, str) and content and not getattr(token, "normalized", False):
            out.append((content, bool(getattr(token, "lstrip", False))))
    return out
