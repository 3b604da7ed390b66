"""GGUF metadata for the server (show, tags, capabilities), read with the `gguf` package.

Reading is done once per blob and cached; a file that is not GGUF raises `NotGGUF`.

Files come from clients (create uploads them), so before the `gguf` package parses one (it keeps
~100 bytes of Python objects per metadata byte) a cheap walk over the header checks that its
metadata stays within what real models use; counts that claim more than the file holds are
refused there too (tests/fuzz/test_fuzz_gguf.py).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

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


# Real models stay below these (Gemma 3's 262k-token vocabulary: ~0.8M items, a few MB); at the
# item limit the gguf package needs ~300 MB and seconds of CPU, which bounds what a hostile file costs.
MAX_METADATA_BYTES = 64 << 20
MAX_METADATA_ITEMS = 2_000_000
# sizes of GGUF scalar value types; 8 is a string, 9 an array
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _HeaderWalk:
    """Walks a GGUF header (key/values, tensor infos) reading only lengths and counts."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size, self.items = f, size, 0
        self.order = "<"

    def _read(self, fmt: str) -> int:
        n = struct.calcsize(fmt)
        data = self.f.read(n)
        if len(data) != n:
            raise NotGGUF("invalid GGUF file: truncated header")
        return int(struct.unpack(self.order + fmt, data)[0])

    def _skip(self, n: int) -> None:
        pos = self.f.tell() + n
        if n < 0 or pos > self.size:
            raise NotGGUF("invalid GGUF file: a length points past the end of the file")
        if pos > MAX_METADATA_BYTES:
            raise NotGGUF(f"GGUF metadata larger than {MAX_METADATA_BYTES >> 20} MiB")
        self.f.seek(pos)

    def _count(self, n: int, min_bytes: int) -> None:
        if n * min_bytes > self.size - self.f.tell():
            raise NotGGUF("invalid GGUF file: a count claims more than the file holds")
        self.items += n
        if self.items > MAX_METADATA_ITEMS:
            raise NotGGUF(f"GGUF metadata has more than {MAX_METADATA_ITEMS} items")

    def _value(self, vtype: int) -> None:
        if vtype in _SCALAR_SIZES:
            self._skip(_SCALAR_SIZES[vtype])
        elif vtype == 8:
            self._skip(self._read("Q"))
        elif vtype == 9:
            itype, n = self._read("I"), self._read("Q")
            if itype in _SCALAR_SIZES:
                self._count(n, _SCALAR_SIZES[itype])
                self._skip(n * _SCALAR_SIZES[itype])
            else:
                self._count(n, 8 if itype == 8 else 12)
                for _ in range(n):
                    self._value(itype)
        else:
            raise NotGGUF(f"invalid GGUF file: unknown value type {vtype}")

    def walk(self) -> None:
        self.f.seek(4)
        version = self._read("I")
        if version & 0xFFFF == 0:  # written on a machine of the other byte order
            self.order = ">"
        n_tensors, n_kv = self._read("Q"), self._read("Q")
        self._count(n_kv, 12)
        for _ in range(n_kv):
            self._skip(self._read("Q"))
            self._value(self._read("I"))
        self._count(n_tensors, 24)
        tensors = []
        for _ in range(n_tensors):
            self._skip(self._read("Q"))
            n_dims = self._read("I")
            self._count(n_dims, 8)
            dims = [self._read("Q") for _ in range(n_dims)]
            tensors.append((dims, self._read("I"), self._read("Q")))
        # every tensor's data must lie inside the file (a file cut short is refused here, cheaply)
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        room = self.size - self.f.tell()
        for dims, ttype, offset in tensors:
            try:
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
            except (ValueError, KeyError):
                raise NotGGUF(f"invalid GGUF file: unknown tensor type {ttype}") from None
            n = 1
            for d in dims:
                n *= d
            if offset + n // block * type_size > room:
                raise NotGGUF("invalid GGUF file: tensor data past the end of the file (truncated?)")


def check_metadata_bounds(path: Path) -> None:
    """Refuse (NotGGUF) a file whose header is malformed or larger than real models' headers."""
    try:
        with open(path, "rb") as f:
            _HeaderWalk(f, path.stat().st_size).walk()
    except OSError as exc:  # gone or unreadable meanwhile
        raise NotGGUF(f"cannot read GGUF file: {exc.strerror}") from exc


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

    check_metadata_bounds(Path(path))
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
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:  # removed since is_gguf looked
        raise NotGGUF(f"cannot read GGUF file: {exc.strerror}") from exc
    return _read(str(path), mtime)


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
