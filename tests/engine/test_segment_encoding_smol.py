"""A conversation's prompt tokenized piece by piece with SmolLM2's real tokenizer: the same ids as
the whole prompt every turn, and a new turn tokenizes only its own text
(runner/segment_encoding.py)."""

from __future__ import annotations

from typing import Any

from ollmlx.runner.segment_encoding import CHECKS, SegmentEncoder, special_tokens


def test_each_turn_encodes_as_the_whole_prompt_and_only_its_new_text(smol_loaded: Any) -> None:
    tok = smol_loaded.tokenizer
    encoded: list[str] = []

    def encode(text: str) -> list[int]:
        encoded.append(text)
        return list(tok.encode(text, add_special_tokens=False))

    enc = SegmentEncoder(encode, special_tokens(tok))
    assert ("<|im_start|>", False) in special_tokens(tok)
    messages = [{"role": "system", "content": "You count marbles.  Two spaces,\n\ttabs and café 🙂."},
                {"role": "user", "content": " ".join(f"box {i} holds {i * 7 % 13} marbles." for i in range(80))}]
    for turn in range(CHECKS + 3):
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoded.clear()
        assert enc(prompt) == list(tok.encode(prompt, add_special_tokens=False)), turn
        if turn >= CHECKS:  # trusted: the history's pieces are kept, a turn encodes a few short ones
            assert sum(map(len, encoded)) < len(prompt) // 10, encoded
        messages += [{"role": "assistant", "content": f"There are {turn} marbles.\n"},
                     {"role": "user", "content": f" And in box {turn + 4}?"}]
    assert enc.enabled and enc.reused > 0
