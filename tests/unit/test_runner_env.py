"""The environment the server gives a runner process (runner/env.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ollmlx.runner.env import runner_env


def test_mlx_runners_use_mlx_attention_kernels_instead_of_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    # cuDNN attention costs a graph build per new prompt length on CUDA (bench/RESULTS.md)
    monkeypatch.delenv("MLX_CUDA_USE_CUDNN_SDPA", raising=False)
    assert runner_env("mlx")["MLX_CUDA_USE_CUDNN_SDPA"] == "0"
    assert "MLX_CUDA_USE_CUDNN_SDPA" not in runner_env("llamacpp")


def test_a_users_cudnn_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLX_CUDA_USE_CUDNN_SDPA", "1")
    assert runner_env("mlx")["MLX_CUDA_USE_CUDNN_SDPA"] == "1"


def test_runners_import_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    parts = runner_env("mlx")["PYTHONPATH"].split(os.pathsep)
    assert (Path(parts[0]) / "ollmlx" / "runner" / "env.py").is_file()
    assert parts[1:] == ["/elsewhere"]
