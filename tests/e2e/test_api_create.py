"""POST /api/create against a live server (spec §6 create, §13 template library, §14 Modelfile):
progress statuses with the autodetected template, every request field (from, files, adapters as an
mlx-lm LoRA adapter, template, system, license string|list, parameters, messages, renderer, parser,
requires), how they layer over the base model, stream:false, and the exact errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, running_server, smollm2_gguf

MODEL = "smollm2:135m"
CHATML = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"


def create_events(server: Server, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    with httpx.stream("POST", server.url + "/api/create", json=body, timeout=900) as r:
        return r.status_code, [json.loads(x) for x in r.iter_lines() if x]


def create(server: Server, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/api/create", json={"stream": False, **body}, timeout=900)


def show(server: Server, name: str) -> dict[str, Any]:
    r = httpx.post(server.url + "/api/show", json={"model": name}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def delete(server: Server, *names: str) -> None:
    for name in names:
        httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=60)


def upload(server: Server, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(server.url + "/api/blobs/" + digest, content=data, timeout=300)
    assert r.status_code in (200, 201), r.text
    return digest


def gguf_digest() -> str:
    h = hashlib.sha256()
    with open(smollm2_gguf(), "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_create_from_a_gguf_autodetects_the_template(server: Server) -> None:
    """§6, §13: Ollama matches the GGUF's tokenizer.chat_template against its template library
    (Levenshtein distance < 100): SmolLM2's is chatml, stored as the TEMPLATE with its stop
    strings, and the progress says `using autodetected template chatml`."""
    digest = gguf_digest()
    if httpx.head(server.url + "/api/blobs/" + digest).status_code != 200:
        upload(server, smollm2_gguf().read_bytes())
    status, events = create_events(server, {"model": "smol-files", "files": {"SmolLM2.gguf": digest}})
    try:
        assert status == 200
        statuses = [e["status"] for e in events]
        assert statuses[:3] == ["parsing GGUF", f"using existing layer {digest}", "using autodetected template chatml"]
        assert statuses[-2:] == ["writing manifest", "success"]
        assert all(set(e) == {"status"} for e in events)
        shown = show(server, "smol-files")
        assert shown["template"] == CHATML
        assert shown["parameters"] == 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"'
        # a TEMPLATE of the request replaces the detected one (no detection status); the stop strings stay
        status, events = create_events(server, {"model": "smol-files2", "files": {"SmolLM2.gguf": digest},
                                                "template": "{{ .Prompt }}"})
        assert "using autodetected template chatml" not in [e["status"] for e in events]
        shown = show(server, "smol-files2")
        assert shown["template"] == "{{ .Prompt }}" and "<|im_end|>" in shown["parameters"]
    finally:
        delete(server, "smol-files", "smol-files2")


def test_fields_layer_over_the_base_model(server: Server) -> None:
    """§6 create semantics: `parameters` merge over the base's params layer (request keys win);
    template, system and messages replace the base's; licenses (string or list) are appended;
    renderer/parser/requires are stored in the config and shown."""
    r = create(server, model="smol-base1", **{"from": MODEL}, license="License A", system="Base system.",
               parameters={"temperature": 0.5, "top_k": 10},
               messages=[{"role": "user", "content": "base q"}, {"role": "assistant", "content": "base a"}])
    assert r.json() == {"status": "success"}, r.text
    try:
        r = create(server, model="smol-derived", **{"from": "smol-base1"}, license=["License B", "License C"],
                   system="Derived system.", template="{{ .System }}: {{ .Prompt }}",
                   parameters={"temperature": 0.1, "stop": ["###"]}, renderer="none-renderer", parser="none-parser",
                   requires="0.14.0", messages=[{"role": "user", "content": "new q"}])
        assert r.json() == {"status": "success"}, r.text
        s = show(server, "smol-derived")
        assert s["license"] == "License A\nLicense B\nLicense C"
        assert s["system"] == "Derived system." and s["template"] == "{{ .System }}: {{ .Prompt }}"
        assert s["messages"] == [{"role": "user", "content": "new q"}]
        assert s["parameters"].splitlines() == [
            'stop                           "###"', 'temperature                    0.1', 'top_k                          10']
        assert (s["renderer"], s["parser"], s["requires"]) == ("none-renderer", "none-parser", "0.14.0")
        assert s["details"]["parent_model"] == "smol-base1:latest"  # layers record the model they came from
        assert "RENDERER none-renderer\nPARSER none-parser\n" in s["modelfile"]
        # nothing given: the base's layers are kept as they are
        r = create(server, model="smol-same", **{"from": "smol-base1"})
        assert r.json() == {"status": "success"}
        same = show(server, "smol-same")
        assert same["system"] == "Base system." and same["license"] == "License A"
        assert same["messages"] == [{"role": "user", "content": "base q"}, {"role": "assistant", "content": "base a"}]
    finally:
        delete(server, "smol-base1", "smol-derived", "smol-same")


def test_stream_false_and_statuses(server: Server) -> None:
    """§6: stream:false answers only the last status; a streamed create reports each layer."""
    status, events = create_events(server, {"model": "smol-st", "from": MODEL, "system": "A new system prompt 71"})
    try:
        assert status == 200
        statuses = [e["status"] for e in events]
        assert any(s.startswith("creating new layer sha256:") for s in statuses)
        assert any(s.startswith("using existing layer sha256:") for s in statuses)
        assert statuses[-2:] == ["writing manifest", "success"]
        r = create(server, model="smol-st", **{"from": MODEL}, system="A new system prompt 71")
        assert (r.status_code, r.json()) == (200, {"status": "success"})
        assert r.headers["content-type"] == "application/json; charset=utf-8"
    finally:
        delete(server, "smol-st")


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "x"}, "neither 'from' or 'files' was specified"),
    ({"model": "x", "files": {}}, "unknown type"),
    ({"model": "bad name!", "from": MODEL}, "invalid model name"),
    ({"model": "", "from": MODEL}, "invalid model name"),
    ({"model": "x", "from": "bad name!"}, "invalid model name"),
    ({"model": "x", "files": {"../up.gguf": "sha256:" + "0" * 64}}, "file path must be relative"),
    ({"model": "x", "files": {"/abs.gguf": "sha256:" + "0" * 64}}, "file path must be relative"),
    ({"model": "x", "files": {"m.gguf": ""}}, "invalid digest format"),
    ({"model": "x", "adapters": {"a.gguf": ""}, "from": MODEL}, "invalid digest format"),
    ({"model": "x", "from": MODEL, "template": "{{ .Prompt"}, "template error: template: :1: unclosed action"),
    ({"model": "x", "from": MODEL, "quantize": "q4_K_M"}, "quantization is only supported for F16, BF16 and F32 models"),
    ({"model": "x", "from": MODEL, "draft_quantize": "q8_0"}, "--draft-quantize requires a DRAFT model"),
    ({"model": "x", "from": MODEL, "draft_files": {"d.gguf": ""}}, "invalid digest format"),
])
def test_create_errors(server: Server, body: dict[str, Any], message: str) -> None:
    """§6, §19: each is a 400, as a plain error both streaming and with stream:false."""
    for stream in (True, False):
        r = httpx.post(server.url + "/api/create", json={**body, "stream": stream}, timeout=300)
        assert (r.status_code, r.json()) == (400, {"error": message}), (stream, r.text)


def test_files_that_are_not_a_model(server: Server) -> None:
    """§6: a file that is no GGUF, and a directory without weights, are 400s."""
    junk = upload(server, b"definitely not a gguf file " * 10)
    r = create(server, model="x", files={"model.gguf": junk})
    assert (r.status_code, r.json()) == (400, {"error": "supplied file was not in GGUF format"})
    cfg = upload(server, b'{"model_type": "llama"}')
    r = create(server, model="x", files={"config.json": cfg})
    assert (r.status_code, r.json()) == (400, {"error": "unknown type"})


def test_recreating_prunes_the_replaced_layers_unless_noprune(server: Server, tmp_path: Path) -> None:
    """§6 create, §22 OLLAMA_NOPRUNE: a create over an existing name removes the old manifest's
    layers that nothing uses any more."""
    def system_blob(name: str) -> Path:
        doc = json.loads((server.models / "manifests/registry.ollama.ai/library" / name / "latest").read_text())
        digest = next(x["digest"] for x in doc["layers"] if x["mediaType"].endswith(".system"))
        return server.models / "blobs" / digest.replace(":", "-")

    try:
        assert create(server, model="smol-re", **{"from": MODEL}, system="first system 8d1").status_code == 200
        first = system_blob("smol-re")
        assert create(server, model="smol-re", **{"from": MODEL}, system="second system 8d1").status_code == 200
        assert not first.exists() and system_blob("smol-re").exists()
        with running_server(tmp_path, {"OLLAMA_NOPRUNE": "true"}, models=server.models) as keep:
            second = system_blob("smol-re")
            r = httpx.post(keep.url + "/api/create", timeout=300,
                           json={"model": "smol-re", "from": MODEL, "system": "third system 8d1", "stream": False})
            assert r.status_code == 200 and second.exists()
    finally:
        delete(server, "smol-re")


@pytest.mark.slow
def test_lora_adapter_end_to_end(server: Server, tmp_path: Path) -> None:
    """§6 `adapters`: an mlx-lm LoRA adapter (adapters.safetensors + adapter_config.json, built
    here) on SmolLM2 runs on the MLX engine: a zero adapter answers like the base model on MLX, a
    strong one changes the answer."""
    import mlx.core as mx

    layers, rank, dim = 4, 4, 576
    config = {"fine_tune_type": "lora", "num_layers": layers,
              "lora_parameters": {"rank": rank, "scale": 20.0, "dropout": 0.0,
                                  "keys": ["self_attn.v_proj", "self_attn.o_proj"]}}

    def adapter(strength: float) -> dict[str, str]:
        mx.random.seed(7)
        weights = {}
        for i in range(30 - layers, 30):
            for key in ("v_proj", "o_proj"):
                out = 192 if key == "v_proj" else dim
                weights[f"model.layers.{i}.self_attn.{key}.lora_a"] = mx.random.normal((dim, rank)) * 0.5
                weights[f"model.layers.{i}.self_attn.{key}.lora_b"] = mx.random.normal((rank, out)) * strength
        path = tmp_path / f"adapters-{strength}.safetensors"
        mx.save_safetensors(str(path), weights)
        return {"adapters.safetensors": upload(server, path.read_bytes()),
                "adapter_config.json": upload(server, json.dumps(config).encode())}

    names = ["smol-on-mlx", "smol-lora-zero", "smol-lora"]
    try:
        assert create(server, model=names[0], **{"from": MODEL}, parameters={"engine": "mlx"}).status_code == 200
        assert create(server, model=names[1], **{"from": MODEL}, adapters=adapter(0.0)).status_code == 200
        r = create(server, model=names[2], **{"from": MODEL}, adapters=adapter(0.5))
        assert r.json() == {"status": "success"}, r.text
        assert "ADAPTER " in show(server, names[2])["modelfile"]

        def answer(name: str) -> str:
            r = httpx.post(server.url + "/api/generate", timeout=900, json={
                "model": name, "prompt": "What is the capital of France?", "stream": False, "keep_alive": 0,
                "options": {"temperature": 0, "num_predict": 8}})
            assert r.status_code == 200, r.text
            return str(r.json()["response"])

        base, zero, strong = (answer(n) for n in names)
        assert zero == base and strong != base
        ps = httpx.get(server.url + "/api/ps").json()["models"]
        assert not [m for m in ps if m["name"].startswith("smol-lora")]
    finally:
        delete(server, *names)


def test_modelfile_instructions_through_the_cli(server: Server, tmp_path: Path) -> None:
    """§14: every instruction (case-insensitive, comments, a UTF-8 BOM, bare / "…" / \"\"\"…\"\"\"
    values, repeated PARAMETER stop and LICENSE) through `ollmlx create`, read back by /api/show."""
    mf = tmp_path / "Modelfile"
    mf.write_bytes(("\ufeff# a comment\n"
                    f"from {smollm2_gguf()}\n"
                    "PARAMETER temperature 0.3\nparameter stop \"<|im_end|>\"\nPARAMETER stop END\n"
                    'TEMPLATE """{{ .System }}\n{{ .Prompt }}"""\n'
                    'System "Be brief."\n'
                    "LICENSE MIT\nLICENSE \"\"\"Second\nlicense\"\"\"\n"
                    "MESSAGE user Hi there\nMESSAGE assistant Hello!\n"
                    "REQUIRES 0.14\nRENDERER none-renderer\nPARSER none-parser\n").encode())
    r = server.cli("create", "smol-mf", "-f", str(mf))
    try:
        assert r.returncode == 0, r.stderr
        s = show(server, "smol-mf")
        assert s["template"] == "{{ .System }}\n{{ .Prompt }}" and s["system"] == "Be brief."
        assert s["license"] == "MIT\nSecond\nlicense"
        assert s["messages"] == [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
        assert s["parameters"].splitlines() == ['stop                           "<|im_end|>"',
                                                'stop                           "END"',
                                                'temperature                    0.3']
        assert (s["renderer"], s["parser"], s["requires"]) == ("none-renderer", "none-parser", "0.14")
        # parser.go quote: a value with a newline (and no `"`) is wrapped in "…"
        assert 'TEMPLATE "{{ .System }}\n{{ .Prompt }}"\nSYSTEM Be brief.\nRENDERER none-renderer\n' in s["modelfile"]
        assert 'LICENSE MIT\nLICENSE "Second\nlicense"\nMESSAGE user Hi there\n' in s["modelfile"]
    finally:
        delete(server, "smol-mf")


@pytest.mark.parametrize(("text", "error"), [
    ("SYSTEM hi\n", "Error: no FROM line"),
    ("FROM smollm2:135m\nMESSAGE robot hi\n",
     'Error: (line 2): message role must be one of "system", "user", or "assistant"'),
    ("FROM smollm2:135m\nREQUIRES latest\n", "Error: requires must be a valid semver (e.g. 0.14.0)"),
    ("FROM smollm2:135m\nFOO bar\n",
     'Error: (line 2): command must be one of "from", "license", "template", "system", "adapter", "draft", '
     '"renderer", "parser", "parameter", "message", or "requires"'),
    ("FROM smollm2:135m\nPARAMETER nonsense 1\n", "Error: unknown parameter 'nonsense'"),
    ("FROM smollm2:135m\nPARAMETER temperature hot\n", "Error: invalid float value [hot]"),
    ("FROM smollm2:135m\nPARAMETER num_ctx 1.5\n", "Error: invalid int value [1.5]"),
    ("FROM smollm2:135m\nTEMPLATE {{ .Prompt\n", "Error: template error: template: :1: unclosed action"),
])
def test_modelfile_errors_through_the_cli(server: Server, tmp_path: Path, text: str, error: str) -> None:
    """§7, §14: the parser's and the server's errors, as `ollmlx create` prints them."""
    mf = tmp_path / "Modelfile"
    mf.write_text(text)
    r = server.cli("create", "smol-bad", "-f", str(mf))
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == error, r.stderr
    assert httpx.post(server.url + "/api/show", json={"model": "smol-bad"}).status_code == 404
