"""What the engine-level GPU probes share: an MLX model directory loaded with mlx-lm, and a started
MLXEngine on it (no server, no runner process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_model(model_dir: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, config.json) of an MLX model directory."""
    from mlx_lm import load

    model, tok = load(model_dir)
    return model, tok, json.loads((Path(model_dir) / "config.json").read_text())


def start_engine(model: Any, tok: Any, config: dict[str, Any], *, num_ctx: int, parallel: int) -> Any:
    from ollmlx.runner.engines.mlx.engine import MLXEngine
    from ollmlx.runner.engines.mlx.loader import LoadedModel

    engine = MLXEngine(LoadedModel(model, tok, config, 8192, None), num_ctx=num_ctx, parallel=parallel)
    engine.start()
    return engine
