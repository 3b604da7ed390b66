"""Hugging Face chat templates (Jinja), rendered in a sandbox the way transformers renders them."""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    pass


def _raise(message: str) -> None:
    raise ChatTemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=64)
def _compile(source: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols],
                                        undefined=Undefined)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ChatTemplateError(f"invalid chat template: {exc}") from exc


def render_chat(source: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                add_generation_prompt: bool = True, bos_token: str = "", eos_token: str = "",
                think: bool | None = None, extra: dict[str, Any] | None = None) -> str:
    template = _compile(source)
    ctx: dict[str, Any] = {
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
    }
    if tools:
        ctx["tools"] = tools
    if think is not None:
        ctx["enable_thinking"] = think
    ctx.update(extra or {})
    try:
        return str(template.render(**ctx))
    except ChatTemplateError:
        raise
    except Exception as exc:  # template code errors are the model's, reported as a 500-level error
        raise ChatTemplateError(f"error rendering chat template: {exc}") from exc


__all__ = ["ChatTemplateError", "StrictUndefined", "render_chat"]
