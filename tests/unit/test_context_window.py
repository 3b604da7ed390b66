"""The engine-neutral context rules (runner/context_window.py): prompt truncation, the context
shift Ollama's runners make when generation fills num_ctx, and the output bound (spec §2 shift,
§7 num_keep/num_predict)."""

from __future__ import annotations

import pytest

from ollmlx.runner.context_window import PromptTooLong, fit_prompt, output_budget, shift_span


def test_a_prompt_that_fits_is_unchanged() -> None:
    assert fit_prompt(list(range(10)), 64, 4) == list(range(10))


def test_a_long_prompt_keeps_num_keep_and_the_newest_part() -> None:
    tokens = list(range(200))
    out = fit_prompt(tokens, 64, 4)
    assert len(out) < 64 and out[:4] == [0, 1, 2, 3] and out[-1] == 199
    assert out[4:] == tokens[200 - (len(out) - 4):]
    with pytest.raises(PromptTooLong):
        fit_prompt(tokens, 64, 4, truncate=False)


def test_shift_keeps_num_keep_and_drops_half_the_rest() -> None:
    # Ollama's ShiftCacheSlot: discard = (len - numKeep) / 2
    assert shift_span(64, 64, 4) == (4, 30)
    assert shift_span(64, 64, 0) == (0, 32)
    # num_keep larger than the window can spare is clamped, and a shift always frees something
    keep, discard = shift_span(64, 64, 1000)
    assert keep == 31 and discard >= 1


@pytest.mark.parametrize(("num_predict", "num_ctx", "budget"),
                         [(-1, 64, 640), (100, 64, 100), (2 ** 62, 48, 480), (0, 64, 0)])
def test_output_budget_is_num_predict_at_most_ten_windows(num_predict: int, num_ctx: int, budget: int) -> None:
    assert output_budget(num_predict, num_ctx) == budget
