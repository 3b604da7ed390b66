"""Prompt building (spec §2, §3, §13): a Modelfile Go TEMPLATE when the model has one, else the
model's own Jinja chat template, else Ollama's default `{{ .Prompt }}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ollmlx.errors import BadRequest, OllmlxError
from ollmlx.serve.capabilities import chat_template_of, has_vision
from ollmlx.serve.template_choice import go_template_in_use
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


def image_tagged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's imageTaggedMessages: each image becomes an `[img-N]` tag (N counts images across
    the messages) replacing a literal `[img]` in the content, else prefixed to it. The runner
    puts the model's image tokens where the tags are."""
    out: list[dict[str, Any]] = []
    n = 0
    for m in messages:
        images = m.get("images") or []
        if not images:
            out.append(m)
            continue
        prefix, content = "", str(m.get("content") or "")
        for _ in images:
            tag = f"[img-{n}]"
            n += 1
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        out.append({**m, "content": prefix + content})
    return out


def hf_messages(messages: list[dict[str, Any]], vision: bool) -> list[dict[str, Any]]:
    """Ollama messages in the shape Hugging Face chat templates read: images as `{"type":
    "image"}` content parts (before the text) for a vision model, tool results with a `name`,
    tool calls typed "function"."""
    out: list[dict[str, Any]] = []
    for m in (messages if vision else image_tagged(messages)):
        m = dict(m)
        if vision and m.get("images"):
            m["content"] = [{"type": "image"} for _ in m["images"]] + [{"type": "text", "text": m.get("content", "")}]
        if m.get("role") == "tool" and m.get("tool_name") and "name" not in m:
            m["name"] = m["tool_name"]
        if m.get("tool_calls"):
            m["tool_calls"] = [{"type": "function", **tc} for tc in m["tool_calls"]]
        out.append(m)
    return out


def render(model: Model, req: PromptRequest) -> str:
    template = req.template_override or go_template_in_use(model)
    if template:
        from ollmlx.text.ollama_template import render_messages

        try:
            return render_messages(template, image_tagged(req.messages), tools=req.tools, think=req.think,
                                   think_level=req.think_level, is_think_set=req.is_think_set)
        except Exception as exc:
            raise TemplateRenderError(f"template error: {exc}") from exc
    jinja = chat_template_of(model)
    if jinja:
        from ollmlx.text.jinja_chat import ChatTemplateError, render_chat

        try:
            return render_chat(jinja, hf_messages(req.messages, has_vision(model)), tools=req.tools or None,
                               bos_token=_special_token(model, "bos"), eos_token=_special_token(model, "eos"),
                               think=req.think)
        except ChatTemplateError as exc:
            raise TemplateRenderError(str(exc)) from exc
    from ollmlx.text.ollama_template import render_messages

    return render_messages(DEFAULT_TEMPLATE, image_tagged(req.messages))


def render_fim(model: Model, prompt: str, suffix: str, template: str | None = None) -> str:
    from ollmlx.text.ollama_template import render_fim as go_fim

    t = template or model.template
    if not t:
        raise BadRequest(f"{model.name.display_long()} does not support insert")
    return go_fim(t, prompt, suffix)
