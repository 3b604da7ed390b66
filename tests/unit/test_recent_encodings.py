"""RecentEncodings: a text tokenized again is not encoded again (runner/recent_encodings.py)."""

from __future__ import annotations

from ollmlx.runner.recent_encodings import RecentEncodings


def test_same_text_is_encoded_once_and_callers_get_their_own_list() -> None:
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return [ord(c) for c in text]

    enc = RecentEncodings(encode, size=2)
    first = enc("abc")
    first.insert(0, 1)  # a caller adding BOS must not change what the next caller gets
    assert enc("abc") == [97, 98, 99] and calls == ["abc"] and enc.hits == 1


def test_only_the_most_recent_texts_are_kept() -> None:
    calls: list[str] = []
    enc = RecentEncodings(lambda t: calls.append(t) or [len(t)], size=2)
    for text in ("a", "bb", "a", "ccc", "bb", "a"):
        enc(text)
    # "a" stayed recent through its second use; "bb" was dropped by "ccc", and came back
    assert calls == ["a", "bb", "ccc", "bb", "a"]
