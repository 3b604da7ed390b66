"""A random-weight model of a real shape, saved as an MLX directory (config, weights, tokenizer).

    python bench/make_random_model.py --shape llama-3.2-1b --bits 4 --out /tmp/m

Used where real weights cannot travel (the GPU machine takes 64 MiB per call): decode speed
depends on shapes and quantization, not on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, head_dim=64),
    "llama-3.1-8b": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=14336, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, head_dim=128),
    # server-side costs, where the engine's share should be negligible (bench/probe_server_path.py)
    "tiny": dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True, head_dim=16),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, head_dim=64),
}
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def tokenizer(vocab_size: int, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for i in range(len(specials), vocab_size):
        vocab[f"w{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|end|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(specials)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>", "bos_token": None,
        "chat_template": TEMPLATE}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bfloat16", help="float32 for CPU probes (MLX's CPU bf16 matmuls are slow)")
    ap.add_argument("--tokenizer-from", help="a model directory whose tokenizer (and vocabulary size, eos and bos) "
                    "the model takes: server-path probes then tokenize and render like that real model")
    a = ap.parse_args()
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm.models import llama

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "llama", "rms_norm_eps": 1e-5, "max_position_embeddings": 131072, "rope_theta": 500000.0,
           "architectures": ["LlamaForCausalLM"], "eos_token_id": 0, **SHAPES[a.shape]}
    if a.tokenizer_from:
        real = json.loads((Path(a.tokenizer_from) / "config.json").read_text())
        cfg.update({k: real[k] for k in ("vocab_size", "eos_token_id", "bos_token_id") if k in real})
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    model.update(tree_map(lambda x: x.astype(getattr(mx, a.dtype)), model.parameters()))
    if a.bits:
        nn.quantize(model, group_size=64, bits=a.bits)
        cfg["quantization"] = {"group_size": 64, "bits": a.bits}
    mx.eval(model.parameters())
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    cfg["torch_dtype"] = a.dtype
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    if a.tokenizer_from:
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            if (Path(a.tokenizer_from) / name).exists():
                shutil.copyfile(Path(a.tokenizer_from) / name, out / name)
    else:
        tokenizer(cfg["vocab_size"], out)
    print(json.dumps({"out": str(out), "params": sum(v.size for v in weights.values())}))


if __name__ == "__main__":
    main()
