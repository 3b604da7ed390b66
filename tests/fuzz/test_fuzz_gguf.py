"""Property-based fuzzing of the server's GGUF metadata reader (ollmlx/store/gguf_info.py), which
reads files that clients upload (spec §6 create): whatever the bytes, `read_gguf` returns a
GGUFInfo or raises NotGGUF; it never hangs and its memory stays bounded by the input's size, not by
the counts its header claims (Ollama's GGUF CVEs: out-of-bounds reads, huge allocations, crashes).

Hypothesis settles the examples (OLLMLX_FUZZ_EXAMPLES, 150 in CI); each runs under tracemalloc,
which slows the gguf package several times over, hence the generous time limits.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import memory_limit, time_limit
from helpers import smollm2_gguf
from ollmlx.store import gguf_info
from ollmlx.store.gguf_info import GGUFInfo, NotGGUF, read_gguf

# GGUF value types: 0-7 ints, 8 string, 9 array, 10-12 64-bit ints/float; others are invalid
U32, U64 = struct.Struct("<I"), struct.Struct("<Q")


def gstr(s: bytes) -> bytes:
    return U64.pack(len(s)) + s


def check(path: Path, seconds: float = 10, per_byte: int = 400) -> None:
    """The property: a result or NotGGUF, in time, within 16 MB + 400 bytes per input byte (the
    gguf package's worst case: an array of one-byte items, ~370 bytes of objects each)."""
    gguf_info._read.cache_clear()
    size = path.stat().st_size
    with time_limit(seconds), memory_limit(16_000_000 + per_byte * size):
        try:
            info = read_gguf(path)
        except NotGGUF:
            return
    assert isinstance(info, GGUFInfo)
    # what the server derives from it must not raise either
    _ = (info.architecture, info.file_type, info.context_length, info.embedding_length, info.has_vision,
         info.chat_template, info.pooling)


values = st.recursive(
    st.one_of(
        st.tuples(st.integers(0, 7), st.binary(min_size=0, max_size=8)),  # a scalar's type and raw bytes
        st.tuples(st.just(8), st.binary(max_size=40)),  # a string
        st.tuples(st.integers(13, 2**32 - 1), st.binary(max_size=8)),  # an invalid type id
    ),
    lambda inner: st.tuples(st.just(9), st.lists(inner, max_size=6)),  # an array
    max_leaves=12,
)


def encode(value: tuple) -> tuple[int, bytes]:
    kind, payload = value
    if kind == 9:
        items = [encode(v) for v in payload]
        itype = items[0][0] if items else 4
        return 9, U32.pack(itype) + U64.pack(len(items)) + b"".join(b for _, b in items)
    if kind == 8:
        return 8, gstr(payload)
    return kind, payload


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    """A GGUF-shaped file: real magic, a version, counts that may lie, kv pairs and tensor infos
    of any type (including invalid ones), and lengths that may point past the end."""
    kvs = draw(st.lists(st.tuples(st.binary(max_size=24), values), max_size=6))
    tensors = draw(st.lists(st.tuples(st.binary(max_size=16), st.lists(st.integers(0, 2**64 - 1), max_size=5),
                                      st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)), max_size=4))
    n_tensors = draw(st.one_of(st.just(len(tensors)), st.integers(0, 2**64 - 1)))
    n_kv = draw(st.one_of(st.just(len(kvs)), st.integers(0, 2**64 - 1)))
    out = bytearray(b"GGUF" + U32.pack(draw(st.sampled_from([1, 2, 3, 4, 0, 2**32 - 1]))))
    out += U64.pack(n_tensors) + U64.pack(n_kv)
    for key, value in kvs:
        kind, payload = encode(value)
        out += gstr(key) + U32.pack(kind) + payload
    for name, dims, dtype, offset in tensors:
        out += gstr(name) + U32.pack(len(dims)) + b"".join(U64.pack(d) for d in dims)
        out += U32.pack(dtype) + U64.pack(offset)
    out += draw(st.binary(max_size=64))
    if draw(st.booleans()):  # a string or array length claiming far more than is there
        out += U64.pack(draw(st.integers(2**20, 2**64 - 1)))
    return bytes(out)


@given(data=gguf_files())
def test_structured_gguf(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("gguf") / "x.gguf"
    path.write_bytes(data)
    check(path)


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A valid little GGUF with the kinds of metadata a real model has."""
    path = tmp_path_factory.mktemp("seed") / "seed.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_context_length(2048)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_file_type(1)
    w.add_string("tokenizer.chat_template", "{{ .Prompt }}")
    w.add_token_list(["<s>", "</s>", "a", "b", "ab"])
    w.add_token_types([1, 3, 1, 1, 1])
    w.add_array("tokenizer.ggml.merges", ["a b"])
    w.add_tensor("token_embd.weight", np.zeros((5, 8), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@given(edits=st.lists(st.tuples(st.integers(0, 2**31), st.binary(min_size=1, max_size=8),
                                st.sampled_from(["overwrite", "insert", "delete"])), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 2**31)))
def test_mutated_real_gguf(small_gguf: bytes, tmp_path_factory: pytest.TempPathFactory,
                           edits: list[tuple[int, bytes, str]], cut: int | None) -> None:
    """Bytes of a valid file overwritten, inserted, deleted, or the file cut short."""
    data = bytearray(small_gguf)
    for pos, chunk, op in edits:
        i = pos % (len(data) + 1)
        if op == "overwrite":
            data[i:i + len(chunk)] = chunk
        elif op == "insert":
            data[i:i] = chunk
        else:
            del data[i:i + len(chunk)]
    if cut is not None:
        del data[cut % (len(data) + 1):]
    path = tmp_path_factory.mktemp("mut") / "m.gguf"
    path.write_bytes(bytes(data))
    check(path)


def test_header_claims_do_not_drive_allocation(tmp_path: Path) -> None:
    """Counts far beyond the file (2**63 tensors, an array of 2**60 strings, a 2**62-byte string)
    are refused quickly without allocating what they claim."""
    cases = {
        "tensors": b"GGUF" + U32.pack(3) + U64.pack(2**63) + U64.pack(0),
        "kv": b"GGUF" + U32.pack(3) + U64.pack(0) + U64.pack(2**63),
        "array": (b"GGUF" + U32.pack(3) + U64.pack(0) + U64.pack(1) + gstr(b"k") + U32.pack(9) + U32.pack(8)
                  + U64.pack(2**60) + gstr(b"x") * 4),
        "string": b"GGUF" + U32.pack(3) + U64.pack(0) + U64.pack(1) + gstr(b"k") + U32.pack(8) + U64.pack(2**62),
        "dims": (b"GGUF" + U32.pack(3) + U64.pack(1) + U64.pack(0) + gstr(b"t") + U32.pack(2**31)
                 + U64.pack(1) * 4),
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(data)
        check(path)


def _wide(path: Path, n: int) -> Path:
    path.write_bytes(b"GGUF" + U32.pack(3) + U64.pack(0) + U64.pack(1) + gstr(b"k") + U32.pack(9) + U32.pack(0)
                     + U64.pack(n) + b"\x01" * n)
    return path


@pytest.mark.slow
def test_many_tiny_array_elements_stay_bounded(tmp_path: Path) -> None:
    """An array of 200k one-byte elements: each becomes Python objects in the gguf package, so
    memory is what the file's size allows (the check's bytes per input byte); beyond
    MAX_METADATA_ITEMS the header walk refuses the file before the package sees it."""
    check(_wide(tmp_path / "wide.gguf", 200_000), seconds=90, per_byte=1000)
    path = _wide(tmp_path / "wider.gguf", gguf_info.MAX_METADATA_ITEMS + 1)
    with time_limit(10), pytest.raises(NotGGUF, match="more than"):
        read_gguf(path)


@pytest.mark.slow
@given(cut=st.integers(24, 4 << 20))
def test_truncated_real_model(tmp_path_factory: pytest.TempPathFactory, cut: int) -> None:
    """SmolLM2's real header (49k-token vocabulary) cut anywhere in its first 4 MB."""
    head = _real_head()
    path = tmp_path_factory.mktemp("cut") / "cut.gguf"
    path.write_bytes(head[:cut])
    check(path)


_HEAD: list[bytes] = []


def _real_head() -> bytes:
    if not _HEAD:
        with open(smollm2_gguf(), "rb") as f:
            _HEAD.append(f.read(4 << 20))
    return _HEAD[0]

