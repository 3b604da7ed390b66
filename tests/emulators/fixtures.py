"""Session fixtures: the models the emulators publish, built from the packaged SmolLM2 GGUF.

- `published`: a store (ollmlx's = Ollama's layout) holding `smollm2:135m` (the GGUF),
  `smollm2:135m-system` (the GGUF plus a system layer: another config, for unused-layer pruning)
  and `smollm2-mlx:135m` (an MLX directory converted from the GGUF, as tensor/json layers).
- `registry`: an Ollama registry emulator publishing them as `library/smollm2:135m`, ...
- `hub`: a Hugging Face endpoint emulator with an MLX repository and a GGUF repository.
Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulators.hf_hub import HubEmulator, Repo
from emulators.ollama_registry import OllamaRegistry
from helpers import smollm2_gguf

MLX_REPO = "mlx-community/SmolLM2-135M-Instruct-4bit"
GGUF_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"


@dataclass
class Published:
    models: Path
    mlx_dir: Path
    q8_gguf: Path  # a second, different file for quantization choice

    def manifest(self, name: str, tag: str) -> bytes:
        return (self.models / "manifests/registry.ollama.ai/library" / name / tag).read_bytes()


def _create(store_dir: Path, name: str, files: dict[str, Path], system: str | None = None) -> None:
    from ollmlx.store.create import CreateSpec, Creator
    from ollmlx.store.names import parse_name
    from ollmlx.store.store import Store

    store = Store(store_dir)
    digests = {fname: store.blobs.write_file(path) for fname, path in files.items()}
    Creator(store, lambda _: None).run(CreateSpec(name=parse_name(name), files=digests, system=system))


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    from ollmlx.runner.engines.mlx.convert import convert_gguf  # the test process may use the engine

    root = tmp_path_factory.mktemp("published")
    gguf = smollm2_gguf()
    _create(root / "models", "smollm2:135m", {gguf.name: gguf})
    _create(root / "models", "smollm2:135m-system", {gguf.name: gguf}, system="You are terse.")
    mlx_dir = root / "mlx"
    convert_gguf(gguf, mlx_dir)
    _create(root / "models", "smollm2-mlx:135m", {p.name: p for p in mlx_dir.iterdir() if p.is_file()})
    q8 = root / "SmolLM2-135M-Instruct-Q8_0.gguf"
    shutil.copyfile(gguf, q8)
    with open(q8, "ab") as f:
        f.write(b"\0" * 4096)  # other bytes, another digest: which file was chosen is visible
    return Published(root / "models", mlx_dir, q8)


@pytest.fixture(scope="session")
def registry(published: Published) -> Iterator[OllamaRegistry]:
    reg = OllamaRegistry()
    for name, tag in (("smollm2", "135m"), ("smollm2", "135m-system"), ("smollm2-mlx", "135m")):
        reg.add_store_model(published.models, f"registry.ollama.ai/library/{name}:{tag}", f"library/{name}", tag)
    with reg:
        yield reg


@pytest.fixture(scope="session")
def hub(published: Published) -> Iterator[HubEmulator]:
    emulator = HubEmulator()
    emulator.add(Repo(MLX_REPO, {**{p.name: p for p in published.mlx_dir.iterdir() if p.is_file()},
                                 "README.md": b"# SmolLM2 MLX\n"},
                      tags=["mlx", "safetensors", "text-generation"], library="mlx", downloads=500))
    gguf = smollm2_gguf()
    emulator.add(Repo(GGUF_REPO, {"SmolLM2-135M-Instruct-Q4_K_M.gguf": gguf,
                                  "SmolLM2-135M-Instruct-Q8_0.gguf": published.q8_gguf,
                                  "README.md": b"# GGUF\n"}, tags=["gguf"], library="gguf", downloads=300))
    with emulator:
        yield emulator


def hf_env(hub: HubEmulator, home: Path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_XET": "1"}
