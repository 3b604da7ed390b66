"""Fitting a prompt into one sequence's context window (engine-neutral; no engine imports).

A prompt longer than the window keeps its first `num_keep` tokens and its newest part, dropping
whole half-window blocks in between: llama.cpp's server rule, which Ollama's runners follow.
"""

from __future__ import annotations

PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten the "
    "prompt, adjust the context length in settings, or use a model with a longer context length"
)


class PromptTooLong(ValueError):
    """The prompt does not fit and the request forbids truncation (a 400)."""

    def __init__(self) -> None:
        super().__init__(PROMPT_TOO_LONG)


def fit_prompt(tokens: list[int], num_ctx: int, num_keep: int, *, truncate: bool = True) -> list[int]:
    """`tokens` shortened to leave room for at least one generated token in `num_ctx`."""
    limit = num_ctx - 1
    if len(tokens) <= limit:
        return tokens
    if not truncate:
        raise PromptTooLong()
    keep = max(0, min(num_keep, limit // 2))
    block = max(1, (num_ctx - keep) // 2)
    erased = ((len(tokens) - keep - block) // block) * block
    tokens = tokens[:keep] + tokens[keep + erased:]
    if len(tokens) > limit:
        tokens = tokens[:keep] + tokens[len(tokens) - (limit - keep):]
    return tokens


def output_budget(num_predict: int, num_ctx: int) -> int:
    """How many tokens a request may generate: `num_predict`, at most ten context windows (also
    for -1, unbounded). With context shift a looping model would otherwise never stop; this is the
    bound Ollama gives its llama.cpp server."""
    cap = 10 * num_ctx
    return cap if num_predict < 0 else min(num_predict, cap)


def shift_span(length: int, num_ctx: int, num_keep: int) -> tuple[int, int]:
    """Context shift on a full window of `length` tokens: (keep, discard). The first `keep` tokens
    stay, the next `discard` (half of the rest) go, and the newer half moves down: Ollama's
    ShiftCacheSlot."""
    keep = max(0, min(num_keep, (num_ctx - 1) // 2))
    return keep, max(1, (length - keep) // 2)


EMBED_TOO_LONG = "the input length exceeds the context length"


def fit_embedding_input(full: list[int], content: list[int], limit: int, *, truncate: bool = True) -> list[int]:
    """An embedding input's tokens (`full`, with the special tokens the model adds around its
    `content` tokens) cut to `limit`: the content's tail goes, the special tokens stay."""
    if len(full) <= limit:
        return full
    if not truncate:
        raise ValueError(EMBED_TOO_LONG)
    start = next((p for p in range(len(full) - len(content) + 1) if full[p:p + len(content)] == content), None)
    if start is None:  # special tokens merged into the content's tokens: cut the whole sequence
        return full[:limit]
    prefix, suffix = full[:start], full[start + len(content):]
    room = limit - len(prefix) - len(suffix)
    if room <= 0:
        raise ValueError("input after truncation exceeds maximum context length")
    return prefix + content[:room] + suffix
