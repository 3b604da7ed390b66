"""Parsing model output into content, thinking and tool calls (spec §9, §11)."""

from ollmlx.serve.parsers.common import call_id
from ollmlx.serve.parsers.families import FamilyToolParser, tool_family
from ollmlx.serve.parsers.pipeline import Delta, OutputParser, build_output_parser
from ollmlx.serve.parsers.template_tools import TemplateToolParser
from ollmlx.serve.parsers.thinking import ThinkingParser

__all__ = ["Delta", "FamilyToolParser", "OutputParser", "TemplateToolParser", "ThinkingParser",
           "build_output_parser", "call_id", "tool_family"]
