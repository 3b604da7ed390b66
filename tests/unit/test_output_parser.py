"""Output parsers (spec §9 think, §11 tools): recorded-style outputs of real model families fed
in random chunk splits must give the same content, thinking and tool calls as when fed whole.

Go-template cases use the tool-call tag and thinking tags inferred from Ollama library templates
(qwen2.5, llama3.2, mistral v0.3, qwen3); Jinja cases use the family picked from Hugging Face chat
template snippets."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from ollmlx.serve.parsers import (
    OutputParser,
    TemplateToolParser,
    ThinkingParser,
    build_output_parser,
    tool_family,
)
from ollmlx.serve.parsers.thinking import strip_thinking
from ollmlx.text.ollama_template import thinking_tags, tool_call_tag

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location",
    "parameters": {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a timezone",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
TOOLS = [WEATHER, TIME, ADD]

# -- Ollama library TEMPLATEs (trimmed to the parts that matter for parsing) ----------------------
QWEN25_GO = """{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

LLAMA32_GO = """<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023

{{ if .System }}{{ .System }}
{{- end }}
{{- if .Tools }}When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{{ range $.Tools }}
{{- . }}
{{ end }}
{{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""

MISTRAL03_GO = """{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}"""

QWEN3_GO = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if (and $.IsThinkSet (and .Thinking (or $last (gt $i $.LastUserMsgIndex)))) -}}
<think>{{ .Thinking }}</think>
{{ end -}}
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ if and $.IsThinkSet (not $.Think) -}}
<think>

</think>

{{ end -}}
{{ end }}
{{- end }}"""

# -- Hugging Face chat template snippets (the parts a family is recognised by) --------------------
QWEN3_JINJA = ("{%- if tools %}{{- '<|im_start|>system\\n' }}# Tools\\n<tools>{% for tool in tools %}{{ tool | tojson }}"
               "{% endfor %}</tools>\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n"
               "</tool_call><|im_end|>\\n{%- endif %}{%- for message in messages %}{%- if message.role == 'assistant' %}"
               "{%- set content = message.content.split('</think>')[-1] %}<think>\\n{{ reasoning_content }}\\n</think>"
               "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\\n{%- endif %}")
LLAMA31_JINJA = ("{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{%- if builtin_tools is defined %}"
                 "{{- 'Environment: ipython\\n' }}{%- endif %}Given the following functions, please respond with a "
                 "JSON for a function call with its proper arguments. Respond in the format {\"name\": function name, "
                 "\"parameters\": dictionary of argument name and its value}.{%- for tool in tools %}{{ tool | tojson }}"
                 "{%- endfor %}{%- if message.role == 'ipython' %}<|python_tag|>{%- endif %}<|eot_id|>")
MISTRAL_JINJA = ("{%- for message in loop_messages %}{%- if message['role'] == 'user' %}{%- if tools is not none %}"
                 "[AVAILABLE_TOOLS] {{ tools|tojson }}[/AVAILABLE_TOOLS]{%- endif %}[INST] {{ message['content'] }}[/INST]"
                 "{%- elif message.tool_calls is defined %}[TOOL_CALLS] [{%- for tool_call in message.tool_calls %}"
                 "{{ tool_call.function|tojson }}{%- endfor %}]{{ eos_token }}{%- endif %}{%- endfor %}")
HERMES_JINJA = ("{%- if tools %}You are a function calling AI model. <tools>{{ tools|tojson }}</tools> For each function "
                "call return a json object within <tool_call></tool_call> XML tags{%- endif %}")
PLAIN_JINJA = "{% for message in messages %}<|im_start|>{{ message['role'] }}\\n{{ message['content'] }}<|im_end|>\\n{% endfor %}"

ID = re.compile(r"^call_[a-z0-9]{8}$")


def _splits(text: str, seed: int) -> list[str]:
    if seed == -1:
        return [text]
    if seed == -2:
        return list(text)
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 9)
        out.append(text[i:i + n])
        i += n
    return out


SEEDS = [-1, -2, 0, 1, 2, 3, 4, 5]


def run(make: Any, text: str, seed: int) -> tuple[str, str, list[dict[str, Any]], int]:
    """Feed `text` as the runner would (chunks, then a final empty done chunk); returns content,
    thinking, calls, and how many chunks would have been sent."""
    parser: OutputParser = make()
    content, thinking, calls, sent = [], [], [], 0
    pieces = _splits(text, seed)
    for k, piece in enumerate([*pieces, ""]):
        d = parser.feed(piece, done=k == len(pieces))
        if d.hold:
            assert not (d.content or d.thinking or d.tool_calls)
            continue
        sent += 1
        content.append(d.content)
        thinking.append(d.thinking)
        if d.tool_calls:
            assert d.content == "" or d.content.strip(), "tool calls come on their own chunk"
        calls.extend(d.tool_calls)
    return "".join(content), "".join(thinking), calls, sent


def plain_calls(calls: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    for c in calls:
        assert ID.match(c["id"]), c["id"]
        assert list(c) == ["id", "function"] and list(c["function"]) == ["index", "name", "arguments"]
    return [(c["function"]["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls]


def go(template: str, prompt: str = "", tools: list[dict[str, Any]] | None = TOOLS, think: bool = False) -> Any:
    def make() -> OutputParser:
        p = build_output_parser(go_template=template, chat_template=None, prompt=prompt, tools=tools, think=think)
        assert p is not None
        return p
    return make


def jinja(template: str, prompt: str = "", tools: list[dict[str, Any]] | None = TOOLS, think: bool = False) -> Any:
    def make() -> OutputParser:
        p = build_output_parser(go_template=None, chat_template=template, prompt=prompt, tools=tools, think=think)
        assert p is not None
        return p
    return make


# -- tags inferred from real templates ------------------------------------------------------------

def test_tags_inferred_from_library_templates() -> None:
    assert tool_call_tag(QWEN25_GO) == "<tool_call>"
    assert tool_call_tag(LLAMA32_GO) == "{"
    assert tool_call_tag(MISTRAL03_GO) == "[TOOL_CALLS] ["  # the text up to the first "{", trimmed
    assert thinking_tags(QWEN3_GO) == ("<think>", "</think>")
    assert thinking_tags(QWEN25_GO) == ("", "")


def test_family_from_chat_template() -> None:
    assert tool_family(QWEN3_JINJA) == "hermes"
    assert tool_family(HERMES_JINJA) == "hermes"
    assert tool_family(LLAMA31_JINJA) == "llama3"
    assert tool_family(MISTRAL_JINJA) == "mistral"
    assert tool_family(PLAIN_JINJA) == "json"


# -- Go-template path (Ollama's tools.Parser) ---------------------------------------------------

QWEN25_PARALLEL = ('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}\n'
                   '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}\n'
                   '</tool_call>')


@pytest.mark.parametrize("seed", SEEDS)
def test_go_qwen25_parallel_calls(seed: int) -> None:
    content, thinking, calls, _ = run(go(QWEN25_GO), QWEN25_PARALLEL, seed)
    assert (content, thinking) == ("", "")
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Paris", "unit": "celsius"}),
                                  (1, "get_time", {"timezone": "Europe/Paris"})]
    assert list(calls[0]["function"]["arguments"]) == ["location", "unit"]  # key order kept


@pytest.mark.parametrize("seed", SEEDS)
def test_go_qwen25_content_before_call(seed: int) -> None:
    text = 'Let me look that up.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 40}}\n</tool_call>'
    content, _, calls, _ = run(go(QWEN25_GO), text, seed)
    assert content == "Let me look that up.\n"
    assert plain_calls(calls) == [(0, "add", {"a": 2, "b": 40})]


@pytest.mark.parametrize("seed", SEEDS)
def test_go_qwen25_plain_answer(seed: int) -> None:
    text = "The weather in Paris is usually mild in spring; bring a light jacket {just in case}."
    assert run(go(QWEN25_GO), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_go_unknown_tool_after_tag_is_swallowed(seed: int) -> None:
    # Ollama buffers everything after the tag; nothing parses, and nothing is given back
    text = '<tool_call>\n{"name": "book_flight", "arguments": {"to": "Rome"}}\n</tool_call>'
    assert run(go(QWEN25_GO), text, seed)[:3] == ("", "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_go_llama32_json_call(seed: int) -> None:
    text = '{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "fahrenheit"}}'
    content, _, calls, _ = run(go(LLAMA32_GO), text, seed)
    assert content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_go_brace_tag_only_at_start(seed: int) -> None:
    text = 'Sure! Here is JSON: {"name": "get_weather", "parameters": {"location": "Oslo"}}'
    assert run(go(LLAMA32_GO), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_go_brace_tag_unparsed_json_comes_back(seed: int) -> None:
    text = '{"answer": 42, "unit": "none"}'
    assert run(go(LLAMA32_GO), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_go_mistral_tool_calls(seed: int) -> None:
    text = ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Paris"}}, '
            '{"name": "add", "arguments": {"a": 1, "b": 2}}]')
    content, _, calls, _ = run(go(MISTRAL03_GO), text, seed)
    assert content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Paris"}), (1, "add", {"a": 1, "b": 2})]


def test_go_arguments_as_json_string_and_nested_name() -> None:
    p = TemplateToolParser("<tool_call>", TOOLS)
    calls, content = p.add('<tool_call>{"name": "get_time", "arguments": "{\\"timezone\\": \\"UTC\\"}"}</tool_call>')
    assert [c["function"]["arguments"] for c in calls] == [{"timezone": "UTC"}] and content == ""
    p = TemplateToolParser("{", TOOLS)
    calls, _ = p.add('{"get_weather": {"location": "Lima"}}')
    assert calls == [{"function": {"index": 0, "name": "get_weather", "arguments": {"location": "Lima"}}}]


def test_go_partial_tool_name_waits() -> None:
    names = [{"type": "function", "function": {"name": "say_hello"}},
             {"type": "function", "function": {"name": "say_hello_world"}}]
    p = TemplateToolParser("<tool_call>", names)
    assert p.add('<tool_call>{"name": "say_hello') == ([], "")
    calls, _ = p.add('_world", "arguments": {}}</tool_call>')
    assert [c["function"]["name"] for c in calls] == ["say_hello_world"]


# -- thinking ---------------------------------------------------------------------------------

R1_OUTPUT = ("Okay, the user asks for 17 * 23. 17 * 20 = 340 and 17 * 3 = 51, so 391.\n</think>\n\n"
             "17 \u00d7 23 = **391**.")


@pytest.mark.parametrize("seed", SEEDS)
def test_thinking_started_by_prompt(seed: int) -> None:
    # the rendered prompt ends with the opening tag, so the output starts inside the thinking
    prompt = "<|im_start|>user\nWhat is 17*23?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    content, thinking, calls, _ = run(go(QWEN3_GO, prompt, tools=None, think=True), R1_OUTPUT, seed)
    assert thinking == "Okay, the user asks for 17 * 23. 17 * 20 = 340 and 17 * 3 = 51, so 391.\n"
    assert content == "17 \u00d7 23 = **391**."
    assert calls == []


QWEN3_THINK_AND_CALL = ("<think>\nThe user wants the weather in Paris. I have get_weather, which needs a location. "
                        "I'll call it with \"Paris\".\n</think>\n\n<tool_call>\n"
                        '{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>')


@pytest.mark.parametrize("seed", SEEDS)
def test_go_qwen3_thinking_then_tool_call(seed: int) -> None:
    prompt = "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    content, thinking, calls, sent = run(go(QWEN3_GO, prompt, think=True), QWEN3_THINK_AND_CALL, seed)
    assert thinking.startswith("The user wants the weather in Paris.") and thinking.endswith('"Paris".\n')
    assert content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Paris"})]
    assert sent >= 2  # thinking deltas, then the call on a chunk of its own


@pytest.mark.parametrize("seed", SEEDS)
def test_thinking_skipped_when_output_has_no_tag(seed: int) -> None:
    text = "  Paris is the capital of France."
    assert run(go(QWEN3_GO, "", tools=None, think=True), text, seed)[:2] == (text, "")


def test_thinking_parser_whitespace_and_partial_tags() -> None:
    p = ThinkingParser("<think>", "</think>")
    assert p.add("  <thi") == ("", "")
    assert p.add("nk>\n\n ") == ("", "")
    assert p.add("a</th") == ("a", "")
    assert p.add("inking is not the end") == ("</thinking is not the end", "")
    assert p.add("</think>") == ("", "")
    assert p.add("\n\n") == ("", "")
    assert p.add(" Answer ") == ("", "Answer ")
    assert p.thinking_done


def test_no_parser_without_thinking_or_tools() -> None:
    assert build_output_parser(go_template=QWEN3_GO, chat_template=None, prompt="", tools=None, think=False) is None
    assert build_output_parser(go_template=None, chat_template=PLAIN_JINJA, prompt="", tools=None, think=True) is None


def test_strip_earlier_thinking() -> None:
    assert strip_thinking("<think>\nlet me see\n</think>\n\nParis.") == "Paris."
    assert strip_thinking("Paris.") == "Paris."


# -- Jinja families -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_qwen3_think_and_hermes_call(seed: int) -> None:
    prompt = "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    content, thinking, calls, _ = run(jinja(QWEN3_JINJA, prompt, think=True), QWEN3_THINK_AND_CALL, seed)
    assert thinking.startswith("The user wants") and content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Paris"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_hermes_content_calls_and_trailing_text(seed: int) -> None:
    text = ("I'll check both.\n\n" + QWEN25_PARALLEL + "\nOne moment.")
    content, _, calls, _ = run(jinja(HERMES_JINJA), text, seed)
    assert content == "I'll check both.One moment."
    assert [c[1] for c in plain_calls(calls)] == ["get_weather", "get_time"]
    assert [c[0] for c in plain_calls(calls)] == [0, 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_hermes_invalid_body_is_content(seed: int) -> None:
    text = "<tool_call>\nnot json at all\n</tool_call>"
    assert run(jinja(HERMES_JINJA), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_hermes_unterminated_call_at_end(seed: int) -> None:
    # the model stopped on its end-of-turn token right after the JSON
    text = '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n'
    assert plain_calls(run(jinja(HERMES_JINJA), text, seed)[2]) == [(0, "get_time", {"timezone": "Asia/Tokyo"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_qwen3_coder_xml_body(seed: int) -> None:
    text = ("<tool_call>\n<function=add>\n<parameter=a>\n2\n</parameter>\n<parameter=b>\n3\n</parameter>\n</function>\n"
            "</tool_call><tool_call>\n<function=get_weather>\n<parameter=location>\n42 Main St\n</parameter>\n"
            "</function>\n</tool_call>")
    calls = plain_calls(run(jinja(HERMES_JINJA), text, seed)[2])
    assert calls == [(0, "add", {"a": 2, "b": 3}), (1, "get_weather", {"location": "42 Main St"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_llama31_python_tag(seed: int) -> None:
    text = '<|python_tag|>{"name": "get_weather", "parameters": {"location": "Tokyo", "unit": "celsius"}}'
    content, _, calls, _ = run(jinja(LLAMA31_JINJA), text, seed)
    assert content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Tokyo", "unit": "celsius"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_llama32_bare_json_calls(seed: int) -> None:
    text = ('{"name": "get_weather", "parameters": {"location": "Rome"}}; '
            '{"name": "get_time", "parameters": {"timezone": "Europe/Rome"}}')
    calls = plain_calls(run(jinja(LLAMA31_JINJA), text, seed)[2])
    assert calls == [(0, "get_weather", {"location": "Rome"}), (1, "get_time", {"timezone": "Europe/Rome"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_llama3_plain_answer_with_braces(seed: int) -> None:
    text = 'In Python, use a dict like {"a": 1} to map keys.'
    assert run(jinja(LLAMA31_JINJA), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_llama3_json_that_is_no_call(seed: int) -> None:
    text = '{"city": "Rome", "population": 2873000}'
    assert run(jinja(LLAMA31_JINJA), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_mistral_v3_list(seed: int) -> None:
    text = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}]'
    content, _, calls, _ = run(jinja(MISTRAL_JINJA), text, seed)
    assert content == ""
    assert plain_calls(calls) == [(0, "get_weather", {"location": "Paris", "unit": "celsius"})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_mistral_v11_name_args(seed: int) -> None:
    text = '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]add[ARGS]{"a": 5, "b": 7}'
    calls = plain_calls(run(jinja(MISTRAL_JINJA), text, seed)[2])
    assert calls == [(0, "get_weather", {"location": "Paris"}), (1, "add", {"a": 5, "b": 7})]


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_mistral_plain_answer(seed: int) -> None:
    text = "Paris is sunny today [citation needed]."
    assert run(jinja(MISTRAL_JINJA), text, seed)[:3] == (text, "", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_jinja_deepseek_r1_style_prompt_ends_in_think(seed: int) -> None:
    prompt = "<\uff5cUser\uff5c>What is 17*23?<\uff5cAssistant\uff5c><think>\n"
    content, thinking, _, _ = run(jinja(QWEN3_JINJA, prompt, tools=None, think=True), R1_OUTPUT, seed)
    assert thinking.startswith("Okay, the user asks") and content == "17 \u00d7 23 = **391**."
