"""Build an mlx-lm model from an HF-style config and a weight dict (whatever the source format)."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.utils import _get_classes, infer_quant_config


def build_model(config: dict[str, Any], weights: dict[str, mx.array]) -> nn.Module:
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))
    if hasattr(model, "sanitize"):
        weights = model.sanitize(weights)
    per_path = (config.get("quantization") or {}) if isinstance(config.get("quantization"), dict) else {}

    def predicate(path: str, module: nn.Module) -> Any:
        if isinstance(per_path.get(path), dict):
            return per_path[path]
        if not hasattr(module, "to_quantized") or f"{path}.scales" not in weights:
            return False
        return infer_quant_config(path, module, weights)

    if any(k.endswith(".scales") for k in weights):
        q = per_path if "bits" in per_path else {"group_size": 64, "bits": 4}
        nn.quantize(model, group_size=int(q.get("group_size", 64)), bits=int(q.get("bits", 4)),
                    class_predicate=predicate)
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    model.eval()
    return model


def dequantize_for_cpu(model: nn.Module, dtype: mx.Dtype = mx.float32) -> int:
    """Replace quantized layers by dense ones: MLX's CPU quantized matmul is scalar code, while a
    dense float32 matmul goes through BLAS. Returns how many layers were converted."""
    from mlx_lm.utils import dequantize_model

    n = sum(1 for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding))
    if n:
        dequantize_model(model)
        model.update(_cast(model.parameters(), dtype))
        mx.eval(model.parameters())
    return n


def _cast(tree: Any, dtype: mx.Dtype) -> Any:
    if isinstance(tree, dict):
        return {k: _cast(v, dtype) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_cast(v, dtype) for v in tree]
    if isinstance(tree, mx.array) and mx.issubdtype(tree.dtype, mx.floating):
        return tree.astype(dtype)
    return tree
