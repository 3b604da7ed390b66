"""Load a GGUF file directly on MLX: weights through `mx.load`, config and tokenizer from metadata.

`mx.load` returns Q4_0/Q4_1/Q8_0 tensors already in MLX's affine-quantized form; every other
GGUF type (K-quants, IQ, ...) is dequantized with the `gguf` package and re-quantized with mlx.
Llama-family GGUF files store q/k permuted for interleaved RoPE, hence `rope_traditional=True`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import mlx.core as mx

# GGUF tensor names → Hugging Face names (the names mlx-lm's models load).
_LAYER_MAP = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_attention_norm": "post_attention_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_GEMMA_LAYER_MAP = {
    **_LAYER_MAP,
    "ffn_norm": "pre_feedforward_layernorm",
}
_TOP_MAP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLK = re.compile(r"^blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias|scales|biases)$")
_TOP = re.compile(r"^([a-z_]+)\.(weight|bias|scales|biases)$")

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")


class GGUFLoadError(ValueError):
    pass


def _scalar(v: Any) -> Any:
    if isinstance(v, mx.array):
        return v.item() if v.size == 1 else v.tolist()
    return v


def read_metadata(path: Path) -> dict[str, Any]:
    _, meta = _load_gguf(path)
    return {k: _scalar(v) for k, v in meta.items()}


def _load_gguf(path: Path) -> tuple[dict[str, mx.array], dict[str, Any]]:
    out = mx.load(str(path), format="gguf", return_metadata=True)
    assert isinstance(out, tuple)
    weights, meta = out
    return cast(dict[str, mx.array], weights), cast(dict[str, Any], meta)


def hf_config(meta: dict[str, Any], has_output: bool) -> dict[str, Any]:
    arch = str(meta.get("general.architecture", ""))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFLoadError(f"unsupported GGUF architecture {arch!r} on the mlx engine")

    def g(key: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{key}", default)

    n_heads = int(g("attention.head_count"))
    hidden = int(g("embedding_length"))
    cfg: dict[str, Any] = {
        "model_type": {"gemma3": "gemma3_text"}.get(arch, arch),
        "hidden_size": hidden,
        "num_hidden_layers": int(g("block_count")),
        "intermediate_size": int(g("feed_forward_length")),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(g("attention.head_count_kv", n_heads)),
        "rms_norm_eps": float(g("attention.layer_norm_rms_epsilon", 1e-6)),
        "vocab_size": int(g("vocab_size", len(meta.get("tokenizer.ggml.tokens", [])))),
        "max_position_embeddings": int(g("context_length", 4096)),
        "rope_theta": float(g("rope.freq_base", 10000.0)),
        "tie_word_embeddings": not has_output,
    }
    key_len = g("attention.key_length")
    if key_len:
        cfg["head_dim"] = int(key_len)
    if arch == "llama":
        cfg["rope_traditional"] = True
    if arch == "gemma3":
        cfg["sliding_window"] = int(g("attention.sliding_window", 512))
        cfg["query_pre_attn_scalar"] = float(cfg.get("head_dim", hidden // n_heads))
        cfg["rope_local_base_freq"] = float(g("rope.local.freq_base", 10000.0))
    return cfg


def _dequantize_rest(path: Path, names: set[str]) -> dict[str, mx.array]:
    """Tensors `mx.load` cannot read (K-quants etc.), dequantized to float32 by the gguf package."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    out = {}
    reader = GGUFReader(str(path))
    for t in reader.tensors:
        if t.name in names:
            arr = dequantize(t.data, t.tensor_type)
            out[t.name] = mx.array(arr.reshape([int(d) for d in reversed(t.shape.tolist())]))
    return out


def load_gguf_weights(path: Path) -> tuple[dict[str, mx.array], dict[str, Any]]:
    """GGUF weights renamed to HF names, and the metadata."""
    try:
        raw, meta_raw = _load_gguf(path)
        meta = {k: _scalar(v) for k, v in meta_raw.items()}
    except Exception as exc:  # mx raises ValueError/RuntimeError with engine text
        if "gguf_tensor_to_f16" not in str(exc) and "Unsupported" not in str(exc):
            raise GGUFLoadError(f"cannot read GGUF file: {exc}") from exc
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        meta = {k: _field_value(f) for k, f in reader.fields.items()}
        raw = _dequantize_rest(path, {t.name for t in reader.tensors})
    arch = str(meta.get("general.architecture", ""))
    layer_map = _GEMMA_LAYER_MAP if arch == "gemma3" else _LAYER_MAP
    weights: dict[str, mx.array] = {}
    for name, arr in raw.items():
        m = _BLK.match(name)
        if m:
            idx, part, kind = m.groups()
            if part not in layer_map:
                raise GGUFLoadError(f"unexpected tensor {name!r} in GGUF file")
            weights[f"model.layers.{idx}.{layer_map[part]}.{kind}"] = arr
            continue
        m = _TOP.match(name)
        if m and m.group(1) in _TOP_MAP:
            weights[f"{_TOP_MAP[m.group(1)]}.{m.group(2)}"] = arr
        elif name.startswith("rope_freqs"):
            continue  # llama3 rope scaling factors are recomputed from the config
        else:
            raise GGUFLoadError(f"unexpected tensor {name!r} in GGUF file")
    if arch == "gemma3":
        # GGUF stores gemma norms as (1 + w); mlx-lm's gemma adds the 1 itself.
        for k in list(weights):
            if k.endswith("norm.weight"):
                weights[k] = weights[k] - 1.0
    return weights, meta


def _field_value(field: Any) -> Any:
    from gguf import GGUFValueType

    types = field.types
    if not types:
        return None
    if types[0] == GGUFValueType.ARRAY:
        if len(types) > 1 and types[1] == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if types[0] == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return field.parts[field.data[0]].tolist()[0]
