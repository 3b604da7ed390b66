"""GGUF metadata for the server (show, tags, capabilities), read with the `gguf` package.

Reading is done once per blob and cached; a file that is not GGUF raises `NotGGUF`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"

# llama.cpp's LLAMA_FTYPE names (general.file_type)
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}


class NotGGUF(ValueError):
    pass


@dataclass
class TensorSummary:
    name: str
    type: str
    shape: list[int]


@dataclass
class GGUFInfo:
    kv: dict[str, Any]
    tensors: list[TensorSummary] = field(default_factory=list)
    parameter_count: int = 0

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    @property
    def file_type(self) -> str:
        ft = self.kv.get("general.file_type")
        return FILE_TYPES.get(int(ft), "unknown") if isinstance(ft, int) else "unknown"

    @property
    def chat_template(self) -> str | None:
        t = self.kv.get("tokenizer.chat_template")
        return str(t) if t else None

    def arch_value(self, key: str) -> Any:
        return self.kv.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int:
        v = self.arch_value("context_length")
        return int(v) if v else 0

    @property
    def embedding_length(self) -> int:
        v = self.arch_value("embedding_length")
        return int(v) if v else 0

    @property
    def has_vision(self) -> bool:
        return bool(self.kv.get("vision.block_count") or self.arch_value("vision.block_count"))

    @property
    def pooling(self) -> bool:
        return self.arch_value("pooling_type") is not None


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


@functools.lru_cache(maxsize=32)
def _read(path: str, mtime: float) -> GGUFInfo:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # gguf raises ValueError/struct errors/IndexError on bad files
        raise NotGGUF(f"invalid GGUF file: {exc}") from exc
    kv: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            kv[key] = fld.contents()
        except Exception:
            continue
    tensors = [TensorSummary(t.name, t.tensor_type.name, [int(x) for x in t.shape]) for t in reader.tensors]
    count = int(sum(int(t.n_elements) for t in reader.tensors))
    return GGUFInfo(kv, tensors, count)


def read_gguf(path: Path) -> GGUFInfo:
    if not is_gguf(path):
        raise NotGGUF("supplied file was not in GGUF format")
    return _read(str(path), path.stat().st_mtime)


def human_number(n: int) -> str:
    """Ollama's format.HumanNumber: 134515008 → "134.52M", 8030261248 → "8.0B"."""
    if n >= 1_000_000_000:
        v = n / 1_000_000_000
        return f"{v:.0f}B" if v == int(v) else f"{v:.1f}B"
    if n >= 1_000_000:
        v = n / 1_000_000
        return f"{v:.0f}M" if v == int(v) else f"{v:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)
