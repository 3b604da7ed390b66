"""Which template renders a model's prompts: its Go TEMPLATE or its own Jinja chat template
(spec §13; Ollama's shouldUseGoTemplate / shouldPreferChatTemplate in server/images.go).

- A model with only one of the two uses it; MLX models use their Go TEMPLATE whenever they have
  one (Ollama renders for its MLX runner).
- A model with a builtin RENDERER (qwen3-coder, …), which ollmlx does not implement, renders
  with its Jinja chat template when it has one.
- A GGUF with both: `OLLAMA_GO_TEMPLATE`, when set, decides (true: Go, false: the GGUF's Jinja).
  Unset, the Go template wins unless the Jinja template has more capabilities (a curated Go
  template that predates tools, say), or the same tool support with a tool round trip the Go
  template lacks.
"""

from __future__ import annotations

import functools

from ollmlx import config
from ollmlx.serve.capabilities import chat_template_of, go_template_caps, jinja_has_thinking, jinja_has_tools
from ollmlx.store.store import Model


def go_template_in_use(model: Model) -> str | None:
    """The Go template that renders this model's prompts, or None when its Jinja template does."""
    template = model.template
    if not template:
        return None
    renderer = model.config.get("renderer")
    builtin_renderer = bool(renderer) and renderer != "harmony"
    if model.format != "gguf" and not builtin_renderer:
        return template
    jinja = chat_template_of(model)
    if not jinja:
        return template
    if builtin_renderer:
        # Ollama renders such a model with a builtin renderer, and its TEMPLATE is often a bare
        # `{{ .Prompt }}`: the model's own chat template is the closest rendering ollmlx has
        return None
    setting = config.go_template()
    if setting is not None:
        return template if setting else None
    return None if prefer_chat_template(jinja, template) else template


def jinja_caps(template: str) -> set[str]:
    return {c for c, has in (("tools", jinja_has_tools(template)), ("thinking", jinja_has_thinking(template))) if has}


def jinja_has_tool_round_trip(template: str) -> bool:
    """chatTemplateHasToolRoundTrip: the template renders tool calls and their results."""
    if not jinja_has_tools(template):
        return False
    calls = "tool_calls" in template or "assistant_tool_call" in template
    results = ("tool_response", "tool_results", "role'] == 'tool'", "role'] == \"tool\"", "role\"] == 'tool'",
               "role\"] == \"tool\"", "message.role == 'tool'", "message.role == \"tool\"", "ipython")
    return calls and any(s in template for s in results)


@functools.lru_cache(maxsize=64)
def prefer_chat_template(jinja: str, go: str) -> bool:
    """Ollama's shouldPreferChatTemplate. Cached: every request asks it several times (capabilities,
    rendering, output parsing) and the answer costs parsing the Go template."""
    from ollmlx.text.ollama_template import has_tool_round_trip

    chat, mine = jinja_caps(jinja), go_template_caps(go)
    if len(chat) > len(mine):
        return not has_tool_round_trip(go) or jinja_has_tool_round_trip(jinja)
    if chat != mine or "tools" not in chat:
        return False
    return jinja_has_tool_round_trip(jinja) and not has_tool_round_trip(go)
