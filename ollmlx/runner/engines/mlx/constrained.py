"""`format` enforced by constrained decoding (llguidance): "json" or a JSON schema becomes a
grammar; a per-sequence logits processor masks every token the grammar does not allow, so the
output always parses (and validates against the schema)."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import llguidance
import llguidance.hf
import mlx.core as mx
import numpy as np

# Compact JSON with ", " / ": " separators: flexible whitespace lets small models loop on spaces.
JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ",
}


class FormatError(ValueError):
    """The format cannot be compiled: a 400 naming the problem."""


def format_schema(fmt: Any) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "object"}
    if isinstance(fmt, dict):
        return fmt
    if isinstance(fmt, str):
        try:
            parsed = json.loads(fmt)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise FormatError(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')


class Grammars:
    """Compiles formats for one tokenizer (the llguidance tokenizer costs ~1s: built once)."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        self._hf = hf_tokenizer
        self.vocab_size = vocab_size
        self._eos = eos_ids
        self._tok: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tok is None:
                self._tok = llguidance.hf.from_tokenizer(self._hf, n_vocab=self.vocab_size,
                                                         eos_token=self._eos[0] if self._eos else None)
            return self._tok

    def matcher(self, fmt: Any) -> llguidance.LLMatcher | None:
        schema = format_schema(fmt)
        if schema is None:
            return None
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)  # type: ignore[arg-type]
        except ValueError as exc:
            raise FormatError(f"invalid JSON schema: {exc}") from exc
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self.tokenizer)
        if is_error:
            raise FormatError(f"invalid JSON schema: {messages[0] if messages else 'cannot compile'}")
        m = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if m.is_error():
            raise FormatError(f"invalid JSON schema: {m.get_error()}")
        return m


class GrammarProcessor:
    """A logits processor for one sequence: feeds sampled tokens to the matcher, masks the rest."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self.matcher = matcher
        self.vocab_size = vocab_size
        self._seen: int | None = None

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        n = int(tokens.shape[0])
        if self._seen is None:
            self._seen = n  # the prompt: nothing generated yet
        elif n > self._seen:
            new = cast(list[int], tokens[self._seen:].tolist())
            self._seen = n
            for t in new:
                self.matcher.consume_token(t)
        if self.matcher.is_error():
            raise RuntimeError(f"constrained decoding failed: {self.matcher.get_error()}")
        words = mx.array(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint32))
        # (arrays are built here, on the engine thread: mlx streams are per thread)
        allowed = ((words[:, None] >> mx.arange(32, dtype=mx.uint32)) & 1).reshape(-1)[: logits.shape[-1]].astype(mx.bool_)
        if allowed.shape[0] < logits.shape[-1]:
            allowed = mx.concatenate([allowed, mx.zeros(logits.shape[-1] - allowed.shape[0], dtype=mx.bool_)])
        return mx.where(allowed, logits, mx.array(-float("inf"), dtype=logits.dtype))

    def restart(self) -> None:
        """The sequence re-enters the batch with a new (shifted) window. The matcher has consumed
        every token so far, so the next call only takes the window's length as its start."""
        self._seen = None
