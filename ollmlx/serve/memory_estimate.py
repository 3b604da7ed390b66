"""How much memory a model will take once loaded, for the scheduler's fit check (spec §18): its
weights as stored plus one full context of KV cache at 16 bits. An estimate, as Ollama's is; MLX
grows its cache with use, so a full window per model is the planning figure, not `parallel` of them.
It undercounts one case: MLX on a CPU dequantizes 4-bit weights to float32 for BLAS (several
times their stored size, `OLLMLX_CPU_WEIGHTS`), which GGUF models only get when mlx is forced."""

from __future__ import annotations

from typing import Any

from ollmlx import config
from ollmlx.store import manifests as mf
from ollmlx.store.store import Model

WEIGHTS = (mf.MT_MODEL, mf.MT_TENSOR, mf.MT_PROJECTOR, mf.MT_ADAPTER)


def _int(v: Any) -> int:
    try:
        return int(v[0] if isinstance(v, list) else v)  # GGUF per-layer arrays: the first layer's
    except (TypeError, ValueError, IndexError):
        return 0


def kv_bytes_per_token(model: Model) -> int:
    """Keys and values of one token over all layers, 16-bit; 0 when the shape is not known."""
    if model.format == "gguf":
        info = model.gguf
        if info is None:
            return 0
        layers = _int(info.arch_value("block_count"))
        heads = _int(info.arch_value("attention.head_count"))
        kv_heads = _int(info.arch_value("attention.head_count_kv")) or heads
        head_dim = _int(info.arch_value("attention.key_length")) or (
            _int(info.arch_value("embedding_length")) // heads if heads else 0)
    else:
        cfg = model.hf_config.get("text_config") or model.hf_config
        layers = _int(cfg.get("num_hidden_layers"))
        heads = _int(cfg.get("num_attention_heads"))
        kv_heads = _int(cfg.get("num_key_value_heads")) or heads
        head_dim = _int(cfg.get("head_dim")) or (_int(cfg.get("hidden_size")) // heads if heads else 0)
    return 2 * layers * kv_heads * head_dim * 2


def estimate_bytes(model: Model, num_ctx: int) -> int:
    weights = sum(layer.size for layer in model.manifest.layers if layer.media_type in WEIGHTS)
    return weights + kv_bytes_per_token(model) * (num_ctx or config.context_length())
