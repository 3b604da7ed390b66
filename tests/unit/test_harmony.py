"""gpt-oss's harmony output (spec §9, §11): channels into thinking and content, a recipient's
message into a tool call, tool names made identifiers and mapped back, streamed at any split."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ollmlx.errors import OllmlxError
from ollmlx.serve.inference import harmony_parser
from ollmlx.serve.parsers.harmony import FINAL, FunctionNames, HarmonyParser, prefill_for, uses_harmony

ANSWER = ("<|channel|>analysis<|message|>The user greets me.<|end|>"
          "<|start|>assistant<|channel|>final<|message|>Hello there!")
CALL = ("<|channel|>analysis<|message|>Need the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
        '{"city": "Paris", "days": 2}')


def run(parser: HarmonyParser, text: str, step: int) -> tuple[str, str, list[dict[str, Any]], int]:
    content, thinking, calls, chunks = [], [], [], 0
    pieces = [text[i:i + step] for i in range(0, len(text), step)] or [""]
    for i, piece in enumerate(pieces):
        d = parser.feed(piece, done=i == len(pieces) - 1)
        content.append(d.content)
        thinking.append(d.thinking)
        calls += d.tool_calls
        chunks += not d.hold
    return "".join(content), "".join(thinking), calls, chunks


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_analysis_is_thinking_and_final_is_content_at_any_split(step: int) -> None:
    content, thinking, calls, _ = run(HarmonyParser(FunctionNames()), ANSWER, step)
    assert (content, thinking, calls) == ("Hello there!", "The user greets me.", [])


def test_text_streams_as_it_comes_and_a_partial_end_tag_is_held() -> None:
    parser = HarmonyParser(FunctionNames())
    assert parser.feed("<|channel|>final<|message|>Hel").content == "Hel"
    d = parser.feed("lo<|en")
    assert d.content == "lo" and not d.hold
    assert parser.feed("d|>").hold  # the tag closed the message: nothing to send
    assert parser.feed("", done=True).content == ""


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_a_recipient_makes_a_tool_call_with_the_callers_name(step: int) -> None:
    names = FunctionNames()
    assert names.tools([{"type": "function", "function": {"name": "get-weather", "parameters": {}}}]) == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    content, thinking, calls, _ = run(HarmonyParser(names), CALL, step)
    assert content == "" and thinking == "Need the weather."
    assert len(calls) == 1 and calls[0]["id"].startswith("call_")
    assert calls[0]["function"] == {"index": 0, "name": "get-weather", "arguments": {"city": "Paris", "days": 2}}


def test_a_recipient_before_the_channel_and_a_commentary_preamble() -> None:
    names = FunctionNames()
    names.add("lookup")
    text = ("<|channel|>commentary<|message|>Checking.<|end|>"
            '<|start|>assistant to=functions.lookup<|channel|>commentary json<|message|>{"q": "x"}')
    content, _, calls, _ = run(HarmonyParser(names), text, 4)
    assert content == "Checking." and calls[0]["function"]["name"] == "lookup"


def test_unparsable_tool_arguments_are_an_error() -> None:
    parser = HarmonyParser(FunctionNames())
    parser.feed("<|channel|>commentary to=functions.f<|message|>{not json")
    with pytest.raises(OllmlxError, match=re.escape("error parsing tool call: raw='{not json'")):
        parser.feed("", done=True)


def test_function_names_become_identifiers_both_ways() -> None:
    names = FunctionNames()
    assert [names.add(n) for n in ("a.b", "a-b", "a b", "1st", "$ok", "日本語", "!!!", "browser.search")] == [
        "a_b", "a_b_2", "a_b_3", "_1st", "$ok", "日本語", "unnamed", "browser.search"]
    assert names.caller("a_b_2") == "a-b" and names.caller("unknown") == "unknown"


def test_prefill_continues_a_trailing_assistant_message() -> None:
    assert prefill_for([{"role": "user", "content": "hi"}]) == "<|start|>assistant"
    assert prefill_for([{"role": "assistant", "content": "Part"}]) == FINAL
    assert prefill_for([{"role": "assistant", "content": "", "thinking": "hmm"}]).endswith("analysis<|message|>")
    parser = HarmonyParser(FunctionNames(), FINAL)
    assert parser.feed("ial answer.", done=True).content == "ial answer."


def test_a_format_writes_straight_into_the_final_channel() -> None:
    parser, prompt = harmony_parser(FunctionNames(), "...<|start|>assistant", "<|start|>assistant", True)
    assert prompt == "...<|start|>assistant<|channel|>final<|message|>"
    assert parser.feed('{"a": 1}', done=True).content == '{"a": 1}'
    _, same = harmony_parser(FunctionNames(), "...<|start|>assistant", "<|start|>assistant", False)
    assert same == "...<|start|>assistant"


def test_when_harmony_applies() -> None:
    tmpl = "<|start|>system<|message|>{{ .System }}<|end|>"
    assert uses_harmony({"model_family": "gptoss"}, tmpl) and uses_harmony({"model_family": "gpt-oss"}, tmpl)
    assert not uses_harmony({"model_family": "gptoss"}, "{{ .Prompt }}")
    assert not uses_harmony({"model_family": "llama"}, tmpl)
    assert uses_harmony({"parser": "harmony"}, None)
