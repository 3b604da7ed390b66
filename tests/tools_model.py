"""A test-only tool-capable SmolLM2: the same GGUF with a Go TEMPLATE that renders `.Tools`,
assistant `.ToolCalls` and tool results (spec §11: a template that references `.Tools` gives the
`tools` capability). Used to carry tool definitions and tool-call histories end to end."""

from __future__ import annotations

from typing import Any

from helpers import Server, create_smollm2

TOOLS_MODEL = "smollm2-tools:135m"
TOOLS_TEMPLATE = """{{- if .Tools }}<|im_start|>system
You can call these functions:
{{ range .Tools }}{{ .Function.Name }}: {{ .Function.Description }}
{{ end }}To call one, answer only with JSON like {"name": "<function>", "arguments": {...}}.<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def ensure_tools_model(server: Server) -> str:
    create_smollm2(server, TOOLS_MODEL, f'TEMPLATE """{TOOLS_TEMPLATE}"""\n')
    return TOOLS_MODEL

# Greedy SmolLM2 does not call tools on its own, but after one worked example in this template it
# answers the next request with `{"name": "get_weather", "arguments": {"city": "Paris"}}`, which the
# server's template tool parser turns into a tool call (spec §11).
def openai_few_shot() -> Any:
    return [{"role": "user", "content": "Call get_weather with city London."},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "London"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rainy"},
            {"role": "user", "content": "Call get_weather with city Paris."}]


def anthropic_few_shot() -> Any:
    return [{"role": "user", "content": "Call get_weather with city London."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "London"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy"},
                                         {"type": "text", "text": "Call get_weather with city Paris."}]}]


ANTHROPIC_WEATHER_TOOL: dict[str, Any] = {"name": "get_weather", "description": WEATHER_TOOL["function"]["description"],
                          "input_schema": WEATHER_TOOL["function"]["parameters"]}
