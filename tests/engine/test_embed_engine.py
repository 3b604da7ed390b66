"""The MLX embedding engine (spec §4, §5) on real mlx: all-MiniLM-L6-v2 through mlx-embeddings
against sentence-transformers on the same files, batching inside the runner, truncation to the
context, and decoder pooling on SmolLM2."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import minilm_dir, minilm_reference, smollm2_gguf
from ollmlx.runner.engine_api import EngineError
from ollmlx.runner.protocol import EmbeddingRequest, ModelSpec

TEXTS = [
    "Why is the sky blue?",
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    "Embeddings map sentences to vectors so that similar meanings land close together, "
    "which search engines and retrieval-augmented generation rely on.",
]


def dir_spec(root: Path) -> ModelSpec:
    """A model directory as the runner sees an imported one: weights + json/text layers."""
    files = {str(p.relative_to(root)): str(p) for p in root.rglob("*")
             if p.is_file() and p.suffix in (".json", ".txt")}
    return ModelSpec(format="safetensors", tensors=[str(root / "model.safetensors")], files=files, name="minilm")


def cosines(a: Any, b: Any) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def minilm() -> Any:
    from ollmlx.runner.engines.mlx.embed import is_embedding_spec, load_embedding_model

    spec = dir_spec(minilm_dir())
    assert is_embedding_spec(spec)
    engine = load_embedding_model(spec, num_ctx=4096)
    yield engine
    engine.stop()


def test_minilm_matches_sentence_transformers(minilm: Any) -> None:
    # ARCHITECTURE.md: mlx-embeddings reproduces the reference vectors (cosine > 0.9999)
    out = minilm.embed(EmbeddingRequest(inputs=TEXTS))
    ref = [minilm_reference(t)["normalized"] for t in TEXTS]
    assert len(out.embeddings) == len(TEXTS) and all(len(v) == 384 for v in out.embeddings)
    cos = cosines(out.embeddings, ref)
    assert np.all(cos > 0.9999), cos
    # modules.json lists Normalize: the runner returns unit vectors, like sentence-transformers
    assert np.allclose(np.linalg.norm(out.embeddings, axis=-1), 1.0, atol=1e-5)
    expected_tokens = sum(minilm_reference(t)["tokens"] for t in TEXTS)
    assert out.prompt_eval_count == expected_tokens
    assert minilm.context_length == 512 and minilm.num_ctx == 512


def test_concurrent_requests_share_forward_passes(minilm: Any) -> None:
    """Requests queued while the worker is busy are packed into one padded pass, and padding does
    not change any vector."""
    solo = [minilm.embed(EmbeddingRequest(inputs=[t])).embeddings[0] for t in TEXTS]
    batches: list[int] = []
    gate = threading.Event()
    first_started = threading.Event()
    real = minilm.hidden

    def watched(ids: Any, mask: Any) -> Any:
        batches.append(int(ids.shape[0]))
        if len(batches) == 1:
            first_started.set()
            assert gate.wait(60)
        return real(ids, mask)

    minilm.hidden = watched
    results: dict[int, Any] = {}
    try:
        def call(i: int, texts: list[str]) -> None:
            results[i] = minilm.embed(EmbeddingRequest(inputs=texts))

        first = threading.Thread(target=call, args=(0, [TEXTS[0]]))
        first.start()
        assert first_started.wait(60)
        rest = [threading.Thread(target=call, args=(1, TEXTS[1:3])), threading.Thread(target=call, args=(2, [TEXTS[3]]))]
        for t in rest:
            t.start()
        for _ in range(6000):  # both queued behind the blocked pass
            if minilm._queue.qsize() >= 2:
                break
            threading.Event().wait(0.01)
        gate.set()
        for t in [first, *rest]:
            t.join(120)
    finally:
        minilm.hidden = real
    assert batches == [1, 3], batches  # the two queued requests (3 inputs) went through one pass
    got = [results[0].embeddings[0], *results[1].embeddings, results[2].embeddings[0]]
    assert np.all(cosines(got, solo) > 0.99999)


def test_truncation_keeps_special_tokens(minilm: Any) -> None:
    long_text = "word " * 700
    cls_id, sep_id = minilm.tok.cls_token_id, minilm.tok.sep_token_id
    ids = minilm.fit(long_text, 512, truncate=True)
    assert len(ids) == 512 and ids[0] == cls_id and ids[-1] == sep_id
    out = minilm.embed(EmbeddingRequest(inputs=[long_text, "short"]))
    assert out.prompt_eval_count == 512 + 3
    small = minilm.embed(EmbeddingRequest(inputs=[long_text], num_ctx=16))
    assert small.prompt_eval_count == 16
    with pytest.raises(EngineError) as err:
        minilm.embed(EmbeddingRequest(inputs=["short", long_text], truncate=False))
    assert str(err.value) == "the input length exceeds the context length" and err.value.status == 400


def test_sentence_transformers_pooling_config(tmp_path: Path) -> None:
    from ollmlx.runner.engines.mlx.embed import Pooling, st_pooling

    files = dir_spec(minilm_dir()).files
    assert st_pooling(files, "lasttoken") == Pooling(("mean",), True)
    assert st_pooling({}, "lasttoken") == Pooling(("lasttoken",), True)  # llama-server's default: normalised
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    files = {"modules.json": str(tmp_path / "modules.json"), "1_Pooling/config.json": str(tmp_path / "1_Pooling/config.json")}
    assert st_pooling(files, "mean") == Pooling(("cls",), False)
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ValueError, match="Dense"):
        st_pooling(files, "mean")


def test_decoder_pooling_on_smollm2(smol_loaded: Any) -> None:
    """A generation model embeds through its backbone's last hidden states; SmolLM2's GGUF has no
    pooling_type, so the pooling is mean, normalised."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx.embed import Pooling, decoder_embedder

    spec = ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smol")
    engine = decoder_embedder(smol_loaded, spec, num_ctx=2048)
    try:
        assert engine.pooling == Pooling(("mean",), True)
        texts = TEXTS[:3]
        out = engine.embed(EmbeddingRequest(inputs=texts))
        assert all(len(v) == smol_loaded.config["hidden_size"] for v in out.embeddings)
        for text, vec in zip(texts, out.embeddings, strict=True):
            ids = engine.tokenize(text, add_special=True)
            h = smol_loaded.model.model(mx.array([ids])).astype(mx.float32)[0]
            ref = np.array(mx.mean(h, axis=0))
            assert cosines(vec, ref) > 0.99999
        assert out.prompt_eval_count == sum(len(engine.tokenize(t, add_special=True)) for t in texts)
        # last-token pooling takes each sequence's own last position, not the padding
        engine.pooling = Pooling(("lasttoken",), True)
        last = engine.embed(EmbeddingRequest(inputs=texts)).embeddings
        solo = [engine.embed(EmbeddingRequest(inputs=[t])).embeddings[0] for t in texts]
        assert np.all(cosines(last, solo) > 0.99999)
        assert cosines(last[1], out.embeddings[1]) < 0.999  # a different pooling, a different vector
    finally:
        engine.stop()
