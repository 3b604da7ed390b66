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
    """mlx where it runs on a GPU (Metal on macOS arm64, a CUDA build with an NVIDIA driver);
    elsewhere llama.cpp, measured 3-11x faster than mlx on CPU (docs/supported-models.md).
    Decided from package metadata and the platform: the server never imports an engine."""
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mlx"
    if os.environ.get("OLLMLX_MLX_DEVICE") == "gpu" or (_installed("mlx-cuda-12", "mlx-cuda-13")
                                                          and Path("/proc/driver/nvidia/version").exists()):
        return "mlx"
    return "llamacpp" if importlib.util.find_spec("llama_cpp") is not None else "mlx"


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
    )
