"""Property-based fuzzing of the Go text/template engine (ollmlx/text/gotemplate/) as Ollama's
TEMPLATE layer uses it (ollmlx/text/ollama_template.py, spec §13). Templates come from Modelfiles
and registries, so any text must parse or raise TemplateError, and executing what parses must
finish (the engine's Limits bound steps, depth and output) or raise the engine's own errors.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import memory_limit, time_limit
from ollmlx.text.gotemplate import FuncError, JSONError, Limits, Template, TemplateError
from ollmlx.text.ollama_template import parse, render_fim, render_messages

ENGINE_ERRORS = (TemplateError, FuncError, JSONError)

ACTIONS = [
    "if", "else", "else if", "end", "range", "with", "else with", "define", "template", "block", "break",
    "continue", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt", "le", "gt", "ge", "and",
    "or", "not", "call", "html", "js", "urlquery", "json", "currentDate", "toTypeScriptType", "nil", "true",
    "false",
]
OPERANDS = [
    ".", ".Messages", ".Content", ".Role", ".Tools", ".System", ".Prompt", ".Response", ".Suffix", ".Think",
    ".ThinkLevel", ".IsThinkSet", ".ToolCalls", ".Function", ".Name", ".Arguments", ".Parameters", ".X.Y.Z",
    "$", "$x", "$i", "$m", "$x :=", "$i, $m :=", "$x =", "|", "(", ")", "0", "-1", "1000000000", "9223372036854775807",
    "1e308", "0x1F", "'a'", "'\\n'", '"s"', '"%s %d %v %q %x %*d"', '"\\u00e9"', "`raw`", '"unterminated', ",",
    "\"t\"", "1.5", "-0", "07",
]
TEXT = st.sampled_from(["", "x", " ", "\n", "<|im_start|>", "{", "}", "{{", "}}", "/*", "*/", "\u00e9"])


@st.composite
def actions(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.one_of(st.sampled_from(ACTIONS), st.sampled_from(OPERANDS)), min_size=0, max_size=6))
    left = draw(st.sampled_from(["{{", "{{- ", "{{-", "{{/* "]))
    right = draw(st.sampled_from(["}}", " -}}", "-}}", " */}}", ""]))
    return left + " ".join(words) + right


@st.composite
def templates(draw: st.DrawFn) -> str:
    """Templates with structure: balanced blocks most of the time, anything some of the time."""
    parts = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            parts.append(draw(TEXT))
        elif kind == 1:
            parts.append(draw(actions()))
        else:
            head = draw(st.sampled_from(["if", "range", "with", "range $i, $m :=", "block \"b\""]))
            arg = draw(st.sampled_from([*OPERANDS[:18], "1000000", "(slice .Messages 1)", "(index .Messages 0)"]))
            body = draw(st.lists(st.one_of(TEXT, actions()), max_size=3))
            parts.append(f"{{{{ {head} {arg} }}}}{''.join(body)}{{{{ end }}}}")
    return "".join(parts)


MESSAGES = st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(["system", "user", "assistant", "tool"]),
    "content": st.text(max_size=20),
}, optional={"thinking": st.text(max_size=10), "tool_calls": st.just([{"function": {"name": "f", "arguments": {"a": 1}}}])}),
    max_size=4)
TOOLS = st.one_of(st.none(), st.just([{"type": "function", "function": {
    "name": "get_weather", "description": "d", "parameters": {"type": "object", "required": ["city"],
                                                             "properties": {"city": {"type": "string"}}}}}]))


def render(text: str, messages: list[dict], tools: list | None) -> None:
    # the engine's own limits (steps, depth, output) bound any template: time and memory here are
    # what those limits allow, plus the fuzzer's overhead
    with time_limit(60), memory_limit(4 * Limits.max_output + 64_000_000):
        try:
            t = parse(text)
        except ENGINE_ERRORS:
            return
        try:
            out = render_messages(t, messages, tools=tools, think=True)
            assert isinstance(out, str)
            assert len(out) <= Limits.max_output
            render_fim(t, "pre", "suf")
        except ENGINE_ERRORS:
            pass


@given(text=templates(), messages=MESSAGES, tools=TOOLS)
def test_structured_templates(text: str, messages: list[dict], tools: list | None) -> None:
    render(text, messages, tools)


@given(text=st.text(alphabet=st.sampled_from(list("{}-./$|()\"'`:=, \n\tabcdefghijklmnopqrstuvwxyz0123456789")),
                    max_size=80), messages=MESSAGES)
def test_random_template_text(text: str, messages: list[dict]) -> None:
    render(text, messages, None)


@pytest.mark.slow
def test_hostile_templates_hit_the_limits() -> None:
    """Loops, recursion and output bombs end with the engine's error, not a hang or a crash."""
    bombs = [
        '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}',  # infinite recursion
        "{{ range $i := 100000000 }}{{ $i }}{{ end }}",  # Go 1.22 range over int: step limit
        '{{ range 100000 }}{{ range 100000 }}x{{ end }}{{ end }}',
        '{{ define "a" }}{{ template "b" . }}{{ template "b" . }}{{ end }}'
        '{{ define "b" }}{{ printf "%0999999d" 1 }}{{ end }}{{ range 10000 }}{{ template "a" . }}{{ end }}',
        "{{" * 10000 + "}}" * 10000,
        "{{ (" * 5000 + ")" * 5000 + " }}",
    ]
    for text in bombs:
        with time_limit(60):  # the bare engine (missingkey=default, no Ollama funcs)
            try:
                Template.parse(text).execute({})
            except ENGINE_ERRORS:
                pass
    for text in [b for b in bombs if "100000000" not in b]:  # through Ollama's layer, memory-guarded
        render(text, [{"role": "user", "content": "hi"}], None)
