"""Tool calls and thinking end to end (spec §2, §3, §9, §11, §13) on a real server and runner.

SmolLM2-135M does not call tools or think on its own, so its Modelfile TEMPLATEs force the
formats: few-shot examples it copies under greedy decoding. A `<tool_call>` after `{{ if
.ToolCalls }}` makes `<tool_call>` the tag Ollama's parser looks for; a `<think>` around
`{{ .Thinking }}` in `range .Messages` gives the thinking tags, and the prompt ends with the
opening tag when thinking is on, so the output starts in thinking mode."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from helpers import Server, create_smollm2

pytestmark = pytest.mark.slow

TOOLS_TEMPLATE = """{{- if .Tools }}<|im_start|>system
Tools: {{ range .Tools }}{{ .Function.Name }} {{ end }}
Examples:
user: weather in Rome?
assistant: <tool_call>
{"name": "get_weather", "arguments": {"location": "Rome"}}
</tool_call>
user: weather in Oslo?
assistant: <tool_call>
{"name": "get_weather", "arguments": {"location": "Oslo"}}
</tool_call>
user: weather in Lima?
assistant: <tool_call>
{"name": "get_weather", "arguments": {"location": "Lima"}}
</tool_call><|im_end|>
{{ end }}
{{- range .Messages }}
{{- if eq .Role "user" }}user: {{ .Content }}
{{ else if eq .Role "assistant" }}assistant: {{ if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>{{ else }}{{ .Content }}{{ end }}
{{ else if eq .Role "tool" }}tool ({{ .ToolName }} {{ .ToolCallID }}): {{ .Content }}
{{ end }}
{{- end }}assistant: """

THINK_TEMPLATE = """Examples:
question: 2+2?
answer: <think>
Two plus two.
</think>
4.
question: 3+3?
answer: <think>
Three plus three.
</think>
6.
{{ range .Messages }}{{ if eq .Role "user" }}question: {{ .Content }}
{{ else if eq .Role "assistant" }}answer: {{ if .Thinking }}<think>
{{ .Thinking }}
</think>
{{ end }}{{ .Content }}
{{ end }}{{ end }}answer: {{ if .Think }}<think>
{{ end }}"""

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
ASK = [{"role": "user", "content": "weather in Paris?"}]
CALL_ID = re.compile(r"^call_[a-z0-9]{8}$")
FULL_NAME = "registry.ollama.ai/library/smollm2:135m"


def _unload(server: Server, model: str) -> None:
    """Other modules share the session server: leave no runner of ours loaded."""
    httpx.post(server.url + "/api/generate", json={"model": model, "keep_alive": 0}, timeout=60)


@pytest.fixture(scope="module")
def tooly(server: Server) -> Iterator[str]:
    create_smollm2(server, "tooly:135m", f'TEMPLATE """{TOOLS_TEMPLATE}"""\n'
                   "PARAMETER temperature 0\nPARAMETER num_predict 32\nPARAMETER stop </tool_call>\n")
    yield "tooly:135m"
    _unload(server, "tooly:135m")


@pytest.fixture(scope="module")
def thinky(server: Server) -> Iterator[str]:
    create_smollm2(server, "thinky:135m", f'TEMPLATE """{THINK_TEMPLATE}"""\n'
                   "PARAMETER temperature 0\nPARAMETER num_predict 24\nPARAMETER stop question:\n")
    yield "thinky:135m"
    _unload(server, "thinky:135m")


def _stream(server: Server, route: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", server.url + route, json=body, timeout=300) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line]


def _post(server: Server, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + route, json=body, timeout=300)


def _check_call(call: dict[str, Any], index: int = 0) -> None:
    assert CALL_ID.match(call["id"]), call
    assert call["function"] == {"index": index, "name": "get_weather", "arguments": {"location": "Paris"}}


# -- tools ------------------------------------------------------------------------------------

def test_tool_call_streamed_whole_on_its_own_chunk(server: Server, tooly: str) -> None:
    chunks = _stream(server, "/api/chat", {"model": tooly, "messages": ASK, "tools": [WEATHER]})
    with_calls = [c for c in chunks if c["message"].get("tool_calls")]
    assert len(with_calls) == 1, chunks
    msg = with_calls[0]["message"]
    assert msg["content"] == "" and msg["role"] == "assistant"
    assert len(msg["tool_calls"]) == 1
    _check_call(msg["tool_calls"][0])
    assert chunks[-1]["done"] is True and chunks[-1]["done_reason"] in ("stop", "length")
    assert chunks[-1]["eval_count"] > 0
    assert "<tool_call>" not in "".join(c["message"]["content"] for c in chunks)


def test_tool_call_non_stream_and_real_client(server: Server, tooly: str) -> None:
    body = _post(server, "/api/chat", {"model": tooly, "messages": ASK, "tools": [WEATHER], "stream": False}).json()
    assert body["done"] is True
    [call] = body["message"]["tool_calls"]
    _check_call(call)
    # the ollama Python client reads the same response into its types
    resp = ollama.Client(host=server.url).chat(model=tooly, messages=ASK, tools=[WEATHER])
    [tc] = resp.message.tool_calls or []
    assert tc.function.name == "get_weather" and dict(tc.function.arguments) == {"location": "Paris"}


def test_without_tools_the_raw_text_is_content(server: Server, tooly: str) -> None:
    body = _post(server, "/api/chat", {"model": tooly, "messages": ASK, "stream": False}).json()
    assert "tool_calls" not in body["message"]


def test_tool_results_render_back_through_the_template(server: Server, tooly: str) -> None:
    history = [*ASK,
               {"role": "assistant", "content": "", "tool_calls": [
                   {"id": "call_abc12345", "function": {"index": 0, "name": "get_weather",
                                                        "arguments": {"location": "Paris"}}}]},
               {"role": "tool", "content": "18 C and sunny", "tool_name": "get_weather",
                "tool_call_id": "call_abc12345"},
               {"role": "user", "content": "and in Rome?"}]
    body = {"model": tooly, "messages": history, "tools": [WEATHER]}
    text = _post(server, "/api/chat", {**body, "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert ('assistant: <tool_call>\n{"name": "get_weather", "arguments": {"location":"Paris"}}\n</tool_call>\n'
            "tool (get_weather call_abc12345): 18 C and sunny\nuser: and in Rome?\nassistant: ") in text
    reply = _post(server, "/api/chat", {**body, "stream": False})
    assert reply.status_code == 200, reply.text
    assert reply.json()["done"] is True


def test_tools_on_a_model_without_tools(server: Server) -> None:
    r = _post(server, "/api/chat", {"model": "smollm2:135m", "messages": ASK, "tools": [WEATHER]})
    assert r.status_code == 400
    assert r.json() == {"error": f"{FULL_NAME} does not support tools"}


# -- thinking ---------------------------------------------------------------------------------

def test_thinking_streamed_before_content(server: Server, thinky: str) -> None:
    chunks = _stream(server, "/api/chat", {"model": thinky, "messages": [{"role": "user", "content": "5+5?"}]})
    kinds = ["thinking" if c["message"].get("thinking") else "content" if c["message"]["content"] else ""
             for c in chunks]
    seen = [k for k in kinds if k]
    assert seen and seen[0] == "thinking" and "content" in seen
    assert seen.index("content") > max(i for i, k in enumerate(seen) if k == "thinking")  # thinking first
    thinking = "".join(c["message"].get("thinking", "") for c in chunks)
    content = "".join(c["message"]["content"] for c in chunks)
    assert thinking.strip() and "</think>" not in thinking + content and "<think>" not in content
    assert not content.startswith((" ", "\n"))  # whitespace after the closing tag is eaten


def test_thinking_non_stream_and_think_levels(server: Server, thinky: str) -> None:
    msgs = [{"role": "user", "content": "5+5?"}]
    default = _post(server, "/api/chat", {"model": thinky, "messages": msgs, "stream": False}).json()["message"]
    assert default["thinking"].strip() and default["content"].strip()
    high = _post(server, "/api/chat", {"model": thinky, "messages": msgs, "stream": False, "think": "high"}).json()
    assert high["message"]["thinking"] == default["thinking"]


def test_think_false_renders_without_thinking(server: Server, thinky: str) -> None:
    msgs = [{"role": "user", "content": "5+5?"}]
    on = _post(server, "/api/chat", {"model": thinky, "messages": msgs, "_debug_render_only": True}).json()
    off = _post(server, "/api/chat", {"model": thinky, "messages": msgs, "think": False,
                                      "_debug_render_only": True}).json()
    assert on["_debug_info"]["rendered_template"].endswith("answer: <think>\n")  # think defaults to true
    assert off["_debug_info"]["rendered_template"].endswith("answer: ")
    body = _post(server, "/api/chat", {"model": thinky, "messages": msgs, "think": False, "stream": False}).json()
    assert "thinking" not in body["message"]


def test_format_applies_once_thinking_ends(server: Server, thinky: str) -> None:
    # spec §10: a thinking model first thinks unconstrained; the run restarts with the thinking as an
    # assistant message and the JSON constraint (constrained from the start, the output would be
    # JSON inside the thinking and no content)
    body = {"model": thinky, "messages": [{"role": "user", "content": "5+5?"}], "format": "json", "stream": False}
    reply = _post(server, "/api/chat", body).json()
    msg = reply.get("message", reply)
    assert msg["thinking"].strip() and "{" not in msg["thinking"]
    assert msg["content"].lstrip().startswith("{")


def test_generate_thinking(server: Server, thinky: str) -> None:
    body = _post(server, "/api/generate", {"model": thinky, "prompt": "5+5?", "stream": False}).json()
    assert body["thinking"].strip() and body["response"].strip()
    chunks = _stream(server, "/api/generate", {"model": thinky, "prompt": "5+5?"})
    assert "".join(c.get("thinking", "") for c in chunks) == body["thinking"]
    assert "".join(c["response"] for c in chunks) == body["response"]


def test_earlier_thinking_goes_back_through_the_template(server: Server, thinky: str) -> None:
    msgs = [{"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": "2.", "thinking": "One plus one."},
            {"role": "user", "content": "5+5?"}]
    text = _post(server, "/api/chat", {"model": thinky, "messages": msgs,
                                       "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert "question: 1+1?\nanswer: <think>\nOne plus one.\n</think>\n2.\nquestion: 5+5?\nanswer: <think>\n" in text


@pytest.mark.parametrize("think", [True, "high"])
def test_think_on_a_model_without_thinking(server: Server, think: Any) -> None:
    for route, body in (("/api/chat", {"messages": ASK}), ("/api/generate", {"prompt": "hi"})):
        r = _post(server, route, {"model": "smollm2:135m", "think": think, **body})
        assert r.status_code == 400
        assert r.json() == {"error": '"smollm2:135m" does not support thinking'}


def test_think_false_on_a_model_without_thinking(server: Server) -> None:
    r = _post(server, "/api/generate", {"model": "smollm2:135m", "prompt": "hi", "think": False, "stream": False,
                                        "options": {"num_predict": 2}})
    assert r.status_code == 200 and "thinking" not in r.json()


def test_deepseek_r1_earlier_think_tags_are_stripped(server: Server) -> None:
    create_smollm2(server, "deepseek-r1:tiny", 'TEMPLATE """{{ range .Messages }}{{ .Role }}: {{ .Content }}\n'
                   '{{ end }}assistant: """\n')
    msgs = [{"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": "<think>\nOne plus one.\n</think>\n\n2."},
            {"role": "user", "content": "5+5?"},
            {"role": "assistant", "content": "<think>kept: after the last user message</think>10."}]
    text = _post(server, "/api/chat", {"model": "deepseek-r1:tiny", "messages": msgs,
                                       "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert text == ("user: 1+1?\nassistant: 2.\nuser: 5+5?\n"
                    "assistant: <think>kept: after the last user message</think>10.\nassistant: ")


# -- capabilities reported ----------------------------------------------------------------------

def test_show_and_tags_report_capabilities(server: Server, tooly: str, thinky: str) -> None:
    assert _post(server, "/api/show", {"model": tooly}).json()["capabilities"] == ["completion", "tools"]
    assert _post(server, "/api/show", {"model": thinky}).json()["capabilities"] == ["completion", "thinking"]
    assert _post(server, "/api/show", {"model": "smollm2:135m"}).json()["capabilities"] == ["completion"]
    tags = {m["name"]: m.get("capabilities") for m in httpx.get(server.url + "/api/tags").json()["models"]}
    assert tags[tooly] == ["completion", "tools"] and tags[thinky] == ["completion", "thinking"]


# -- harmony (gpt-oss's format; here a PARSER on SmolLM2 that copies harmony few-shot) ------------

HARMONY_TEMPLATE = """Tools: {{ range .Tools }}{{ .Function.Name }} {{ end }}| effort {{ .ThinkLevel }}
Examples:
user: weather in Rome?
<|start|>assistant<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Rome"}<|call|>
user: weather in Oslo?
<|start|>assistant<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Oslo"}<|call|>
user: weather in Lima?
<|start|>assistant<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Lima"}<|call|>
{{ range .Messages }}{{ if eq .Role "user" }}user: {{ .Content }}
{{ end }}{{ end }}<|start|>assistant"""


@pytest.fixture(scope="module")
def harmonic(server: Server) -> Iterator[str]:
    r = _post(server, "/api/create", {"model": "harmonic:135m", "from": "smollm2:135m", "parser": "harmony",
                                      "template": HARMONY_TEMPLATE, "stream": False,
                                      "parameters": {"temperature": 0, "num_predict": 100, "stop": ["<|call|>"]}})
    assert r.status_code == 200, r.text
    yield "harmonic:135m"
    _unload(server, "harmonic:135m")


def test_harmony_channels_and_tool_call_with_the_callers_tool_name(server: Server, harmonic: str) -> None:
    """§9, §11: a PARSER harmony model: analysis is thinking, a `to=functions.…` message is the
    tool call; the tool the caller named `get-weather` is `get_weather` to the model and comes back
    as `get-weather`. `think: "max"` renders as harmony's "high"."""
    tool = {**WEATHER, "function": {**WEATHER["function"], "name": "get-weather"}}
    body = {"model": harmonic, "messages": ASK, "tools": [tool], "think": "max", "stream": False}
    rendered = _post(server, "/api/chat", {**body, "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert rendered.startswith("Tools: get_weather | effort high\n")
    reply = _post(server, "/api/chat", body).json()
    assert "error" not in reply, reply
    msg = reply["message"]
    assert msg["thinking"] == "Need weather." and msg["content"] == "", reply
    (call,) = msg["tool_calls"]
    assert CALL_ID.match(call["id"])
    # the 135M model copies its last example's city more often than it reads the question's
    assert call["function"]["index"] == 0 and call["function"]["name"] == "get-weather"
    assert list(call["function"]["arguments"]) == ["location"], call


HARMONY_ANSWER_TEMPLATE = """Examples:
user: capital of Peru?
<|start|>assistant<|channel|>analysis<|message|>Easy one.<|end|><|start|>assistant<|channel|>final<|message|>{"capital": "Lima"}<|return|>
user: capital of Chile?
<|start|>assistant<|channel|>analysis<|message|>Easy one.<|end|><|start|>assistant<|channel|>final<|message|>{"capital": "Santiago"}<|return|>
{{ range .Messages }}{{ if eq .Role "user" }}user: {{ .Content }}
{{ end }}{{ end }}<|start|>assistant"""


def test_harmony_format_reasons_first_then_answers_constrained(server: Server) -> None:
    """§10 for harmony: reasoning runs unconstrained; once the final channel opens, generation
    restarts with the analysis closed, the final channel open and the schema enforced."""
    r = _post(server, "/api/create", {"model": "harmonic-json:135m", "from": "smollm2:135m", "parser": "harmony",
                                      "template": HARMONY_ANSWER_TEMPLATE, "stream": False,
                                      "parameters": {"temperature": 0, "num_predict": 40, "stop": ["<|return|>"]}})
    assert r.status_code == 200, r.text
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
    try:
        reply = _post(server, "/api/chat", {"model": "harmonic-json:135m", "stream": False, "think": True,
                                            "format": schema,
                                            "messages": [{"role": "user", "content": "capital of France?"}]}).json()
        assert "error" not in reply, reply
        assert reply["message"]["thinking"] == "Easy one."
        assert isinstance(json.loads(reply["message"]["content"])["capital"], str), reply
    finally:
        _unload(server, "harmonic-json:135m")
