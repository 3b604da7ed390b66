"""The OpenAI and Anthropic translators on native chunk shapes (spec §20, §21), including the tool-call
paths that SmolLM2 135M cannot be made to take reliably in the end-to-end tests."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from ollmlx.api import anthropic_wire as anth
from ollmlx.api import openai_responses as resp
from ollmlx.api import openai_wire as oai
from ollmlx.api.compat import decode_body
from ollmlx.errors import BadRequest

CALL = {"id": "call_abc12345", "function": {"index": 0, "name": "get_weather",
                                            "arguments": {"city": "Paris", "unit": "c"}}}


def chunk(content: str = "", *, done: bool = False, thinking: str = "", calls: list[dict[str, Any]] | None = None,
          reason: str = "stop", **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        msg["thinking"] = thinking
    if calls:
        msg["tool_calls"] = calls
    out = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": msg, "done": done, **extra}
    if done:
        out.update(done_reason=reason, prompt_eval_count=7, eval_count=3)
    return out


def chat_req(**body: Any) -> oai.ChatCompletionRequest:
    return decode_body(json.dumps({"model": "m", **body}).encode(), oai.ChatCompletionRequest, "openai")


# -- OpenAI requests ---------------------------------------------------------------------------
def test_chat_request_defaults_and_options() -> None:
    native = oai.from_chat_request(chat_req(messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                            stop="x", seed=3, response_format={"type": "json_object"},
                                            reasoning_effort="minimal", logprobs=True, top_logprobs=2))
    assert native.options == {"stop": ["x"], "num_predict": 5, "temperature": 1.0, "seed": 3, "top_p": 1.0}
    assert native.format == "json" and native.think == "low" and native.logprobs and native.top_logprobs == 2
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    native = oai.from_chat_request(chat_req(messages=[{"role": "user", "content": "hi"}], temperature=0,
                                            max_completion_tokens=9,
                                            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    assert native.format == schema and native.options == {"num_predict": 9, "temperature": 0.0, "top_p": 1.0}


def test_chat_request_parts_tools_and_images() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    native = oai.from_chat_request(chat_req(messages=[
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]))
    msgs = [m.wire() for m in native.messages or []]
    assert msgs[0] == {"role": "user", "content": "look"}
    assert msgs[1] == {"role": "user", "content": "", "images": [png]}
    assert msgs[2]["tool_calls"] == [{"id": "call_1", "function": {"index": 0, "name": "get_weather",
                                                                   "arguments": {"city": "Paris"}}}]
    # the tool's name is found from the call it answers
    assert msgs[3] == {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"}


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": []}, "[] is too short - 'messages'"),
    ({"messages": [{"role": "user", "content": None}]}, "invalid message content type: <nil>"),
    ({"messages": [{"role": "user", "content": 5}]}, "invalid message content type: float64"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "invalid message format"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "invalid message format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}]},
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "data:image/gif;base64,AAAA"}]}]},
     "invalid image input"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{nope"}}]}]}, "invalid tool call arguments"),
    ({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "lots"},
     'invalid reasoning value: "lots" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")'),
])
def test_chat_request_validation_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as err:
        oai.from_chat_request(chat_req(**body))
    assert err.value.message == message


def test_decode_errors_read_like_gin() -> None:
    with pytest.raises(BadRequest, match=r"^EOF$"):
        decode_body(b"", oai.ChatCompletionRequest, "openai")
    with pytest.raises(BadRequest, match=r"^json: cannot unmarshal array into Go value of type openai\.ChatCompletionRequest$"):
        decode_body(b"[]", oai.ChatCompletionRequest, "openai")
    with pytest.raises(BadRequest, match=r"Go struct field ChatCompletionRequest\.model of type string"):
        decode_body(b'{"model": 3}', oai.ChatCompletionRequest, "openai")


def test_completion_request_stop_types_and_logprobs() -> None:
    def req(**body: Any) -> oai.CompletionRequest:
        return decode_body(json.dumps({"model": "m", "prompt": "p", **body}).encode(), oai.CompletionRequest, "openai")

    with pytest.raises(BadRequest, match=r"^invalid type for 'stop' field: float64$"):
        oai.from_completion_request(req(stop=["a", 1]))
    native = oai.from_completion_request(req(stop=["a"], logprobs=2, top_p=0))
    assert native.options == {"stop": ["a"], "temperature": 1.0, "frequency_penalty": 0.0,
                              "presence_penalty": 0.0, "top_p": 1.0}
    assert native.logprobs and native.top_logprobs == 2


def test_embedding_input_and_base64() -> None:
    def req(**body: Any) -> oai.EmbedRequest:
        return decode_body(json.dumps({"model": "m", **body}).encode(), oai.EmbedRequest, "openai")

    assert oai.embed_input(req(input="")) == [""]
    bad: dict[str, Any]
    for bad in ({"input": []}, {}):
        with pytest.raises(BadRequest, match=r"^invalid input$"):
            oai.embed_input(req(**bad))
    with pytest.raises(BadRequest, match=r"^Invalid value for 'encoding_format' = hex\. Supported values: \['float', 'base64'\]\.$"):
        oai.embed_input(req(input="x", encoding_format="hex"))
    out = oai.to_embedding_list("m", {"embeddings": [[0.5, -1.0]], "prompt_eval_count": 2}, "base64")
    assert struct.unpack("<2f", base64.b64decode(out["data"][0]["embedding"])) == (0.5, -1.0)
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


# -- OpenAI responses --------------------------------------------------------------------------
def test_chat_completion_with_tool_calls() -> None:
    out = oai.to_chat_completion("chatcmpl-1", chunk(done=True, calls=[CALL], thinking="hmm"), 1)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {"role": "assistant", "content": "", "reasoning": "hmm", "tool_calls": [
        {"id": "call_abc12345", "index": 0, "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'}}]}
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_chat_stream_shape() -> None:
    s = oai.ChatStream("chatcmpl-1", include_usage=True)
    out = s.process(chunk("He")) + s.process(chunk("llo", thinking="t")) + s.process(chunk(calls=[CALL])) \
        + s.process(chunk(done=True))
    deltas: list[Any] = [c["choices"][0]["delta"] if c["choices"] else None for c in out]
    assert deltas[0] == {"role": "assistant", "content": "He"}
    assert deltas[1] == {"reasoning": "t"} and deltas[2] == {"content": "llo"}  # split in two
    assert deltas[3]["tool_calls"][0]["function"]["name"] == "get_weather"
    # the empty trailer gives no content chunk: finish chunk, then usage chunk
    assert deltas[4] == {} and out[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[5]["choices"] == [] and out[5]["usage"]["total_tokens"] == 10
    assert len({c["created"] for c in out}) == 1


def test_responses_stream_with_tool_call_and_text() -> None:
    r = decode_body(b'{"model":"m","input":"hi","stream":true}', resp.ResponsesRequest, "openai")
    s = resp.ResponsesStream(r, "resp_1", "msg_1")
    events = s.process(chunk("Hel")) + s.process(chunk("lo")) + s.process(chunk(done=True))
    names = [n for n, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hello"
    s = resp.ResponsesStream(r, "resp_2", "msg_2")
    events = s.process(chunk(calls=[CALL])) + s.process(chunk(done=True))
    done = [e for n, e in events if n == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == '{"city":"Paris","unit":"c"}'
    assert events[-1][1]["response"]["output"][0]["type"] == "function_call"


def test_responses_request_items() -> None:
    body = {"model": "m", "instructions": "be brief", "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                  {"type": "namespace", "name": "fs", "tools": [{"type": "function", "name": "read"}]}],
        "max_output_tokens": 4, "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}}
    native = resp.from_responses_request(decode_body(json.dumps(body).encode(), resp.ResponsesRequest, "openai"))
    msgs = [m.wire() for m in native.messages or []]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "user"]
    assert msgs[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert msgs[3]["tool_call_id"] == "c1"
    assert [t["function"]["name"] for t in native.tools or []] == ["get_weather", "fs.read"]
    assert native.format == {"type": "object"} and native.options == {"temperature": 1.0, "num_predict": 4}
    with pytest.raises(BadRequest, match=r"^input\[0\]: input item missing required 'type' field$"):
        resp.from_responses_request(decode_body(b'{"model":"m","input":[{"content":"x"}]}', resp.ResponsesRequest, "openai"))


# -- Anthropic ---------------------------------------------------------------------------------
def messages_req(**body: Any) -> anth.MessagesRequest:
    return decode_body(json.dumps({"model": "m", "max_tokens": 8, **body}).encode(), anth.MessagesRequest, "anthropic")


def test_anthropic_request_translation() -> None:
    r = messages_req(system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
                     thinking={"type": "enabled", "budget_tokens": 100}, stop_sequences=["X"], top_k=4,
                     tools=[{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
                     messages=[{"role": "user", "content": "weather?"},
                               {"role": "assistant", "content": [
                                   {"type": "text", "text": "checking"},
                                   {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                               {"role": "user", "content": [
                                   {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                                   {"type": "text", "text": "and so?"}]}])
    native = anth.from_messages_request(r)
    msgs = [m.wire() for m in native.messages or []]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[2]["tool_calls"] == [{"id": "toolu_1", "function": {"index": 0, "name": "get_weather",
                                                                    "arguments": {"city": "Paris"}}}]
    # tool results come before the user's text in the same turn
    assert msgs[3] == {"role": "tool", "content": "sunny", "tool_call_id": "toolu_1"}
    assert msgs[4] == {"role": "user", "content": "and so?"}
    assert native.options == {"num_predict": 8, "top_k": 4, "stop": ["X"]} and native.think is True
    assert native.tools == [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                                              "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(("body", "message"), [
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens is required and must be positive"),
    ({"messages": []}, "messages is required"),
    ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model is required"),
])
def test_anthropic_validation(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as err:
        anth.validate(messages_req(**body))
    assert err.value.message == message


def test_anthropic_bad_blocks() -> None:
    bad = messages_req(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}])
    with pytest.raises(BadRequest, match=r"^tool_use block missing required 'id' field$"):
        anth.from_messages_request(bad)
    bad = messages_req(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}])
    with pytest.raises(BadRequest, match=r"^invalid image source type: url\. Only base64 images are supported\.$"):
        anth.from_messages_request(bad)


def test_mistyped_fields_are_request_errors() -> None:
    """Fields Go decodes into typed struct members are 400s with Go's text, never 500s."""
    bad = messages_req(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}])
    with pytest.raises(BadRequest, match=r"^json: cannot unmarshal number into Go struct field ContentBlock\.messages\.content\.text of type string$"):
        anth.from_messages_request(bad)
    bad = messages_req(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}])
    with pytest.raises(BadRequest, match=r"content\.input of type api\.ToolCallFunctionArguments$"):
        anth.from_messages_request(bad)
    body = b'{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"[1]"}]}'
    with pytest.raises(BadRequest, match=r"^failed to parse function call arguments: json: cannot unmarshal array"):
        resp.from_responses_request(decode_body(body, resp.ResponsesRequest, "openai"))
    with pytest.raises(BadRequest, match=r"Tool\.tools\.function of type api\.ToolFunction$"):
        oai.from_chat_request(chat_req(messages=[{"role": "user", "content": "x"}], tools=[{"type": "function", "function": 5}]))


def test_anthropic_response_and_stream_with_tool_use() -> None:
    out = anth.to_messages_response("msg_1", chunk("Let me check.", done=True, calls=[CALL]))
    assert out["stop_reason"] == "tool_use"
    assert out["content"] == [{"type": "text", "text": "Let me check."},
                              {"type": "tool_use", "id": "call_abc12345", "name": "get_weather",
                               "input": {"city": "Paris", "unit": "c"}}]
    assert out["usage"] == {"input_tokens": 7, "output_tokens": 3}
    s = anth.MessagesStream("msg_1", "m", 5)
    events = s.process(chunk(thinking="hm")) + s.process(chunk("ok")) + s.process(chunk(calls=[CALL])) \
        + s.process(chunk(done=True))
    names = [(n, e.get("index")) for n, e in events]
    assert names == [("message_start", None), ("content_block_start", 0), ("content_block_delta", 0),
                     ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
                     ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2),
                     ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert events[0][1]["message"]["usage"] == {"input_tokens": 5, "output_tokens": 0}
    assert json.loads(events[8][1]["delta"]["partial_json"]) == {"city": "Paris", "unit": "c"}
    assert events[10][1]["delta"] == {"stop_reason": "tool_use"}
    assert anth.stop_reason("length", False) == "max_tokens" and anth.stop_reason("stop", False) == "end_turn"
