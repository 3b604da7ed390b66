"""A GGUF and the same model as an MLX directory give the same greedy tokens through the server
(issue: the spine; ARCHITECTURE.md "GGUF to MLX")."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from helpers import Server, smollm2_gguf

PROMPTS = [
    "What is the capital of France? Answer briefly.",
    "Write a haiku about the sea.",
    "List three primary colors.",
]


@pytest.fixture(scope="module")
def mlx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the test process may use the engine directly: convert the packaged GGUF to an HF/MLX directory
    from ollmlx.runner.engines.mlx.convert import convert_gguf

    out = tmp_path_factory.mktemp("smol-mlx")
    convert_gguf(smollm2_gguf(), out)
    return out


@pytest.mark.slow
def test_gguf_and_mlx_directory_agree(server: Server, mlx_dir: Path, tmp_path: Path) -> None:
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {mlx_dir}\n")
    r = server.cli("create", "smol-mlx-dir", "-f", str(mf))
    assert r.returncode == 0, r.stderr
    tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
    assert tags["smol-mlx-dir:latest"]["details"]["format"] == "safetensors"
    layers = (server.models / "manifests/registry.ollama.ai/library/smol-mlx-dir/latest").read_text()
    assert "application/vnd.ollama.image.tensor" in layers and '"name":"config.json"' in layers
    # The GGUF gets Ollama's autodetected chatml TEMPLATE, the directory renders its own Jinja
    # template, which adds SmolLM's default system prompt when there is none: an explicit system
    # message makes both render the same prompt, so only the engines' tokens are compared.
    for prompt in PROMPTS:
        outs = []
        for model in ("smollm2:135m", "smol-mlx-dir"):
            resp = httpx.post(server.url + "/api/generate", timeout=300, json={
                "model": model, "prompt": prompt, "system": "You are a helpful assistant.",
                "stream": False,
                "options": {"temperature": 0, "num_predict": 24}}).json()
            outs.append((resp["response"], resp["eval_count"], resp["context"]))
        assert outs[0] == outs[1], prompt
    httpx.request("DELETE", server.url + "/api/delete", json={"model": "smol-mlx-dir"})
