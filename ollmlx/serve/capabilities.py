"""Model capabilities (spec §9, §11, §12): completion, tools, insert, thinking, vision, embedding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ollmlx.store.gguf_info import GGUFInfo
from ollmlx.store.store import Model

EMBEDDING_ARCHITECTURES = {"bert", "nomic-bert", "nomic_bert", "xlm-roberta", "xlm_roberta", "roberta",
                           "modernbert", "jina-bert-v2", "new", "distilbert", "mpnet"}


def _go_template_caps(template: str) -> set[str]:
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
    return None


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
    if model.template:
        found = _go_template_caps(model.template)
    else:
        found = set()
        jinja = chat_template_of(model) or ""
        if "tools" in jinja or "tool_call" in jinja:
            found.add("tools")
        if "<think>" in jinja and "</think>" in jinja:
            found.add("thinking")
    for cap in ("tools", "insert"):
        if cap in found:
            caps.append(cap)
    if model.projector_paths or (model.gguf and model.gguf.has_vision) or "vision_config" in model.hf_config:
        caps.append("vision")
    if "thinking" in found:
        caps.append("thinking")
    return caps
