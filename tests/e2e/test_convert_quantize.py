"""`create` conversions (spec §6 quantize; the llama.cpp/convert issue's `--convert mlx`): a GGUF
stored as an MLX model answers like the GGUF; an F16 MLX model re-quantized to 4 and 8 bits."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from helpers import Server, smollm2_gguf


def gen(server: Server, model: str, prompt: str = "What is the capital of France? Answer briefly.") -> dict:
    r = httpx.post(server.url + "/api/generate", timeout=600, json={
        "model": model, "prompt": prompt, "stream": False, "keep_alive": 0,
        "options": {"temperature": 0, "num_predict": 16}})
    assert r.status_code == 200, r.text
    return dict(r.json())


def create(server: Server, body: dict) -> list[dict]:
    lines = []
    with httpx.stream("POST", server.url + "/api/create", json=body, timeout=900) as r:
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
    return lines


@pytest.mark.slow
def test_convert_gguf_to_mlx(server: Server) -> None:
    events = create(server, {"model": "smol-converted", "from": "smollm2:135m", "convert": "mlx"})
    assert events[-1] == {"status": "success"}, events[-3:]
    assert any(e.get("status") == "converting model" for e in events)
    show = httpx.post(server.url + "/api/show", json={"model": "smol-converted"}).json()
    assert show["details"]["format"] == "safetensors" and show["details"]["family"] == "llama"
    a, b = gen(server, "smollm2:135m"), gen(server, "smol-converted")
    assert a["response"] == b["response"] and "Paris" in b["response"]
    httpx.request("DELETE", server.url + "/api/delete", json={"model": "smol-converted"})


@pytest.fixture(scope="module")
def f16_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from ollmlx.runner.engines.mlx.build import dequantize_for_cpu
    from ollmlx.runner.engines.mlx.convert import convert_gguf

    out = tmp_path_factory.mktemp("smol-f16")
    convert_gguf(smollm2_gguf(), out)
    from mlx_lm import load

    model, _ = load(str(out))
    dequantize_for_cpu(model, mx.float16)
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())))
    cfg = json.loads((out / "config.json").read_text())
    for key in ("quantization", "quantization_config"):
        cfg.pop(key, None)
    cfg["torch_dtype"] = "float16"
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.mark.slow
def test_quantize_mlx_model(server: Server, f16_dir: Path, tmp_path: Path) -> None:
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {f16_dir}\n")
    assert server.cli("create", "smol-f16", "-f", str(mf)).returncode == 0
    tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
    assert tags["smol-f16:latest"]["details"]["quantization_level"] == "F16"
    for q, label in (("q4_K_M", "int4"), ("q8_0", "int8")):
        events = create(server, {"model": f"smol-{q}", "from": "smol-f16", "quantize": q})
        assert events[-1] == {"status": "success"}, events[-3:]
        assert any(e.get("status", "").startswith("quantizing F16 model to") for e in events)
        tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
        assert tags[f"smol-{q}:latest"]["details"]["quantization_level"] == label
        assert tags[f"smol-{q}:latest"]["size"] < tags["smol-f16:latest"]["size"]
        assert "Paris" in gen(server, f"smol-{q}")["response"]
    # an already-quantized model cannot be quantized again (spec §6)
    r = httpx.post(server.url + "/api/create", json={"model": "x", "from": "smollm2:135m", "quantize": "q4_K_M",
                                                      "stream": False}, timeout=60)
    assert r.status_code == 400 and r.json()["error"] == "quantization is only supported for F16, BF16 and F32 models"
    for name in ("smol-f16", "smol-q4_K_M", "smol-q8_0"):
        httpx.request("DELETE", server.url + "/api/delete", json={"model": name})
