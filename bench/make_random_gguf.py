"""A random-weight llama-architecture GGUF (F16) of a real shape, with a byte-level vocabulary.

    python bench/make_random_gguf.py --shape llama-3.2-1b --out /tmp/m-f16.gguf

Quantize it with llama.cpp afterwards (llama_model_quantize) for Q4_0/Q4_K_M runs. Both engines
load it: llama.cpp natively, the MLX engine through its GGUF reader (tokenizer from metadata).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_random_model import SHAPES


def byte_alphabet() -> list[str]:
    """GPT-2's bytes→unicode table: every byte has a printable token, so any text tokenizes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import gguf

    s = SHAPES[a.shape]
    hidden, layers, ffn = s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"]
    heads, kv, vocab, hd = s["num_attention_heads"], s["num_key_value_heads"], s["vocab_size"], s["head_dim"]
    specials = ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    tokens = [*specials, *byte_alphabet(), "\u0120t"]  # llama.cpp wants at least one merge
    tokens += [f"w{i}" for i in range(len(tokens), vocab)]
    types = [3] * len(specials) + [1] * (vocab - len(specials))
    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name(f"random {a.shape}")
    w.add_block_count(layers)
    w.add_context_length(131072)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(1)  # F16
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(3)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    rng = np.random.default_rng(0)

    def t(name: str, *shape: int) -> None:
        arr = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        w.add_tensor(name, arr)

    t("token_embd.weight", vocab, hidden)
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    if not s["tie_word_embeddings"]:
        t("output.weight", vocab, hidden)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        t(f"blk.{i}.attn_q.weight", heads * hd, hidden)
        t(f"blk.{i}.attn_k.weight", kv * hd, hidden)
        t(f"blk.{i}.attn_v.weight", kv * hd, hidden)
        t(f"blk.{i}.attn_output.weight", hidden, heads * hd)
        t(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        t(f"blk.{i}.ffn_up.weight", ffn, hidden)
        t(f"blk.{i}.ffn_down.weight", hidden, ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(a.out)


if __name__ == "__main__":
    main()
