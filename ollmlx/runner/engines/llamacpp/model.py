"""A GGUF model loaded by llama.cpp, and its vocabulary (tokenize, pieces, end-of-generation).

Thin ctypes wrappers over `llama_cpp`'s C API: the vocabulary calls only read the model, so the
HTTP threads may tokenize while the engine thread decodes.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import llama_cpp

from ollmlx.runner.engines.llamacpp import host

_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            host.quiet_native_logs()
            llama_cpp.llama_backend_init()
            _backend_ready = True


def free_context(ctx: Any, batch: Any) -> None:
    """Free a llama.cpp context and the batch made for it (either may already be gone: None)."""
    if batch is not None:
        llama_cpp.llama_batch_free(batch)
    if ctx:
        llama_cpp.llama_free(ctx)


class LlamaCppModel:
    def __init__(self, path: str) -> None:
        _init_backend()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = -1 if host.gpu_offload() else 0  # negative: every layer
        params.use_extra_bufts = host.weight_repack()
        host.take_errors()
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not model:
            why = host.take_errors()
            raise ValueError(why[0] if why else f"llama.cpp could not load the model file {path}")
        self.ptr: Any = model
        self.vocab: Any = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.context_length = int(llama_cpp.llama_model_n_ctx_train(model))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(self.vocab))
        template = llama_cpp.llama_model_chat_template(model, None)
        self.chat_template: str | None = template.decode() if template else None
        self.size_bytes = int(llama_cpp.llama_model_size(model))
        self.has_encoder = bool(llama_cpp.llama_model_has_encoder(model))
        self._pieces: dict[int, bytes] = {}

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    def kv_bytes_per_token(self) -> int:
        """An f16 K and V row per layer (the default cache type): for the memory estimate."""
        n_head = max(1, int(llama_cpp.llama_model_n_head(self.ptr)))
        head_dim = int(llama_cpp.llama_model_n_embd(self.ptr)) // n_head
        kv_heads = int(llama_cpp.llama_model_n_head_kv(self.ptr))
        return int(llama_cpp.llama_model_n_layer(self.ptr)) * 2 * kv_heads * head_dim * 2

    # -- vocabulary --------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """Special-token text (`<|im_start|>`) becomes its token, as in Ollama's runners."""
        data = text.encode()
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            cap = -n
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            raise ValueError("llama.cpp could not tokenize the text")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token, special tokens written out (maybe a partial UTF-8 sequence)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        if not 0 <= token < self.n_vocab:
            raise ValueError(f"token {token} is outside the vocabulary")
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, True)
        out = buf.raw[:n]
        self._pieces[token] = out
        return out

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode(errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
