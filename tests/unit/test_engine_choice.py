"""Default engine for GGUF models per host (the llama.cpp issue; docs/supported-models.md)."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

import pytest

from ollmlx.serve import loading


def _spec_with_libs(tmp_path: Path, *libs: str) -> importlib.machinery.ModuleSpec:
    pkg = tmp_path / "llama_cpp"
    (pkg / "lib").mkdir(parents=True)
    for name in libs:
        (pkg / "lib" / name).write_bytes(b"")
    spec = importlib.machinery.ModuleSpec("llama_cpp", None, is_package=True)
    spec.submodule_search_locations = [str(pkg)]
    return spec


@pytest.mark.parametrize(("libs", "mlx_gpu", "expected"), [
    (("libggml-cpu.so",), False, "llamacpp"),  # CPU host: llama.cpp is several times faster
    (("libggml-cpu.so",), True, "mlx"),  # mlx has the GPU, llama.cpp does not
    (("libggml-cpu.so", "libggml-cuda.so"), True, "llamacpp"),  # both on the GPU: llama.cpp measured faster
])
def test_default_gguf_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libs: tuple[str, ...],
                             mlx_gpu: bool, expected: str) -> None:
    spec = _spec_with_libs(tmp_path, *libs)
    monkeypatch.setattr(loading.sys, "platform", "linux")
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: spec if name == "llama_cpp" else None)
    if mlx_gpu:
        monkeypatch.setenv("OLLMLX_MLX_DEVICE", "gpu")
    else:
        monkeypatch.delenv("OLLMLX_MLX_DEVICE", raising=False)
        monkeypatch.setattr(loading, "_installed", lambda *names: False)
    assert loading.default_gguf_engine() == expected


def test_without_llama_cpp_everything_runs_on_mlx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading.sys, "platform", "linux")
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: None)
    assert loading.default_gguf_engine() == "mlx"
