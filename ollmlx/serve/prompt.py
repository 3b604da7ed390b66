"""Prompt building (spec §2, §3, §13): a Modelfile Go TEMPLATE when the model has one, else the
model's own Jinja chat template, else Ollama's default `{{ .Prompt }}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ollmlx.errors import BadRequest, OllmlxError
from ollmlx.serve.capabilities import chat_template_of
from ollmlx.store.store import Model

DEFAULT_TEMPLATE = "{{ .Prompt }}"


class TemplateRenderError(OllmlxError):
    status = 500


@dataclass
class PromptRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    think: bool | None = None
    think_level: str | None = None
    is_think_set: bool = False
    template_override: str | None = None  # generate's `template`


def _special_token(model: Model, which: str) -> str:
    if model.gguf is not None:
        kv = model.gguf.kv
        idx = kv.get(f"tokenizer.ggml.{which}_token_id")
        tokens = kv.get("tokenizer.ggml.tokens") or []
        if isinstance(idx, int) and 0 <= idx < len(tokens):
            return str(tokens[idx])
        return ""
    cfg = model.json_layer("tokenizer_config.json") or {}
    tok = cfg.get(f"{which}_token")
    if isinstance(tok, dict):
        tok = tok.get("content")
    return str(tok or "")


def render(model: Model, req: PromptRequest) -> str:
    template = req.template_override or model.template
    if template:
        from ollmlx.text.ollama_template import render_messages

        try:
            return render_messages(template, req.messages, tools=req.tools, think=req.think,
                                   think_level=req.think_level, is_think_set=req.is_think_set)
        except Exception as exc:
            raise TemplateRenderError(f"template error: {exc}") from exc
    jinja = chat_template_of(model)
    if jinja:
        from ollmlx.text.jinja_chat import ChatTemplateError, render_chat

        try:
            return render_chat(jinja, req.messages, tools=req.tools or None,
                               bos_token=_special_token(model, "bos"), eos_token=_special_token(model, "eos"),
                               think=req.think)
        except ChatTemplateError as exc:
            raise TemplateRenderError(str(exc)) from exc
    from ollmlx.text.ollama_template import render_messages

    return render_messages(DEFAULT_TEMPLATE, req.messages)


def render_fim(model: Model, prompt: str, suffix: str, template: str | None = None) -> str:
    from ollmlx.text.ollama_template import render_fim as go_fim

    t = template or model.template
    if not t:
        raise BadRequest(f"{model.name.display_long()} does not support insert")
    return go_fim(t, prompt, suffix)
