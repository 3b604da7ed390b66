"""Pure-Python safetensors reading and writing (the server must not import an engine or torch).

Used to split an HF/MLX directory into Ollama's one-tensor-per-blob layers and to read tensor
metadata for /api/show.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollmlx.errors import BadRequest

MAX_HEADER = 100 * 1024 * 1024
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: list[int]
    start: int  # absolute file offset of the data
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path) -> tuple[list[TensorInfo], dict[str, str]]:
    """Tensors (in file order) and `__metadata__` of a safetensors file; BadRequest if malformed."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise BadRequest(f"{path.name}: not a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise BadRequest(f"{path.name}: invalid safetensors header")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise BadRequest(f"{path.name}: invalid safetensors header") from exc
    if not isinstance(header, dict):
        raise BadRequest(f"{path.name}: invalid safetensors header")
    base = 8 + n
    meta = header.pop("__metadata__", None) or {}
    tensors = []
    for name, info in header.items():
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            dtype = str(info["dtype"])
            shape = [int(d) for d in info["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"{path.name}: invalid entry for tensor {name!r}") from exc
        if not (0 <= begin <= end and base + end <= size):
            raise BadRequest(f"{path.name}: tensor {name!r} lies outside the file")
        tensors.append(TensorInfo(name, dtype, shape, base + begin, base + end))
    tensors.sort(key=lambda t: t.start)
    return tensors, {str(k): str(v) for k, v in meta.items()}


def pack(parts: list[tuple[TensorInfo, Path]], metadata: dict[str, str] | None = None,
         rename: dict[str, str] | None = None) -> Iterator[bytes]:
    """A new safetensors file holding `parts` (streamed, tensor data copied from their files)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for info, _ in parts:
        name = (rename or {}).get(info.name, info.name)
        header[name] = {"dtype": info.dtype, "shape": info.shape, "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # keep the data region 8-byte aligned
    yield struct.pack("<Q", len(blob)) + blob
    for info, path in parts:
        with open(path, "rb") as f:
            f.seek(info.start)
            left = info.nbytes
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise BadRequest(f"{path.name}: truncated tensor data")
                left -= len(chunk)
                yield chunk
