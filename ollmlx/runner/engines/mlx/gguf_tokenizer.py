"""A Hugging Face `tokenizers` tokenizer rebuilt from GGUF `tokenizer.ggml.*` metadata.

Byte-level BPE (`gpt2`) and SentencePiece-style BPE (`llama`) vocabularies are supported, which
covers the llama, qwen, smollm and gemma families. CONTROL tokens become special added tokens so a
chat template's markers (`<|im_start|>`) encode as one id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4

# Pre-tokenizer split patterns by `tokenizer.ggml.pre` (llama.cpp's llama-vocab.cpp names them).
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_PATTERNS = {
    "gpt2": _GPT2, "smollm": _GPT2, "starcoder": _GPT2, "refact": _GPT2, "default": _GPT2,
    "llama3": _LLAMA3, "llama-bpe": _LLAMA3, "smaug-bpe": _LLAMA3, "dbrx": _LLAMA3,
    "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2,
}
# Byte-level vocabularies that split digits individually before the main pattern.
DIGIT_SPLIT = {"smollm", "starcoder", "refact"}


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)


def _bpe_pair(merge: str) -> tuple[str, str]:
    a, _, b = merge.partition(" ")
    return a, b


def build_tokenizer(meta: dict[str, Any]) -> tuple[Tokenizer, dict[str, Any]]:
    """Returns the tokenizer and the special-token facts (bos/eos ids, add_bos)."""
    kind = _text(meta.get("tokenizer.ggml.model", "gpt2"))
    tokens = [_text(t) for t in meta["tokenizer.ggml.tokens"]]
    types: Sequence[int] = [int(t) for t in meta.get("tokenizer.ggml.token_type", [1] * len(tokens))]
    merges = [_bpe_pair(_text(m)) for m in meta.get("tokenizer.ggml.merges", [])]
    vocab = {tok: i for i, tok in enumerate(tokens)}

    if kind == "gpt2":
        tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=False))
        pre = _text(meta.get("tokenizer.ggml.pre", "default"))
        pattern = PRE_PATTERNS.get(pre, _GPT2)
        splits: list[Any] = []
        if pre in DIGIT_SPLIT:
            splits.append(pre_tokenizers.Digits(individual_digits=True))
        splits.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
        splits.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
        tok.decoder = decoders.ByteLevel()
    elif kind == "llama":
        scores = meta.get("tokenizer.ggml.scores")
        if merges:
            tok = Tokenizer(models.BPE(vocab, merges, byte_fallback=True, fuse_unk=True))
        else:
            # SentencePiece unigram-as-BPE: derive merges from scores like llama.cpp's SPM tokenizer.
            tok = Tokenizer(models.Unigram([(t, float(s)) for t, s in zip(tokens, scores or [0.0] * len(tokens))],
                                           unk_id=int(meta.get("tokenizer.ggml.unknown_token_id", 0)),
                                           byte_fallback=True))
        add_space = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        norms: list[Any] = [normalizers.Replace(" ", "\u2581")]
        if add_space:
            norms.insert(0, normalizers.Prepend("\u2581"))
        tok.normalizer = normalizers.Sequence(norms)
        decs = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
        if add_space:
            decs.append(decoders.Strip(" ", 1, 0))
        tok.decoder = decoders.Sequence(decs)
    else:
        raise ValueError(f"unsupported GGUF tokenizer model {kind!r}")

    special = [
        AddedToken(t, special=True, normalized=False)
        for t, ty in zip(tokens, types)
        if ty == TOKEN_CONTROL
    ]
    user = [AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == TOKEN_USER_DEFINED]
    tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)

    def _id(key: str) -> int | None:
        v = meta.get(key)
        return int(v) if v is not None else None

    facts = {
        "bos_token_id": _id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": _id("tokenizer.ggml.eos_token_id"),
        "eot_token_id": _id("tokenizer.ggml.eot_token_id"),
        "pad_token_id": _id("tokenizer.ggml.padding_token_id"),
        "unk_token_id": _id("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", kind == "llama")),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "chat_template": _text(meta["tokenizer.chat_template"]) if "tokenizer.chat_template" in meta else None,
        "tokens": tokens,
    }
    return tok, facts
