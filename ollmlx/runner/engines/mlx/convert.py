"""GGUF → MLX directory (HF layout: config.json, model.safetensors, tokenizer files).

Q4_0/Q4_1/Q8_0 tensors keep their MLX affine quantization as read by `mx.load`; other GGUF
types arrive dequantized and are re-quantized with mlx (`bits`, group 64) unless `bits` is 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ollmlx.runner.engines.mlx.loader import load_gguf


def _quant_config(model: nn.Module) -> dict[str, Any] | None:
    per_layer: dict[str, Any] = {}
    for path, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding):
            per_layer[path] = {"group_size": module.group_size, "bits": module.bits}
    if not per_layer:
        return None
    common = max({(q["group_size"], q["bits"]) for q in per_layer.values()},
                 key=lambda gb: sum(1 for q in per_layer.values() if (q["group_size"], q["bits"]) == gb))
    out: dict[str, Any] = {"group_size": common[0], "bits": common[1]}
    for path, q in per_layer.items():
        if (q["group_size"], q["bits"]) != common:
            out[path] = q
    return out


def convert_gguf(gguf: Path, out_dir: Path, bits: int = 4) -> dict[str, Any]:
    loaded = load_gguf(gguf)
    model = loaded.model
    if bits and not any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules()):
        nn.quantize(model, group_size=64, bits=bits,
                    class_predicate=lambda _, m: hasattr(m, "to_quantized") and m.weight.shape[-1] % 64 == 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    config = dict(loaded.config)
    q = _quant_config(model)
    if q:
        config["quantization"] = q
        config["quantization_config"] = q
    tok = loaded.tokenizer
    config["architectures"] = ["LlamaForCausalLM"] if config.get("model_type") == "llama" else config.get("architectures", [])
    eos = sorted(tok.eos_token_ids)
    config["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    if tok.bos_token_id is not None:
        config["bos_token_id"] = tok.bos_token_id
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    tok._tokenizer.save_pretrained(str(out_dir))
    if loaded.chat_template:
        cfg_path = out_dir / "tokenizer_config.json"
        tcfg = json.loads(cfg_path.read_text())
        tcfg["chat_template"] = loaded.chat_template
        cfg_path.write_text(json.dumps(tcfg, indent=2))
    return config
