"""Fixtures: a live `ollmlx serve` process per test session with SmolLM2 imported from PyPI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Server, create_smollm2, start_server, stop_server

_SHARED: list[Server] = []


@pytest.fixture(autouse=True, scope="module")
def _shared_server_left_unloaded() -> Iterator[None]:
    """Each test module leaves the shared server as it found it: no model loaded (tests count
    runner processes and read /api/ps; a model left loaded by another module would skew them)."""
    yield
    for srv in _SHARED:
        if srv.proc.poll() is not None:
            continue
        try:
            for m in httpx.get(srv.url + "/api/ps", timeout=30).json()["models"]:
                httpx.post(srv.url + "/api/generate", json={"model": m["name"], "keep_alive": 0}, timeout=120)
        except httpx.HTTPError:
            pass


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, with `smollm2:135m` created through the real CLI. GGUF models
    run on the MLX engine here (OLLMLX_ENGINE=mlx): the default on a CPU host with llama-cpp-python
    installed is llama.cpp, which has its own tests."""
    tmp = tmp_path_factory.mktemp("ollmlx")
    srv = start_server(tmp, {"OLLMLX_ENGINE": "mlx"})
    try:
        create_smollm2(srv)
        _SHARED.append(srv)
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
