"""From a stored model and merged options to what the scheduler loads (engine, spec, load options)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ollmlx import config
from ollmlx.options import load_time_options
from ollmlx.runner.protocol import ModelSpec
from ollmlx.sched.scheduler import LoadRequest
from ollmlx.serve.memory_estimate import estimate_bytes
from ollmlx.store.manifests import MT_ADAPTER as ADAPTER_MEDIA_TYPE
from ollmlx.store.store import Model

ENGINES = ("mlx", "llamacpp")


def choose_engine(model: Model) -> str:
    """MLX models run on mlx. A GGUF model runs on either: OLLMLX_ENGINE, then the model's
    `engine` parameter, then the default for this host (see docs/supported-models.md)."""
    if model.format != "gguf":
        return "mlx"
    # `engine` is no Ollama option: merge_options drops it from the options, so read the params layer
    forced = config.engine_override() or model.params.get("engine")
    if isinstance(forced, str) and forced in ENGINES:
        return forced
    if model.adapter_paths or model.projector_paths:
        return "mlx"  # the llamacpp engine loads neither adapters nor vision projectors
    return default_gguf_engine()


def default_gguf_engine() -> str:
    """mlx on macOS arm64 (Metal); llama.cpp wherever it is installed with the GPU, or where mlx
    has no GPU either; mlx with a GPU next to a CPU-only llama.cpp. llama.cpp measured 3-11x faster than mlx on CPU (docs/supported-models.md).
    Decided from package metadata and the platform: the server never imports an engine."""
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mlx"
    llama = importlib.util.find_spec("llama_cpp")
    if llama is None:
        return "mlx"
    # On NVIDIA, a CUDA build of llama.cpp decodes GGUF 2.8x (1 stream) to 5x (16 streams) faster
    # than mlx-cuda on the same Q4_0 file (H200, bench/results/gpu/h200-gguf-engines-*): it wins
    # wherever it has the GPU. Only a CPU-only llama.cpp next to mlx-cuda leaves GGUF on mlx.
    mlx_gpu = os.environ.get("OLLMLX_MLX_DEVICE") == "gpu" or (
        _installed("mlx-cuda-12", "mlx-cuda-13") and Path("/proc/driver/nvidia/version").exists())
    if mlx_gpu and not _llama_cpp_has_gpu(llama):
        return "mlx"
    return "llamacpp"


def _llama_cpp_has_gpu(spec: Any) -> bool:
    """Whether llama-cpp-python was built with a GPU backend: its backend libraries are files
    next to the package (checked without importing it, as the server never loads an engine)."""
    for location in spec.submodule_search_locations or []:
        lib = Path(location) / "lib"
        if lib.is_dir() and (any(lib.glob("libggml-cuda*")) or any(lib.glob("libggml-vulkan*"))):
            return True
    return False


def _installed(*dists: str) -> bool:
    for name in dists:
        try:
            importlib.metadata.distribution(name)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False


def adapter_files(model: Model) -> list[str]:
    """Adapter blob paths in the order the MLX loader links them: an mlx-lm LoRA adapter's
    weights (`adapters.safetensors`) first, then its `adapter_config.json`; a GGUF adapter alone."""
    layers = model.manifest.layers_of(ADAPTER_MEDIA_TYPE)
    ordered = sorted(layers, key=lambda x: (not (x.name or "").endswith(".safetensors"), x.name or ""))
    return [str(model.blobs.path(x.digest)) for x in ordered]


def model_spec(model: Model) -> ModelSpec:
    name = model.name.display_shortest()
    adapters = adapter_files(model)
    if model.format == "gguf":
        path = model.gguf_path
        return ModelSpec(format="gguf", gguf_path=str(path) if path else None, adapters=adapters, name=name)
    return ModelSpec(format="safetensors", tensors=model.tensor_paths(), files=model.json_layer_paths(),
                     adapters=adapters, name=name)


def load_request(model: Model, opts: dict[str, Any], *, embedding: bool = False) -> LoadRequest:
    engine = choose_engine(model)
    parallel = 1 if embedding else config.num_parallel()
    lt = load_time_options(opts)
    return LoadRequest(
        key=model.digest,
        name=model.name.display_shortest(),
        engine=engine,
        spec=model_spec(model),
        num_ctx=int(opts.get("num_ctx") or 0),
        parallel=parallel,
        load_options=tuple(sorted((k, repr(v)) for k, v in lt.items())),
        extra={"model": model},
        memory=estimate_bytes(model, int(opts.get("num_ctx") or 0)),
    )
