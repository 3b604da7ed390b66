"""Ollama's sampling options as a llama.cpp sampler chain, one chain per sequence.

Ollama hands GGUF models to llama.cpp's server, whose common sampler runs: penalties → top_k →
typical_p → top_p → min_p → temperature → draw (seeded), and greedy when temperature is 0. A
`format` ("json" or a JSON schema) becomes a GBNF grammar placed first in the chain, so only
tokens the grammar allows can be drawn and the output always parses.
"""

from __future__ import annotations

import json
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from ollmlx.runner.engines.llamacpp.model import LlamaCppModel
from ollmlx.runner.protocol import SamplingOptions


class FormatError(ValueError):
    """A `format` that is neither "json" nor a JSON schema we can compile (a 400)."""


def format_grammar(fmt: Any) -> str | None:
    """The GBNF grammar enforcing `format`, or None when the output is free."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return JSON_GBNF
    schema = fmt
    if isinstance(fmt, str):
        try:
            schema = json.loads(fmt)
        except ValueError:
            schema = None
    if not isinstance(schema, dict):
        raise FormatError(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain exceptions on schemas it cannot express
        raise FormatError(f"invalid JSON schema in format: {exc}") from exc


class SequenceSampler:
    """One sequence's sampler chain. `sample` draws from the logits of one batch output and
    feeds the drawn token back to every stage (penalty history, grammar state, RNG)."""

    def __init__(self, model: LlamaCppModel, opts: SamplingOptions, num_ctx: int, grammar: str | None) -> None:
        self.chain: Any = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self._penalties: Any = None
        self._penalty_window = 0
        try:
            self._build(model, opts, num_ctx, grammar)
        except Exception:
            self.close()
            raise

    def _add(self, stage: Any) -> Any:
        llama_cpp.llama_sampler_chain_add(self.chain, stage)
        return stage

    def _build(self, model: LlamaCppModel, opts: SamplingOptions, num_ctx: int, grammar: str | None) -> None:
        if grammar is not None:
            stage = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not stage:
                raise FormatError("the format's grammar could not be compiled")
            self._add(stage)
        last_n = num_ctx if opts.repeat_last_n < 0 else opts.repeat_last_n
        if last_n > 0 and (opts.repeat_penalty not in (0.0, 1.0) or opts.frequency_penalty or opts.presence_penalty):
            self._penalty_window = last_n
            self._penalties = self._add(llama_cpp.llama_sampler_init_penalties(
                model.n_vocab, last_n, opts.repeat_penalty or 1.0, opts.frequency_penalty, opts.presence_penalty))
        if opts.temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if opts.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(opts.top_k))
        if 0 < opts.typical_p < 1:
            self._add(llama_cpp.llama_sampler_init_typical(opts.typical_p, 1))
        if 0 < opts.top_p < 1:
            self._add(llama_cpp.llama_sampler_init_top_p(opts.top_p, 1))
        if opts.min_p > 0:
            self._add(llama_cpp.llama_sampler_init_min_p(opts.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(opts.temperature))
        # a negative seed draws a random one (LLAMA_DEFAULT_SEED), like llama.cpp's server
        seed = opts.seed & 0xFFFFFFFF if opts.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def accept_prompt(self, tokens: list[int]) -> None:
        """The prompt counts for the repeat/presence/frequency penalties (as in llama.cpp's server),
        but must not advance the grammar: feed it to the penalty stage alone."""
        if self._penalties is None:
            return
        for t in tokens[-self._penalty_window:]:
            llama_cpp.llama_sampler_accept(self._penalties, t)

    def sample(self, ctx: Any, output_index: int) -> int:
        return int(llama_cpp.llama_sampler_sample(self.chain, ctx, output_index))

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)  # frees every stage it holds
            self.chain = None
