"""SegmentEncoder's cuts and its safety check (runner/segment_encoding.py); a real tokenizer in
tests/engine/test_segment_encoding_smol.py."""

from __future__ import annotations

from ollmlx.runner.segment_encoding import CHECKS, SegmentEncoder


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_cuts_where_special_tokens_start_and_before_the_whitespace_a_left_stripping_one_takes() -> None:
    enc = SegmentEncoder(chars, [("<a>", False), ("<b>", True)])
    assert enc._split("x<a>y \n<b>z<a>") == ["x", "<a>y", " \n<b>z", "<a>"]
    assert enc._split("<a>only") == ["<a>only"]


def test_pieces_are_kept_and_only_new_ones_are_encoded() -> None:
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return chars(text)

    enc = SegmentEncoder(encode, [("<t>", False)])
    history = "".join(f"<t>turn {i} " * 1 for i in range(5))
    for _ in range(CHECKS):  # the first prompts are also encoded whole, to compare
        assert enc(history) == chars(history)
    calls.clear()
    longer = history + "<t>new turn"
    assert enc(longer) == chars(longer)
    assert calls == ["<t>new turn"]


def test_a_tokenizer_whose_pieces_differ_from_the_whole_is_encoded_whole() -> None:
    def encode(text: str) -> list[int]:  # not additive: one id per text
        return [len(text)]

    enc = SegmentEncoder(encode, [("<t>", False)])
    assert enc("ab<t>cd") == [7]
    assert not enc.enabled
    assert enc("ab<t>cd<t>e") == [11]


def test_no_special_tokens_means_no_cuts() -> None:
    calls: list[str] = []
    enc = SegmentEncoder(lambda t: calls.append(t) or chars(t), [])
    assert enc("a<t>b") == chars("a<t>b") and calls == ["a<t>b"] and not enc.enabled


def test_kept_pieces_are_bounded_by_their_characters() -> None:
    calls: list[str] = []
    enc = SegmentEncoder(lambda t: calls.append(t) or chars(t), [("<t>", False)], kept_chars=20)
    enc._checks_left = 0  # trusted from the start: only piece encodings are counted
    enc("<t>aaaaaaaa<t>bbbbbbbb")  # 11 + 11 characters: the older piece goes
    calls.clear()
    assert enc("<t>bbbbbbbb<t>c") == chars("<t>bbbbbbbb<t>c")
    assert calls == ["<t>c"]
    assert enc._chars <= 20
    enc("<t>" + "x" * 40)  # a piece over the whole budget is encoded, not kept
    assert enc._chars <= 20
