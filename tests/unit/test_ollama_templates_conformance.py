"""Ollama's template library must render byte for byte as Ollama does, plus Ollama's own
template-semantics cases (template/template_test.go, thinking/template_test.go, tools/template_test.go)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from ollmlx.text import ollama_template as ot
from ollmlx.text.gotemplate import TemplateError

# A copy of ../shared/conformance/ollama-templates (Ollama's template library with expected
# renderings) lives in tests/data so the suite is complete on a clean clone; OLLMLX_SHARED points
# at another copy of the shared folder.
_env = os.environ.get("OLLMLX_SHARED")
TEMPLATES_DIR = (Path(_env) / "conformance" if _env else Path(__file__).resolve().parents[1] / "data") / "ollama-templates"

USER = [{"role": "user", "content": "Hello, how are you?"}]
USER_ASSISTANT_USER = [
    *USER,
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
CASES = {
    "user": USER,
    "user-assistant-user": USER_ASSISTANT_USER,
    "system-user-assistant-user": [{"role": "system", "content": "You are a helpful assistant."},
                                   *USER_ASSISTANT_USER],
}


def _library_cases() -> list[tuple[str, str]]:
    out = []
    for tmpl in sorted(TEMPLATES_DIR.glob("*.gotmpl")):
        case_dir = TEMPLATES_DIR / "testdata" / tmpl.name
        for case in sorted(p.name for p in case_dir.iterdir()) if case_dir.is_dir() else []:
            out.append((tmpl.name, case))
    return out


LIBRARY = _library_cases()


def test_library_is_present() -> None:
    assert TEMPLATES_DIR.is_dir(), TEMPLATES_DIR
    names = sorted(p.name for p in TEMPLATES_DIR.glob("*.gotmpl"))
    assert len(names) >= 20
    for name in names:  # every template has expectations
        assert (TEMPLATES_DIR / "testdata" / name).is_dir(), name


@pytest.mark.parametrize(("name", "case"), LIBRARY, ids=[f"{n}/{c}" for n, c in LIBRARY])
def test_library_template_renders_byte_for_byte(name: str, case: str) -> None:
    assert case in CASES, f"no message list defined for case {case!r} (see README.md)"
    text = (TEMPLATES_DIR / name).read_bytes().decode("utf-8").replace("\r\n", "\n")
    expected = (TEMPLATES_DIR / "testdata" / name / case).read_bytes()
    got = ot.render_messages(ot.parse(text), CASES[case]).encode("utf-8")
    assert got == expected


@pytest.mark.parametrize(("name", "case"), LIBRARY, ids=[f"{n}/{c}" for n, c in LIBRARY])
def test_library_templates_parse_and_use_messages(name: str, case: str) -> None:
    t = ot.parse((TEMPLATES_DIR / name).read_text())
    assert ot.uses_messages(t)
    assert str(t.template.root) != ""


def test_library_params_are_json() -> None:
    for p in TEMPLATES_DIR.glob("*.json"):
        json.loads(p.read_text())


# ---- Vars / parse (template_test.go TestParse, TestParseError) ---------------------------------

VARS = [
    ("{{ .Prompt }}", ["prompt", "response"]),
    ("{{ .System }} {{ .Prompt }}", ["prompt", "response", "system"]),
    ("{{ .System }} {{ .Prompt }} {{ .Response }}", ["prompt", "response", "system"]),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", ["prompt", "response", "system", "tools"]),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", ["content", "messages", "role"]),
    ('{{ range .Messages }}{{ if eq .Role "tool" }}Tool Result: {{ .ToolName }} {{ .Content }}{{ end }}{{ end }}',
     ["content", "messages", "role", "toolname"]),
    ("{{- if .Messages }}{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
     "<|im_start|>assistant\n{{ else -}}{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
     "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
     "{{ .Response }}<|im_end|>\n{{- end -}}",
     ["content", "messages", "prompt", "response", "role", "system"]),
]


@pytest.mark.parametrize(("text", "expected"), VARS)
def test_vars(text: str, expected: list[str]) -> None:
    assert ot.parse(text).vars() == expected


def test_parse_errors() -> None:
    with pytest.raises(TemplateError, match="unclosed action"):
        ot.parse("{{ .Prompt ")
    with pytest.raises(TemplateError, match="undefined template specified"):
        ot.parse('{{define "x"}}{{template "x"}}{{end}}{{template "x"}}')


def test_default_template_and_response_append() -> None:
    assert ot.DEFAULT_TEMPLATE == "{{ .Prompt }}"
    t = ot.parse(ot.DEFAULT_TEMPLATE)
    assert str(t.template.root) == "{{.Prompt}}{{.Response}}"
    assert str(ot.parse("{{ .Prompt }}{{ .Response }}!").template.root).endswith("!")
    assert ot.render_messages(ot.DEFAULT_TEMPLATE, [{"role": "user", "content": "hi"}]) == "hi"


def test_capability_helpers() -> None:
    tools = '{{ range .Messages }}{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}{{ end }}{{ end }}{{ .Tools }}'
    assert ot.has_tools(tools) and not ot.has_insert(tools)
    assert ot.has_insert("{{ .Prompt }}{{ .Suffix }}")
    assert ot.template_vars("{{ .Foo.Bar }}") == {"foo", "bar", "response"}
    assert ot.capabilities(tools) == ["tools"]
    assert ot.tool_call_tag(tools) == "<tool_call>"


# ---- execution (template_test.go TestExecuteWithMessages & friends) ----------------------------

HELLO = [
    {"role": "user", "content": "Hello friend!"},
    {"role": "assistant", "content": "Hello human!"},
    {"role": "user", "content": "What is your name?"},
]
MISTRAL_NO_RESPONSE = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] "
MISTRAL_RESPONSE = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}"
MISTRAL_MESSAGES = ("[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n"
                    '{{- if eq .Role "user" }}{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}'
                    "{{ .Content }}[INST] {{ end }}\n{{- end }}")
CHATML_RESPONSE = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}"
                   "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
                   "{{ .Response }}<|im_end|>\n")
CHATML_MESSAGES = ("\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                   "{{ end }}<|im_start|>assistant\n")


@pytest.mark.parametrize("text", [MISTRAL_NO_RESPONSE, MISTRAL_RESPONSE, MISTRAL_MESSAGES])
def test_mistral(text: str) -> None:
    expected = "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "
    assert ot.render_messages(text, HELLO) == expected
    with_system = [{"role": "system", "content": "You are a helpful assistant!"}, *HELLO]
    expected = ("[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] "
                "What is your name?[/INST] ")
    assert ot.render_messages(text, with_system) == expected


def test_mistral_assistant_prefill() -> None:
    msgs = [*HELLO, {"role": "assistant", "content": "My name is Ollama and I"}]
    expected = "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I"
    for text in ("[INST] {{ .Prompt }}[/INST] ", "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
                 '\n{{- range $i, $m := .Messages }}\n{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST] '
                 '{{ else if eq .Role "assistant" }}{{ .Content }}{{ end }}\n{{- end }}'):
        assert ot.render_messages(text, msgs) == expected


@pytest.mark.parametrize("text", [CHATML_RESPONSE, CHATML_MESSAGES])
def test_chatml(text: str) -> None:
    msgs = [{"role": "system", "content": "You are a helpful assistant!"}, *HELLO]
    expected = ("<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!"
                "<|im_end|>\n<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\n"
                "What is your name?<|im_end|>\n<|im_start|>assistant\n")
    assert ot.render_messages(text, msgs) == expected


def test_legacy_cut_semantics() -> None:
    # everything after {{ .Response }} is cut on the last turn, including later pipeline stages
    t = '{{ .System }} {{ .Prompt }} {{ .Response | printf "%s" }} after'
    assert ot.render_messages(t, HELLO) == " Hello friend! Hello human! after What is your name? "
    t = '{{ .Prompt }}{{ printf "%s!" .Response }} after {{ .Prompt }}'
    assert ot.render_messages(t, HELLO) == "Hello friend!Hello human!! after Hello friend!What is your name?!"
    # a {{ .Response }} inside a branch that has an else: Ollama panics (HTTP 500)
    with pytest.raises(TemplateError, match="interface conversion"):
        ot.render_messages("{{ .Prompt }}{{ if .X }}{{ .Response }}{{ else }}b{{ end }}", HELLO)
    # the last turn runs without Ollama's functions
    with pytest.raises(TemplateError, match='"json" is not a defined function'):
        ot.render_messages("{{ json .Prompt }}{{ .Response }}", HELLO)


def test_fim() -> None:
    t = ("{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n"
         "{{- end }}")
    assert ot.render_messages(t, [{"role": "user", "content": "hello"}]) == "hello"
    assert ot.render_fim(t, "def add(", "return x") == "<PRE> def add( <SUF>return x <MID>"
    assert ot.render_fim(t, "", "return x") == ""


def test_date_functions() -> None:
    today = datetime.date.today()
    t = "{{- range .Messages }}{{ .Content }}{{ end }} Today is {{ currentDate }}"
    assert ot.render_messages(t, [{"role": "user", "content": "Hello"}]) == f"Hello Today is {today:%Y-%m-%d}"
    t = "{{- range .Messages }}{{ end }}{{ yesterdayDate }}"
    assert ot.render_messages(t, []) == f"{today - datetime.timedelta(days=1):%Y-%m-%d}"
    with pytest.raises(TemplateError, match="expected string; found 1"):
        ot.render_messages("{{ range .Messages }}{{ end }}{{ currentDate 1 }}", [])


def test_collate() -> None:
    system, msgs = ot.collate([
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": "How are you?"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "72F", "tool_name": "get_temperature"},
        {"role": "system", "content": "Be brief"},
    ])
    assert system == "You are helpful\n\nBe brief"
    assert [(m.Role, m.Content, m.ToolName) for m in msgs] == [
        ("system", "You are helpful", ""), ("user", "Hello\n\nHow are you?", ""),
        ("tool", "sunny", "get_weather"), ("tool", "72F", "get_temperature"), ("system", "Be brief", ""),
    ]
    t = "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}"
    assert ot.render_messages(t, [{"role": "user", "content": "a"}], system="S") == "S|system:S;user:a;"


TOOL_MSGS = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"unit": "celsius", "location": "Tokyo", "days": 3}}}]},
    {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get <weather>",
    "parameters": {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string", "description": "City name"},
        "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]},
        "opts": {"type": "object", "properties": {"z": {"type": "boolean"}, "a": {"type": "array"}}},
    }}}}]


def test_tool_call_arguments_print_as_json() -> None:
    t = "{{- range .Messages }}{{- range .ToolCalls }}{{ .Function.Arguments }}{{- end }}{{- end }}"
    assert ot.render_messages(t, TOOL_MSGS) == '{"days":3,"location":"Tokyo","unit":"celsius"}'
    t = "{{- range .Messages }}{{- range .ToolCalls }}{{- range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{- end }}{{- end }}{{- end }}"
    assert ot.render_messages(t, TOOL_MSGS) == "days=3;location=Tokyo;unit=celsius;"
    t = "{{ range .Messages }}{{ range .ToolCalls }}{{ . }}|{{ json . }}{{ end }}{{ end }}"
    assert ot.render_messages(t, TOOL_MSGS) == (
        '{ {0 get_weather {"days":3,"location":"Tokyo","unit":"celsius"}}}|'
        '{"ID":"","Function":{"Index":0,"Name":"get_weather","Arguments":{"days":3,"location":"Tokyo","unit":"celsius"}}}')


def test_tools_print_as_json_and_range() -> None:
    t = "{{- range .Messages }}{{- end }}{{ .Tools }}"
    assert ot.render_messages(t, TOOL_MSGS, tools=TOOLS) == (
        '[{"type":"function","function":{"name":"get_weather","description":"Get \\u003cweather\\u003e",'
        '"parameters":{"type":"object","required":["location"],"properties":{"location":{"type":"string",'
        '"description":"City name"},"opts":{"type":"object","properties":{"z":{"type":"boolean"},'
        '"a":{"type":"array"}}},"unit":{"type":["string","null"],"enum":["celsius","fahrenheit"]}}}}}]')
    assert ot.render_messages(t, TOOL_MSGS) == "null"
    t = ("{{- range .Messages }}{{- end }}{{- range .Tools }}{{- range $name, $prop := .Function.Parameters.Properties }}"
         "{{ $name }}:{{ $prop.Type }}:{{ toTypeScriptType $prop }};{{- end }}{{- end }}")
    assert ot.render_messages(t, TOOL_MSGS, tools=TOOLS) == (
        "location:string:string;opts:object:Record<string, any>;unit:[string null]:string | null;")


def test_think_values() -> None:
    t = "{{ range .Messages }}{{ end }}{{ .Think }}|{{ .ThinkLevel }}|{{ .IsThinkSet }}"
    assert ot.render_messages(t, []) == "false||false"
    assert ot.render_messages(t, [], think=True) == "true|medium|true"
    assert ot.render_messages(t, [], think=False) == "false||true"
    assert ot.render_messages(t, [], think="high") == "true|high|true"


# ---- thinking.InferTags and tools.parseTag -----------------------------------------------------

QWEN3 = """
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if and $last .Thinking }}
<think>{{ .Thinking }}</think>
{{ end }}
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- end }}"""

THINKING = [
    ("""{{ if .Thinking}}/think{{ end }}{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{ if and $last .Thinking }}
    <think>{{ .Thinking }}</think>
{{ end }}{{ end }}""", ("<think>", "</think>")),
    ("""{{- range $i, $_ := .Messages }}{{- range $j, $_ := .NotMessages }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}{{ end }}""", ("", "")),
    ("""{{- range $i, $_ := .Messages }}{{ if .Thinking }}
   Some text before   {{ .Thinking }}    Some text after
{{ end }}{{ end }}""", ("Some text before", "Some text after")),
    (QWEN3, ("<think>", "</think>")),
    ("{{ range .Messages }}{{ .Content }}{{ end }}", ("", "")),
]


@pytest.mark.parametrize(("text", "tags"), THINKING)
def test_thinking_tags(text: str, tags: tuple[str, str]) -> None:
    assert ot.thinking_tags(text) == tags


TOOL_TAGS = [
    ("", "{"), ("{{if .ToolCalls}}{{end}}", "{"),
    ("{{if .ToolCalls}}{{range .ToolCalls}}{{ . }}{{end}}{{end}}", "{"),
    ("{{if .ToolCalls}}```json\n{{end}}", "```json"),
    ("{{if .ToolCalls}}[{{range .ToolCalls}}{{ . }}{{end}}]{{end}}", "["),
    ("{{if .ToolCalls}}\n [ {{range .ToolCalls}}{{ . }}{{end}}]{{end}}", "["),
    ("{{if .ToolCalls}}{{range .ToolCalls}}{{ . }}{{end}}]{{end}}", "{"),
    ("{{if .ToolCalls}} {{range .ToolCalls}}{{ . }}{{end}}{{end}}", "{"),
    ("{{if .ToolCalls}}{{range .ToolCalls}}\r\n{\"name\": \"{{ .Function.Name }}\"}{{end}}{{end}}", "{"),
    ("{{if .ToolCalls}}<|tool▁calls▁begin|>{{range .ToolCalls}}<|tool▁call▁begin|>x{{end}}<|tool▁calls▁end|>{{end}}",
     "<|tool▁calls▁begin|>"),
    ("{{if .ToolCalls}}\n{{range .ToolCalls}}<tool_call>{\"name\": \"{{ .Function.Name }}\"}</tool_call>{{end}}{{end}}",
     "<tool_call>"),
    ("{{if .ToolCalls}}First text{{if .Something}}inner{{end}}Second text{{end}}", "First text"),
    ("{{if .ToolCalls}}Action: ```json{{end}}", "Action: ```json"),
    ("{{if .ToolCalls}}functools[{{end}}", "functools["),
    ("{{if .ToolCalls}}[TOOL_CALL] [{{end}}", "[TOOL_CALL] ["),
    (QWEN3, "<tool_call>"),
]


@pytest.mark.parametrize(("text", "tag"), TOOL_TAGS)
def test_tool_call_tag(text: str, tag: str) -> None:
    assert ot.tool_call_tag(text) == tag
