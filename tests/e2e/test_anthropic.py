"""The Anthropic-compatible `POST /v1/messages` (spec §21) through the official `anthropic` client and
raw HTTP against a live server with SmolLM2 135M: messages with and without streaming, system blocks,
tools with tool_use/tool_result histories, stop reasons, usage, relaxed thinking and the error shape.

Translation is checked against the native chat: under greedy decoding the same conversation sent
through /v1/messages and through /api/chat must give the same text."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from helpers import Server
from tools_model import ANTHROPIC_WEATHER_TOOL, WEATHER_TOOL, anthropic_few_shot, ensure_tools_model

MODEL = "smollm2:135m"
QUESTION = "What is the capital of France? Answer briefly."
GREEDY = {"temperature": 0}
WEATHER_TOOLS: Any = [ANTHROPIC_WEATHER_TOOL]  # this SDK has no `temperature` argument; the wire field still exists


@pytest.fixture(scope="module")
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="ignored", max_retries=0)


def post(server: Server, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/messages", json=body, timeout=120, **kw)


def native_chat(server: Server, model: str, messages: list[dict[str, Any]], num_predict: int,
                tools: list[dict[str, Any]] | None = None) -> str:
    body = {"model": model, "messages": messages, "stream": False, "tools": tools,
            "options": {"temperature": 0, "num_predict": num_predict}}
    r = httpx.post(server.url + "/api/chat", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return str(r.json()["message"]["content"])


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def assert_anthropic_error(r: httpx.Response, status: int, kind: str, message: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"] == {"type": kind, "message": message}
    assert body["request_id"].startswith("req_")


def test_message(client: anthropic.Anthropic) -> None:
    m = client.messages.create(model=MODEL, max_tokens=24, messages=[{"role": "user", "content": QUESTION}],
                               extra_body=GREEDY)
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant" and m.model == MODEL
    assert "Paris" in text_of(m) and m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_max_tokens_and_stop_sequences(client: anthropic.Anthropic) -> None:
    m = client.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": QUESTION}],
                               extra_body=GREEDY)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 3
    m = client.messages.create(model=MODEL, max_tokens=24, stop_sequences=["Paris"],
                               messages=[{"role": "user", "content": QUESTION}], extra_body=GREEDY)
    assert "Paris" not in text_of(m) and m.stop_reason == "end_turn"


def test_system_blocks_and_turns_match_native_chat(client: anthropic.Anthropic, server: Server) -> None:
    turns: list[Any] = [{"role": "user", "content": "My name is Ada."},
                        {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada!"}]},
                        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}]
    m = client.messages.create(model=MODEL, max_tokens=16, messages=turns, extra_body=GREEDY,
                               system=[{"type": "text", "text": "You are a helpful "}, {"type": "text", "text": "assistant."}])
    expected = native_chat(server, MODEL, [
        {"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada!"}, {"role": "user", "content": "What is my name?"}], 16)
    assert text_of(m) == expected and expected


def test_stream(client: anthropic.Anthropic, server: Server) -> None:
    with client.messages.stream(model=MODEL, max_tokens=24, messages=[{"role": "user", "content": QUESTION}],
                                extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Paris" in text and text_of(final) == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    r = post(server, {"model": MODEL, "max_tokens": 3, "stream": True, "temperature": 0,
                      "messages": [{"role": "user", "content": QUESTION}]})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [(block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
              for block in r.text.strip().split("\n\n")]
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(n == e["type"] for n, e in events)
    assert events[0][1]["message"]["content"] == [] and events[0][1]["message"]["usage"]["input_tokens"] > 0
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2][1]["delta"] == {"stop_reason": "max_tokens"} and events[-2][1]["usage"]["output_tokens"] == 3


def test_tools_and_tool_history_match_native_chat(client: anthropic.Anthropic, server: Server) -> None:
    """Tool definitions, an assistant tool_use and the user's tool_result reach the model as the
    native tools, tool_calls and `tool` message (the same greedy answer as /api/chat gives)."""
    model = ensure_tools_model(server)
    fn = WEATHER_TOOL["function"]
    turns: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny, 24 C"}]}]
    m = client.messages.create(model=model, max_tokens=16, messages=turns, extra_body=GREEDY, tool_choice={"type": "auto"},
                               tools=[{"name": fn["name"], "description": fn["description"], "input_schema": fn["parameters"]}])
    expected = native_chat(server, model, [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "toolu_01", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny, 24 C", "tool_call_id": "toolu_01"}], 16, tools=[WEATHER_TOOL])
    assert text_of(m) == expected and expected
    assert m.stop_reason in ("end_turn", "max_tokens")
    # tools on a model without the capability: the native 400, in Anthropic's shape
    assert_anthropic_error(post(server, {"model": MODEL, "max_tokens": 4, "messages": turns[:1],
                                         "tools": [{"name": "get_weather", "input_schema": fn["parameters"]}]}),
                           400, "invalid_request_error", "registry.ollama.ai/library/smollm2:135m does not support tools")


def test_tool_use_comes_back(client: anthropic.Anthropic, server: Server) -> None:
    """A native tool call becomes a tool_use block and stop_reason `tool_use`; streamed, it is one
    content block with an input_json_delta."""
    model = ensure_tools_model(server)
    m = client.messages.create(model=model, max_tokens=40, messages=anthropic_few_shot(), tools=WEATHER_TOOLS,
                               extra_body=GREEDY)
    (block,) = m.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert m.stop_reason == "tool_use" and block.id
    with client.messages.stream(model=model, max_tokens=40, messages=anthropic_few_shot(),
                                tools=WEATHER_TOOLS, extra_body=GREEDY) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    assert final.content[0].input == {"city": "Paris"}


def test_thinking_is_relaxed_on_a_model_without_it(client: anthropic.Anthropic, server: Server) -> None:
    m = client.messages.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": QUESTION}],
                               thinking={"type": "enabled", "budget_tokens": 1024}, extra_body=GREEDY)
    assert m.content and all(b.type == "text" for b in m.content)
    # the native chat refuses the same request
    r = httpx.post(server.url + "/api/chat", json={"model": MODEL, "think": True, "stream": False,
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400


@pytest.mark.parametrize(("body", "status", "kind", "message"), [
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error",
     "max_tokens is required and must be positive"),
    ({"model": MODEL, "max_tokens": 4, "messages": []}, 400, "invalid_request_error", "messages is required"),
    ({"max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error", "model is required"),
    ({"model": "nope", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}, 404, "not_found_error",
     "model 'nope' not found"),
    ({"model": MODEL, "max_tokens": 4, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "input": {}}]}]}, 400, "invalid_request_error",
     "tool_use block missing required 'name' field"),
    ({"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}, 400,
     "invalid_request_error", "invalid image source type: url. Only base64 images are supported."),
    ({"model": MODEL, "max_tokens": "4", "messages": []}, 400, "invalid_request_error",
     "json: cannot unmarshal string into Go struct field MessagesRequest.max_tokens of type int"),
])
def test_errors(server: Server, body: dict[str, Any], status: int, kind: str, message: str) -> None:
    assert_anthropic_error(post(server, body), status, kind, message)


def test_sdk_raises_typed_errors(client: anthropic.Anthropic, server: Server) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="missing-model", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert nf.value.status_code == 404
    assert_anthropic_error(httpx.post(server.url + "/v1/messages", content=b"{"), 400, "invalid_request_error",
                           "unexpected EOF")
