"""Fixtures: a live `ollmlx serve` process per test session with SmolLM2 imported from PyPI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Server, create_smollm2, start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, with `smollm2:135m` created through the real CLI. GGUF models
    run on the MLX engine here (OLLMLX_ENGINE=mlx): the default on a CPU host with llama-cpp-python
    installed is llama.cpp, which has its own tests."""
    tmp = tmp_path_factory.mktemp("ollmlx")
    srv = start_server(tmp, {"OLLMLX_ENGINE": "mlx"})
    try:
        create_smollm2(srv)
        yield srv
    finally:
        stop_server(srv)
    assert srv.runners() == [], "runner processes outlived the server"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, empty store (for tests that change global state)."""
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        stop_server(srv)
