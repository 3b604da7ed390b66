"""Chat history truncation (spec §3 "Truncation"; Ollama's server/prompt.go chatPrompt).

When the rendered prompt does not fit `num_ctx`, the oldest messages are dropped one at a time,
re-rendering and re-tokenizing (with the runner's own tokenizer) after each drop, until it fits.
System messages that would be dropped are kept in front, and the last message always stays, even
if it alone is too long (the runner then shortens or refuses the prompt, spec §18). A model with a
vision projector counts 768 tokens per image, as Ollama does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ollmlx.serve")

IMAGE_TOKENS = 768  # what Ollama charges per image on a model with a projector
# A token covers at least one byte of text, but for a BOS and a SentencePiece dummy prefix: a
# prompt of n bytes has at most n + SPECIAL_SLACK tokens, so a short one needs no tokenizing.
SPECIAL_SLACK = 4

Message = dict[str, Any]
Render = Callable[[list[Message]], str]
Tokenize = Callable[[str], Awaitable[list[int]]]


@dataclass
class Fitted:
    messages: list[Message]  # what the prompt was rendered from
    prompt: str
    dropped: int  # how many messages were left out
    # set when the token count was left to the runner (`defer`): the prompt's budget in tokens,
    # which the completion request carries; over it, the runner refuses and the caller fits again
    budget: int | None = None


def _image_tokens(msgs: list[Message], per_image: int) -> int:
    return per_image * sum(len(m.get("images") or []) for m in msgs)


async def fit_messages(msgs: list[Message], render: Render, tokenize: Tokenize, num_ctx: int, *,
                       truncate: bool = True, per_image: int = 0, defer: bool = False) -> Fitted:
    """The prompt for `msgs`, with the oldest non-system messages dropped until it fits `num_ctx`.

    `defer`: the whole conversation's prompt is returned untokenized, with its token budget, for
    the completion request to carry. The runner tokenizes the prompt anyway, so a conversation
    that fits (the common case: a chat's next turn) costs no /tokenize round trip; one that does
    not comes back refused and is fitted again without `defer`."""
    last = len(msgs) - 1
    if not truncate or all(m.get("role") == "system" for m in msgs[:last]):  # nothing could be dropped
        return Fitted(list(msgs), render(list(msgs)), 0)
    for start in range(len(msgs)):
        kept = [m for m in msgs[:start] if m.get("role") == "system"] + msgs[start:]
        prompt = render(kept)
        images = _image_tokens(msgs[start:], per_image)
        if start == 0 and len(prompt.encode()) + SPECIAL_SLACK + images <= num_ctx:
            return Fitted(kept, prompt, 0)  # fits whatever the tokenizer does: no round trip
        if start == 0 and defer:
            return Fitted(kept, prompt, 0, budget=num_ctx - images)
        used = len(await tokenize(prompt)) + images
        if used <= num_ctx or start == last:
            if start:
                log.debug("truncating input messages which exceed context length: kept %d of %d",
                          len(msgs) - start, len(msgs))
            return Fitted(kept, prompt, len(msgs) - len(kept))
    raise AssertionError("unreachable: the last message always ends the loop")
