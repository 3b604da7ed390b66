"""Chat history truncation (spec §3 truncation; ollmlx/serve/truncate.py, Ollama's chatPrompt):
oldest messages first, system messages and the last message always kept, images counted at 768
tokens on a model with a projector. The tokenizer is a seam: here one token per word."""

from __future__ import annotations

import asyncio
from typing import Any

from ollmlx.serve.truncate import IMAGE_TOKENS, fit_messages


def render(msgs: list[dict[str, Any]]) -> str:
    return " ".join(f"{m['role']}: {m['content']}" for m in msgs)


calls: list[str] = []


async def words(text: str) -> list[int]:
    calls.append(text)
    return list(range(len(text.split())))


def fit(msgs: list[dict[str, Any]], num_ctx: int, **kw: Any) -> Any:
    calls.clear()
    return asyncio.run(fit_messages(msgs, render, words, num_ctx, **kw))


def m(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


HISTORY = [m("system", "sys"), m("user", "a b c d"), m("assistant", "e f g h"), m("user", "i j k l"),
           m("assistant", "m n o p"), m("user", "last")]


def test_everything_fits_in_one_tokenization() -> None:
    out = fit(HISTORY, 30)
    assert out.messages == HISTORY and out.dropped == 0 and len(calls) == 1
    assert out.prompt == render(HISTORY)


def test_a_prompt_shorter_in_bytes_than_the_context_is_not_tokenized() -> None:
    out = fit(HISTORY, len(render(HISTORY).encode()) + 4)
    assert out.messages == HISTORY and calls == []


def test_oldest_go_first_system_and_last_stay() -> None:
    # each message is its role word + its content words: 2 + 5 + 5 + 5 + 5 + 2 = 24 tokens
    assert fit(HISTORY, 14).dropped == 2  # sys + the last three messages: exactly 14
    out = fit(HISTORY, 13)
    assert [x["content"] for x in out.messages] == ["sys", "m n o p", "last"]
    assert out.dropped == 3 and out.prompt == render(out.messages)
    only_last = fit(HISTORY, 3)
    assert [x["content"] for x in only_last.messages] == ["sys", "last"]
    tiny = fit(HISTORY, 1)  # the last message stays even when nothing fits
    assert [x["content"] for x in tiny.messages] == ["sys", "last"]


def test_system_messages_later_in_the_history_stay_in_place() -> None:
    msgs = [m("user", "old one two three"), m("system", "mid"), m("user", "q"), m("assistant", "r"), m("user", "z")]
    out = fit(msgs, 9)
    assert [x["content"] for x in out.messages] == ["mid", "q", "r", "z"]
    out = fit(msgs, 7)  # the system message was dropped from the front: it is kept ahead
    assert [x["content"] for x in out.messages] == ["mid", "r", "z"]


def test_truncate_off_and_images() -> None:
    out = fit(HISTORY, 1, truncate=False)
    assert out.messages == HISTORY and out.dropped == 0
    with_images = [m("user", "look", images=["a", "b"]), m("assistant", "ok"), m("user", "again", images=["c"])]
    out = fit(with_images, 2 * IMAGE_TOKENS, per_image=IMAGE_TOKENS)
    assert [x["content"] for x in out.messages] == ["ok", "again"]
    out = fit(with_images, 2 * IMAGE_TOKENS)  # no projector: images cost nothing
    assert out.messages == with_images


def test_nothing_to_drop_needs_no_count() -> None:
    """Only system messages before the last: no truncation could change the prompt, so nothing is
    tokenized (a /api/generate prompt, a first chat turn)."""
    lone = [m("system", "sys " * 50), m("user", "a long question " * 50)]
    out = fit(lone, 5)
    assert out.messages == lone and out.dropped == 0 and calls == [] and out.budget is None


def test_deferred_count_goes_to_the_runner() -> None:
    """`defer`: a conversation longer in bytes than num_ctx comes back whole and untokenized with
    its token budget (images taken off); refused, it is fitted again without `defer`."""
    out = fit(HISTORY, 14, defer=True)
    assert out.messages == HISTORY and out.dropped == 0 and calls == [] and out.budget == 14
    with_images = [m("user", "look", images=["a", "b"]), m("assistant", "ok"), m("user", "again", images=["c"])]
    out = fit(with_images, 3 * IMAGE_TOKENS, per_image=IMAGE_TOKENS, defer=True)
    assert out.budget == 0 and calls == []
    assert fit(HISTORY, len(render(HISTORY).encode()) + 4, defer=True).budget is None  # fits by its bytes
    assert fit(HISTORY, 14, defer=False).dropped == 2
