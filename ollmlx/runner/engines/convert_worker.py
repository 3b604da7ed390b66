"""One-shot conversion worker (a subprocess of `create`, so the server never imports an engine).

    python -m ollmlx.runner.engines.convert_worker gguf-to-mlx  --src FILE.gguf --out DIR [--bits 4]
    python -m ollmlx.runner.engines.convert_worker quantize-mlx --spec SPEC.json --out DIR --bits 4|8
    python -m ollmlx.runner.engines.convert_worker quantize-gguf --src FILE.gguf --out FILE.gguf --type Q4_K_M

Progress goes to stdout as JSON lines `{"status", "completed", "total"}`; failure is a line
`{"error": ...}` and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


def emit(**obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def gguf_to_mlx(src: Path, out: Path, bits: int) -> None:
    from ollmlx.runner.engines.mlx.convert import convert_gguf

    emit(status="converting model")
    convert_gguf(src, out, bits=bits)


def quant_policy(path: str, module: Any, bits: int) -> bool | dict[str, int]:
    """Ollama's import policy (x/create GetTensorQuantization): embeddings and norms stay at
    source precision; with 4 bits, k/v/down projections and the output head get 8 bits."""
    if not hasattr(module, "to_quantized") or "embed" in path or "norm" in path:
        return False
    if module.weight.ndim != 2 or module.weight.size < 1024 or module.weight.shape[-1] % 64:
        return False
    if bits == 4 and (path.endswith("lm_head") or any(k in path for k in (".k_proj", ".v_proj", "down_proj"))):
        return {"group_size": 64, "bits": 8}
    return {"group_size": 64, "bits": bits}


def quantize_mlx(spec_path: Path, out: Path, bits: int) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from ollmlx.runner.engines.mlx.loader import load
    from ollmlx.runner.protocol import ModelSpec

    spec = ModelSpec.model_validate_json(spec_path.read_text())
    loaded = load(spec)
    model = loaded.model
    if any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules()):
        raise ValueError("quantization is only supported for F16, BF16 and F32 models")
    emit(status=f"quantizing model to {bits}-bit", completed=0, total=1)
    nn.quantize(model, group_size=64, bits=bits, class_predicate=lambda path, m: quant_policy(path, m, bits))
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    config = dict(loaded.config)
    config["quantization"] = {"group_size": 64, "bits": bits}
    config["quantization_config"] = config["quantization"]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name, blob in spec.files.items():
        if name != "config.json" and not name.endswith(".safetensors"):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(blob).read_bytes())
    emit(status=f"quantizing model to {bits}-bit", completed=1, total=1)


def quantize_gguf(src: Path, out: Path, qtype: str) -> None:
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        raise ValueError(f"unsupported quantization type {qtype}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    total = src.stat().st_size
    done = threading.Event()

    def progress() -> None:  # llama.cpp gives no callback: report the output file's growth
        while not done.wait(0.5):
            size = out.stat().st_size if out.exists() else 0
            emit(status="quantizing", completed=min(size, total), total=total)

    t = threading.Thread(target=progress, daemon=True)
    t.start()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), params)
    done.set()
    if rc != 0:
        raise ValueError(f"llama.cpp could not quantize the model (code {rc})")
    emit(status="quantizing", completed=total, total=total)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=["gguf-to-mlx", "quantize-mlx", "quantize-gguf"])
    p.add_argument("--src")
    p.add_argument("--spec")
    p.add_argument("--out", required=True)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--type", default="Q4_K_M")
    a = p.parse_args()
    t0 = time.monotonic()
    try:
        if a.task == "gguf-to-mlx":
            gguf_to_mlx(Path(a.src), Path(a.out), a.bits)
        elif a.task == "quantize-mlx":
            quantize_mlx(Path(a.spec), Path(a.out), a.bits)
        else:
            quantize_gguf(Path(a.src), Path(a.out), a.type)
    except Exception as exc:
        emit(error=str(exc) or type(exc).__name__)
        return 1
    emit(status="done", seconds=round(time.monotonic() - t0, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
