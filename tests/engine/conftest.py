"""Engine fixtures: the packaged SmolLM2 loaded on MLX, and a tiny random-weight llama."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import smollm2_gguf


@pytest.fixture(scope="session")
def smol_loaded() -> Any:
    from ollmlx.runner.engines.mlx import host
    from ollmlx.runner.engines.mlx.loader import load_gguf

    loaded = load_gguf(smollm2_gguf())
    host.tune_for_host(loaded.model)
    return loaded


@pytest.fixture(scope="session")
def tiny_loaded(smol_loaded: Any) -> Any:
    """A 2-layer random llama (hidden 64) sharing SmolLM2's tokenizer: fast batching tests."""
    import mlx.core as mx
    from mlx_lm.models import llama

    from ollmlx.runner.engines.mlx.loader import LoadedModel

    mx.random.seed(0)
    args = llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                           vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)
    model = llama.Model(args)
    mx.eval(model.parameters())
    return LoadedModel(model, smol_loaded.tokenizer, {"model_type": "llama"}, 2048, None)


class Collector:
    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.done = threading.Event()

    def __call__(self, chunk: dict[str, Any]) -> None:
        self.chunks.append(chunk)
        if chunk.get("done") or "error" in chunk:
            self.done.set()

    @property
    def text(self) -> str:
        return "".join(c.get("content", "") for c in self.chunks)

    @property
    def final(self) -> dict[str, Any]:
        return self.chunks[-1]


@pytest.fixture
def collector() -> type[Collector]:
    return Collector


@pytest.fixture
def engine_factory() -> Iterator[Any]:
    from ollmlx.runner.engines.mlx.engine import MLXEngine

    made: list[Any] = []

    def make(loaded: Any, engine: Any = MLXEngine, **kw: Any) -> Any:
        """A started engine (MLX unless `engine` names another class), stopped after the test."""
        e = engine(loaded, num_ctx=kw.pop("num_ctx", 2048), parallel=kw.pop("parallel", 4), **kw)
        e.start()
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()
