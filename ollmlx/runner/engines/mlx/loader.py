"""Turn a `ModelSpec` (GGUF file, or Ollama tensor/json layers) into an mlx-lm model + tokenizer."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.tokenizer_utils import TokenizerWrapper

from ollmlx.runner.engines.mlx.build import build_model
from ollmlx.runner.engines.mlx.gguf_load import hf_config, load_gguf_weights
from ollmlx.runner.engines.mlx.gguf_tokenizer import build_tokenizer
from ollmlx.runner.protocol import ModelSpec

# Ollama's quantized tensor blobs name their parts `<w>`, `<w>.scale`, `<w>.bias` with the
# quant type in the safetensors metadata; mlx-lm names them `.weight`, `.scales`, `.biases`.
_QUANT_BITS = {"int4": 4, "int8": 8, "q4": 4, "q8": 8, "int2": 2, "int3": 3, "int6": 6}


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: TokenizerWrapper
    config: dict[str, Any]
    context_length: int
    chat_template: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _wrap_tokenizer(tok: Any, facts: dict[str, Any]) -> TokenizerWrapper:
    from transformers import PreTrainedTokenizerFast

    tokens = facts["tokens"]

    def name(i: int | None) -> str | None:
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=name(facts["bos_token_id"]),
        eos_token=name(facts["eos_token_id"]),
        unk_token=name(facts["unk_token_id"]),
        pad_token=name(facts["pad_token_id"]),
    )
    if facts.get("chat_template"):
        hf.chat_template = facts["chat_template"]
    eos = {i for i in (facts["eos_token_id"], facts.get("eot_token_id")) if i is not None}
    wrapper = TokenizerWrapper(hf, eos_token_ids=eos)
    return wrapper


def load_gguf(path: Path) -> LoadedModel:
    weights, meta = load_gguf_weights(path)
    config = hf_config(meta, "lm_head.weight" in weights)
    model = build_model(config, weights)
    tok, facts = build_tokenizer(meta)
    wrapper = _wrap_tokenizer(tok, facts)
    wrapper.add_bos_token = facts["add_bos_token"]
    return LoadedModel(model, wrapper, config, int(config["max_position_embeddings"]), facts["chat_template"])


def _rename_ollama_tensor(name: str) -> str:
    if name.endswith(".weight.scale"):
        return name[: -len(".weight.scale")] + ".scales"
    if name.endswith(".weight.bias"):
        return name[: -len(".weight.bias")] + ".biases"
    return name


def load_tensor_layers(blob_paths: list[str]) -> tuple[dict[str, mx.array], dict[str, dict[str, int]]]:
    """Weights from Ollama tensor blobs, and per-module quantization found in blob metadata."""
    weights: dict[str, mx.array] = {}
    quant: dict[str, dict[str, int]] = {}
    for p in blob_paths:
        loaded = mx.load(p, format="safetensors", return_metadata=True)
        assert isinstance(loaded, tuple)
        arrays = cast(dict[str, mx.array], loaded[0])
        meta = cast(dict[str, str], loaded[1])
        for name, arr in arrays.items():
            weights[_rename_ollama_tensor(name)] = arr
            qtype = meta.get(f"{name}.quant_type") or meta.get("quant_type")
            if qtype and name.endswith(".weight") and f"{name}.scale" in arrays:
                gs = int(meta.get(f"{name}.group_size") or meta.get("group_size") or 64)
                quant[name[: -len(".weight")]] = {"bits": _QUANT_BITS.get(str(qtype).lower(), 4), "group_size": gs}
    return weights, quant


def load_safetensors(spec: ModelSpec) -> LoadedModel:
    from mlx_lm.utils import load_tokenizer

    if "config.json" not in spec.files:
        raise ValueError("model has no config.json layer")
    config = json.loads(Path(spec.files["config.json"]).read_text())
    weights, quant = load_tensor_layers(spec.tensors)
    if quant:
        q = dict(config.get("quantization") or {})
        q.update(quant)
        config["quantization"] = q
    model = build_model(config, weights)
    # The tokenizer loaders want a directory: link the json layers under their file names.
    with tempfile.TemporaryDirectory(prefix="ollmlx-tok-") as d:
        for fname, blob in spec.files.items():
            target = Path(d) / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(blob, target)
        tokenizer = load_tokenizer(Path(d), eos_token_ids=_eos_ids(config))
        template = getattr(tokenizer, "chat_template", None)
    ctx = int(config.get("max_position_embeddings") or (config.get("text_config") or {}).get("max_position_embeddings") or 4096)
    return LoadedModel(model, tokenizer, config, ctx, template)


def _eos_ids(config: dict[str, Any]) -> list[int] | None:
    eos = config.get("eos_token_id")
    if eos is None:
        return None
    return [int(e) for e in eos] if isinstance(eos, list) else [int(eos)]


def load(spec: ModelSpec) -> LoadedModel:
    if spec.format == "gguf":
        if not spec.gguf_path:
            raise ValueError("gguf model without a file")
        loaded = load_gguf(Path(spec.gguf_path))
    else:
        loaded = load_safetensors(spec)
    if spec.adapters:
        from mlx_lm.tuner.utils import load_adapters

        with tempfile.TemporaryDirectory(prefix="ollmlx-adapter-") as d:
            for fname, blob in zip(("adapters.safetensors", "adapter_config.json"), spec.adapters):
                os.symlink(blob, Path(d) / fname)
            loaded.model = load_adapters(loaded.model, d)
    return loaded
