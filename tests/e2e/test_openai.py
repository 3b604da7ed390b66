"""The OpenAI-compatible API (spec §20) through the official `openai` client and raw HTTP against a
live server with SmolLM2 135M: chat (stream and not, usage, stop, seed, logprobs, structured output,
tools, images), completions, models, embeddings, responses, and the exact validation errors."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import openai
import pydantic
import pytest
import zstandard

from helpers import Server, minilm_dir
from tools_model import WEATHER_TOOL, ensure_tools_model, openai_few_shot

MODEL = "smollm2:135m"
QUESTION = "What is the capital of France? Answer briefly."
ASK: Any = [{"role": "user", "content": QUESTION}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def tools_model(server: Server) -> str:
    return ensure_tools_model(server)


@pytest.fixture(scope="module")
def minilm(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """all-MiniLM-L6-v2 from its PyPI package, imported with `ollmlx create`."""
    modelfile = tmp_path_factory.mktemp("minilm") / "Modelfile"
    modelfile.write_text(f"FROM {minilm_dir()}\n")
    r = server.cli("create", "all-minilm", "-f", str(modelfile))
    assert r.returncode == 0, r.stderr
    return "all-minilm"


def post(server: Server, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120, **kw)


def sse_data(r: httpx.Response) -> list[Any]:
    """The `data:` payloads of an event stream (`[DONE]` kept as a string)."""
    out: list[Any] = []
    for block in r.text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def assert_openai_error(r: httpx.Response, status: int, message: str) -> None:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"message": message, "type": kind, "param": None, "code": None}}


# -- /v1/chat/completions ----------------------------------------------------------------------
def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=24)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.system_fingerprint == "fp_ollama"
    assert r.model == MODEL and "Paris" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.role == "assistant"
    assert r.usage and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_with_usage(client: openai.OpenAI, server: Server) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=24,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].choices[0].delta.content is None
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    assert len({c.created for c in chunks}) == 1 and len({c.id for c in chunks}) == 1
    # the raw stream: text/event-stream, `data: ` events, `content` always present, [DONE] last
    r = post(server, "/v1/chat/completions", {"model": MODEL, "messages": ASK, "temperature": 0,
                                              "max_tokens": 3, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_data(r)
    assert events[-1] == "[DONE]" and events[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert all("content" in e["choices"][0]["delta"] for e in events[:-2])
    assert not any("usage" in e for e in events[:-1])


def test_chat_max_tokens_stop_and_seed(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage and r.usage.completion_tokens == 3
    r = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_completion_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage and r.usage.completion_tokens == 2
    r = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=24, stop=["Paris"])
    assert "Paris" not in (r.choices[0].message.content or "") and r.choices[0].finish_reason == "stop"
    # temperature defaults to 1.0 (sampling), so a seed is what makes two answers equal
    a, b = (client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say a word."}],
                                           seed=7, max_tokens=8).choices[0].message.content for _ in range(2))
    assert a == b


def test_chat_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, temperature=0, max_tokens=4,
                                       logprobs=True, top_logprobs=2)
    lps = r.choices[0].logprobs
    assert lps and lps.content and len(lps.content) == 4
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lps.content)
    assert "".join(t.token for t in lps.content) == r.choices[0].message.content


class Capital(pydantic.BaseModel):
    country: str
    capital: str


def test_structured_output_with_a_pydantic_schema(client: openai.OpenAI) -> None:
    # response_format json_schema → native `format`, enforced by constrained decoding (spec §10)
    r = client.chat.completions.parse(model=MODEL, temperature=0, max_tokens=40, response_format=Capital,
                                      messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}])
    parsed = r.choices[0].message.parsed
    assert parsed is not None and parsed.capital == "Paris"


def test_json_object_mode(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, temperature=0, max_tokens=60, response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}])
    assert r.choices[0].finish_reason == "stop"
    assert "Paris" in json.loads(r.choices[0].message.content or "").values()


def test_tools_and_tool_history_reach_the_template(server: Server, tools_model: str) -> None:
    """Tool definitions, assistant tool_calls (arguments given as a JSON string) and a tool result
    named from its tool_call_id arrive in the prompt (`_debug_render_only` shows it)."""
    body = {"model": tools_model, "_debug_render_only": True, "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}
    rendered = post(server, "/v1/chat/completions", body).json()["_debug_info"]["rendered_template"]
    assert "get_weather: Current weather of a city" in rendered
    assert '<|im_start|>assistant\n{"name": "get_weather", "arguments": {"city":"Paris"}}<|im_end|>' in rendered
    assert "<|im_start|>tool\nsunny<|im_end|>" in rendered and rendered.endswith("<|im_start|>assistant\n")
    # a real answer with tools on; the model answers in text, which stays content
    r = post(server, "/v1/chat/completions", {**body, "_debug_render_only": False, "temperature": 0, "max_tokens": 16})
    choice = r.json()["choices"][0]
    assert r.status_code == 200 and choice["finish_reason"] in ("stop", "length") and "tool_calls" not in choice["message"]
    # tools on a model without the capability is the native 400, in OpenAI's shape
    assert_openai_error(post(server, "/v1/chat/completions", {"model": MODEL, "messages": ASK, "tools": [WEATHER_TOOL]}),
                        400, "registry.ollama.ai/library/smollm2:135m does not support tools")


def test_tool_calls_come_back_as_openai_tool_calls(client: openai.OpenAI, tools_model: str) -> None:
    """A native tool call (parsed by the server from the model's output) becomes `tool_calls` with
    JSON-string arguments and finish_reason `tool_calls`, streamed and not."""
    r = client.chat.completions.create(model=tools_model, messages=openai_few_shot(), tools=[WEATHER_TOOL],
                                       temperature=0, max_tokens=40)
    (call,) = r.choices[0].message.tool_calls or []
    assert r.choices[0].finish_reason == "tool_calls" and call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(client.chat.completions.create(model=tools_model, messages=openai_few_shot(), tools=[WEATHER_TOOL],
                                                 temperature=0, max_tokens=40, stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments or "")) for tc in calls if tc.function] == \
        [(0, "get_weather", {"city": "Paris"})]
    assert chunks[-1].choices[0].finish_reason == "tool_calls" and chunks[-1].choices[0].delta.tool_calls is None


def test_responses_function_call(client: openai.OpenAI, tools_model: str) -> None:
    tool: Any = {"type": "function", "name": "get_weather", "description": WEATHER_TOOL["function"]["description"],
            "parameters": WEATHER_TOOL["function"]["parameters"]}
    history: Any = [{"role": "user", "content": "Call get_weather with city London."},
               {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "London"}'},
               {"type": "function_call_output", "call_id": "call_1", "output": "rainy"},
               {"role": "user", "content": "Call get_weather with city Paris."}]
    r = client.responses.create(model=tools_model, input=history, tools=[tool], temperature=0,
                                max_output_tokens=40)
    (item,) = r.output
    assert item.type == "function_call" and item.name == "get_weather" and json.loads(item.arguments) == {"city": "Paris"}
    with client.responses.stream(model=tools_model, input=history, tools=[tool], temperature=0,
                                 max_output_tokens=40) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds and final.output[0].type == "function_call"


def test_image_parts_become_native_images(server: Server) -> None:
    body = {"model": MODEL, "_debug_render_only": True, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": f"data:;base64,{PNG}"}]}]}
    assert post(server, "/v1/chat/completions", body).json()["_debug_info"]["image_count"] == 2


def test_reasoning_effort(server: Server) -> None:
    base = {"model": MODEL, "messages": ASK, "temperature": 0, "max_tokens": 2}
    assert post(server, "/v1/chat/completions", {**base, "reasoning_effort": "none"}).status_code == 200
    assert_openai_error(post(server, "/v1/chat/completions", {**base, "reasoning_effort": "high"}),
                        400, '"smollm2:135m" does not support thinking')
    assert_openai_error(post(server, "/v1/chat/completions", {**base, "reasoning": {"effort": "huge"}}), 400,
                        'invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", '
                        '"ultra", "max", or "none")')


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"model": MODEL, "messages": []}, 400, "[] is too short - 'messages'"),
    ({"model": MODEL}, 400, "[] is too short - 'messages'"),
    ({"model": MODEL, "messages": [{"role": "user", "content": None}]}, 400, "invalid message content type: <nil>"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400, "invalid message format"),
    ({"model": MODEL, "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}]}, 400, "invalid tool call arguments"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, 400,
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}]}]}, 400, "invalid image input"),
    ({"model": "nope", "messages": ASK}, 404, "model 'nope' not found"),
    ({"model": "", "messages": ASK}, 400, "model is required"),
    ({"model": MODEL, "messages": "hi"}, 400,
     "json: cannot unmarshal string into Go struct field ChatCompletionRequest.messages of type []openai.Message"),
])
def test_chat_validation_errors(server: Server, body: dict[str, Any], status: int, message: str) -> None:
    assert_openai_error(post(server, "/v1/chat/completions", body), status, message)


def test_body_errors(server: Server) -> None:
    url = server.url + "/v1/chat/completions"
    assert_openai_error(httpx.post(url, content=b""), 400, "EOF")
    assert_openai_error(httpx.post(url, content=b"{"), 400, "unexpected EOF")
    assert_openai_error(httpx.post(url, content=b"[1]"), 400,
                        "json: cannot unmarshal array into Go value of type openai.ChatCompletionRequest")
    assert httpx.get(url).status_code == 405


def test_sdk_raises_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="missing-model", messages=ASK)
    assert nf.value.status_code == 404 and "not found" in nf.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])


# -- /v1/completions ---------------------------------------------------------------------------
def test_completions(client: openai.OpenAI, server: Server) -> None:
    r = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=4)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert r.usage and r.usage.completion_tokens == 4 and r.choices[0].text
    streamed = list(client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0,
                                              max_tokens=4, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text
    assert all(c.usage is not None for c in streamed)  # zeroed on every chunk, real on the last
    assert streamed[-1].choices == [] and streamed[-1].usage and streamed[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "length"
    r2 = post(server, "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2, "logprobs": 3, "temperature": 0})
    assert [len(t["top_logprobs"]) for t in r2.json()["choices"][0]["logprobs"]["content"]] == [3, 3]
    assert_openai_error(post(server, "/v1/completions", {"model": MODEL, "prompt": "x", "stop": ["a", 1]}),
                        400, "invalid type for 'stop' field: float64")
    assert_openai_error(post(server, "/v1/completions", {"model": "", "prompt": "x"}), 404, "model '' not found")


# -- /v1/models --------------------------------------------------------------------------------
def test_models_list_and_retrieve(client: openai.OpenAI, server: Server) -> None:
    listed = {m.id: m for m in client.models.list().data}
    assert MODEL in listed and listed[MODEL].owned_by == "library" and listed[MODEL].object == "model"
    got = client.models.retrieve(MODEL)
    assert got.id == MODEL and got.created == listed[MODEL].created
    # the id may hold `/` and `:`; an unknown one is an OpenAI-shaped 404 (not the router's plain 404)
    assert_openai_error(httpx.get(server.url + "/v1/models/hf.co/org/repo:Q4_K_M"), 404,
                        "model 'hf.co/org/repo:Q4_K_M' not found")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


# -- /v1/embeddings ----------------------------------------------------------------------------
def test_embeddings_float_base64_and_dimensions(client: openai.OpenAI, server: Server, minilm: str) -> None:
    texts = ["Why is the sky blue?", "hello"]
    r = client.embeddings.create(model=minilm, input=texts, encoding_format="float")
    assert [d.index for d in r.data] == [0, 1] and r.model == minilm and r.usage.prompt_tokens > 0
    native = post(server, "/api/embed", {"model": minilm, "input": texts}).json()
    assert [d.embedding for d in r.data] == native["embeddings"]
    assert r.usage.prompt_tokens == r.usage.total_tokens == native["prompt_eval_count"]
    # base64: the same float32 values, little-endian
    single = post(server, "/v1/embeddings", {"model": minilm, "input": "hello"}).json()["data"][0]["embedding"]
    raw = post(server, "/v1/embeddings", {"model": minilm, "input": "hello", "encoding_format": "base64"}).json()
    vec = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack(f"<{len(vec) // 4}f", vec) == tuple(struct.unpack(f"<{len(single)}f",
                                                                         struct.pack(f"<{len(single)}f", *single)))
    # the SDK asks for base64 by default and decodes it itself
    assert client.embeddings.create(model=minilm, input="hello").data[0].embedding == pytest.approx(single, abs=1e-7)
    short = client.embeddings.create(model=minilm, input="hello", dimensions=8, encoding_format="float")
    assert len(short.data[0].embedding) == 8
    assert sum(x * x for x in short.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert post(server, "/v1/embeddings", {"model": minilm, "input": ""}).json()["data"][0]["index"] == 0
    assert_openai_error(post(server, "/v1/embeddings", {"model": minilm, "input": []}), 400, "invalid input")
    assert_openai_error(post(server, "/v1/embeddings", {"model": minilm, "input": "x", "encoding_format": "hex"}), 400,
                        "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64'].")
    assert_openai_error(post(server, "/v1/embeddings", {"model": "nope", "input": "x"}), 404,
                        'model "nope" not found, try pulling it first')


# -- /v1/responses -----------------------------------------------------------------------------
def test_responses(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input=QUESTION, temperature=0, max_output_tokens=24)
    assert r.id.startswith("resp_") and r.status == "completed" and "Paris" in r.output_text
    assert r.usage and r.usage.output_tokens > 0 and r.max_output_tokens == 24
    r2 = client.responses.create(model=MODEL, instructions="Answer briefly.", temperature=0, max_output_tokens=24,
                                 input=[{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}])
    assert r2.instructions == "Answer briefly." and "Paris" in r2.output_text


def test_responses_stream_events(client: openai.OpenAI, server: Server) -> None:
    with client.responses.stream(model=MODEL, input=QUESTION, temperature=0, max_output_tokens=24) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "Paris" in final.output_text and final.status == "completed"
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    # raw: `event:` lines name each event, and sequence numbers count up from 0
    r = post(server, "/v1/responses", {"model": MODEL, "input": "Hi", "max_output_tokens": 2, "stream": True})
    names = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert [e["sequence_number"] for e in sse_data(r)] == list(range(len(names)))


def test_responses_zstd_body_and_errors(server: Server) -> None:
    body = json.dumps({"model": MODEL, "input": QUESTION, "temperature": 0, "max_output_tokens": 24}).encode()
    r = httpx.post(server.url + "/v1/responses", content=zstandard.ZstdCompressor().compress(body),
                   headers={"Content-Encoding": "zstd", "Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 200 and "Paris" in r.json()["output"][0]["content"][0]["text"]
    bad = httpx.post(server.url + "/v1/responses", content=b"not zstd", headers={"Content-Encoding": "zstd"})
    assert_openai_error(bad, 400, "failed to decompress zstd body")
    assert_openai_error(post(server, "/v1/responses", {"model": MODEL, "input": [{"content": "x"}]}), 400,
                        "input[0]: input item missing required 'type' field")
    assert_openai_error(post(server, "/v1/responses", {"model": MODEL, "input": "x", "reasoning": {"effort": "big"}}),
                        400, 'invalid reasoning value: "big" (must be "minimal", "low", "medium", "high", "xhigh", '
                        '"ultra", "max", or "none")')
