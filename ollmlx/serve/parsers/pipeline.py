"""The parsers a request's output goes through (thinking first, then tool calls), chosen from the
template the prompt was rendered with, and the chunk rules of Ollama's ChatHandler around them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ollmlx.serve.parsers.common import call_id
from ollmlx.serve.parsers.families import JSON, FamilyToolParser, tool_family
from ollmlx.serve.parsers.template_tools import TemplateToolParser
from ollmlx.serve.parsers.thinking import ThinkingParser

JINJA_THINKING_TAGS = ("<think>", "</think>")


@dataclass
class Delta:
    """What one runner chunk turns into. `hold` means Ollama would send no chunk for it (the
    parsers are still buffering and it is not the last one)."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    hold: bool = False


class OutputParser:
    def __init__(self, thinking: ThinkingParser | None = None, template_tools: TemplateToolParser | None = None,
                 family_tools: FamilyToolParser | None = None) -> None:
        self.thinking = thinking
        self.template_tools = template_tools
        self.family_tools = family_tools

    def feed(self, text: str, done: bool = False) -> Delta:
        if self.thinking is not None:
            thought, content = self.thinking.add(text)
        else:
            thought, content = "", text
        if self.family_tools is not None:  # builtin-parser rules: send whatever there is
            calls, content = self.family_tools.add(content)
            if done:
                more, rest = self.family_tools.finish()
                calls, content = calls + more, content + rest
            return Delta(content, thought, _with_ids(calls), hold=not (content or thought or calls or done))
        if self.template_tools is not None:
            calls, parsed = self.template_tools.add(content)
            if done:  # unparsed bare JSON goes back as content
                parsed += self.template_tools.content()
            return Delta(parsed, thought, _with_ids(calls), hold=not (parsed or calls or thought or done))
        hold = self.thinking is not None and not (thought or content or done)
        return Delta(content, thought, hold=hold)


def _with_ids(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": call_id(), **c} for c in calls]


def build_output_parser(*, go_template: str | None, chat_template: str | None, prompt: str,
                        tools: list[dict[str, Any]] | None, think: bool) -> OutputParser | None:
    """The parsers for a request, or None when the output is plain content.

    A Go TEMPLATE gives the thinking tags Ollama infers from it and its tool-call tag; a model's
    own Jinja template gives `<think>` tags when it supports thinking and the tool-call family its
    text names. Output starts in thinking mode when the prompt ends with the opening tag."""
    from ollmlx.serve.capabilities import jinja_has_thinking

    thinking: ThinkingParser | None = None
    template_tools: TemplateToolParser | None = None
    family_tools: FamilyToolParser | None = None
    if go_template or not chat_template:
        from ollmlx.text.ollama_template import thinking_tags, tool_call_tag

        source = go_template or "{{ .Prompt }}"
        try:
            opening, closing = thinking_tags(source)
            tag = tool_call_tag(source)
        except Exception:  # an unparsable template renders nothing either; keep the output raw
            opening, closing, tag = "", "", "{"
        if think and opening and closing:
            thinking = ThinkingParser(opening, closing, started=prompt.strip().endswith(opening))
        if tools:
            template_tools = TemplateToolParser(tag, tools)
    else:
        if think and jinja_has_thinking(chat_template):
            opening, closing = JINJA_THINKING_TAGS
            thinking = ThinkingParser(opening, closing, started=prompt.strip().endswith(opening))
        if tools:
            family = tool_family(chat_template)
            if family == JSON:
                template_tools = TemplateToolParser("{", tools)
            else:
                family_tools = FamilyToolParser(family, tools)
    if thinking is None and template_tools is None and family_tools is None:
        return None
    return OutputParser(thinking, template_tools, family_tools)
