"""Model capabilities (spec §9, §11, §12): completion, tools, insert, thinking, vision, embedding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ollmlx.store.gguf_info import GGUFInfo
from ollmlx.store.store import Model

EMBEDDING_ARCHITECTURES = {"bert", "nomic-bert", "nomic_bert", "xlm-roberta", "xlm_roberta", "roberta",
                           "modernbert", "jina-bert-v2", "new", "distilbert", "mpnet"}


def go_template_caps(template: str) -> set[str]:
    from ollmlx.text.ollama_template import capabilities as template_capabilities

    try:
        return set(template_capabilities(template))
    except Exception:  # an unparsable stored template has no capabilities beyond completion
        return set()


def chat_template_of(model: Model) -> str | None:
    """The model's own Jinja chat template (GGUF metadata or tokenizer files)."""
    if model.format == "gguf":
        info = model.gguf
        return info.chat_template if info else None
    layer = model.json_layer("tokenizer_config.json") or {}
    tmpl = layer.get("chat_template")
    if isinstance(tmpl, list):  # several named templates: the default one
        named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
        tmpl = named.get("default") or next(iter(named.values()), None)
    if isinstance(tmpl, str) and tmpl:
        return tmpl
    for layer_obj in model.manifest.layers:
        if layer_obj.name == "chat_template.jinja":
            return model.blobs.read_bytes(layer_obj.digest).decode("utf-8", "replace")
    for name in ("chat_template.json", "processor_config.json"):  # where vision models keep theirs
        tmpl = (model.json_layer(name) or {}).get("chat_template")
        if isinstance(tmpl, str) and tmpl:
            return tmpl
    return None


def jinja_has_tools(template: str) -> bool:
    """chatTemplateHasToolSupport."""
    return "tools" in template or "tool_call" in template


def jinja_has_thinking(template: str) -> bool:
    """chatTemplateHasThinkingSupport: <think> tags, or Qwen/DeepSeek templates that split
    earlier replies at </think>."""
    if "<think>" in template and "</think>" in template:
        return True
    return ("content.split('</think>')" in template or 'content.split("</think>")' in template) \
        and "reasoning_content" not in template and "<SPECIAL_12>" not in template


def has_vision(model: Model) -> bool:
    """A projector layer, GGUF `vision.block_count`, or an HF config with a `vision_config`
    (the mlx-vlm models the MLX runner loads)."""
    if model.projector_paths:
        return True
    if model.format == "gguf":
        return bool(model.gguf and model.gguf.has_vision)
    return isinstance(model.hf_config.get("vision_config"), dict)


def is_embedding_gguf(info: GGUFInfo) -> bool:
    return info.architecture in EMBEDDING_ARCHITECTURES or info.pooling


def is_embedding_config(cfg: dict[str, Any], modules: list[Any] | None = None) -> bool:
    """An HF config.json (and sentence-transformers modules.json, whose Pooling module marks an
    embedding model even on a decoder such as Qwen3-Embedding). The runner uses it too."""
    if str(cfg.get("model_type", "")).lower() in EMBEDDING_ARCHITECTURES:
        return True
    if any(isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling") for m in modules or []):
        return True
    archs = [str(a) for a in cfg.get("architectures") or []]
    return bool(archs) and all(not a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in archs) \
        and any(a.endswith(("Model", "ForMaskedLM")) for a in archs)


def is_embedding_model(model: Model) -> bool:
    if model.format == "gguf":
        info = model.gguf
        return bool(info and is_embedding_gguf(info))
    modules_path = model.json_layer_paths().get("modules.json")
    try:
        modules = json.loads(Path(modules_path).read_text()) if modules_path else None
    except (OSError, ValueError):
        modules = None
    return is_embedding_config(model.hf_config, modules if isinstance(modules, list) else None)


def capabilities(model: Model) -> list[str]:
    caps: list[str] = []
    if is_embedding_model(model):
        return ["embedding"]
    caps.append("completion")
    if has_vision(model):  # Ollama's order: completion and vision, then what the template gives
        caps.append("vision")
    from ollmlx.serve.template_choice import go_template_in_use

    if go_template := go_template_in_use(model):
        found = go_template_caps(go_template)
    else:
        found = set()
        jinja = chat_template_of(model) or ""
        if jinja and jinja_has_tools(jinja):
            found.add("tools")
        if jinja and jinja_has_thinking(jinja):
            found.add("thinking")
    if str(model.config.get("model_family", "")) in ("gptoss", "gpt-oss"):
        found.add("thinking")
    if model.config.get("parser") == "harmony":  # a builtin parser's capabilities (parserCapabilities)
        found |= {"tools", "thinking"}
    caps.extend(cap for cap in ("tools", "insert", "thinking") if cap in found)
    return caps
