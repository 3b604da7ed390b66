"""The scheduler's planning figure for a model (spec §18 fit check): weights plus one 16-bit context."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import smollm2_gguf
from ollmlx.serve.memory_estimate import estimate_bytes, kv_bytes_per_token
from ollmlx.store.create import CreateSpec, Creator
from ollmlx.store.names import parse_name
from ollmlx.store.store import Store


def test_gguf_estimate_is_weights_plus_one_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    Creator(store, lambda _: None).run(CreateSpec(name=parse_name("smol"), files={"m.gguf": digest}, system="hi"))
    model = store.load(parse_name("smol"))
    per_token = 2 * 30 * 3 * 64 * 2  # SmolLM2-135M: 30 layers, 3 KV heads of 64, keys and values, fp16
    assert kv_bytes_per_token(model) == per_token
    size = smollm2_gguf().stat().st_size
    assert estimate_bytes(model, 2048) == size + per_token * 2048  # the system layer is not weights
    monkeypatch.setenv("OLLAMA_CONTEXT_LENGTH", "1024")
    assert estimate_bytes(model, 0) == size + per_token * 1024  # num_ctx unset: the server's default
