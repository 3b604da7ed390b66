"""Images end to end (spec §12): base64 `images` on /api/chat and /api/generate reach a vision
model run by mlx-vlm in a real runner. The model is a tiny random-weight Qwen2-VL built in the
test and imported with `ollmlx create` from its directory; the image shows in the prompt token
count and changes the greedy output. Models without vision get the errors Ollama's runners give."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from tiny_vlm import IMAGE_TEXT, build_tiny_qwen2_vl, png_b64

from helpers import Server

pytestmark = pytest.mark.slow

RED, BLUE = png_b64((255, 0, 0)), png_b64((0, 0, 255))
OPTS = {"temperature": 0, "num_predict": 6}
GO_TEMPLATE = "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def vlm(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("vlm")
    model_dir = build_tiny_qwen2_vl(tmp / "tiny-qwen2-vl")
    mf = tmp / "Modelfile"
    mf.write_text(f"FROM {model_dir}\n")
    r = server.cli("create", "tiny-vlm:latest", "-f", str(mf))
    assert r.returncode == 0, r.stderr
    mf2 = tmp / "Modelfile.go"  # the same weights under a Go TEMPLATE: [img-N] tags in the prompt
    mf2.write_text(f'FROM tiny-vlm:latest\nTEMPLATE """{GO_TEMPLATE}"""\n')
    r = server.cli("create", "tiny-vlm-go:latest", "-f", str(mf2))
    assert r.returncode == 0, r.stderr
    yield "tiny-vlm"
    for name in ("tiny-vlm", "tiny-vlm-go"):  # other modules share the session server: unload ours
        httpx.post(server.url + "/api/generate", json={"model": name, "keep_alive": 0}, timeout=60)


def _post(server: Server, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + route, json=body, timeout=300)


def _chat(server: Server, model: str, images: list[str] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "user", "content": "What is in the picture?"}
    if images:
        msg["images"] = images
    r = _post(server, "/api/chat", {"model": model, "messages": [msg], "stream": False, "options": OPTS})
    assert r.status_code == 200, r.text
    return r.json()


def test_vision_capability(server: Server, vlm: str) -> None:
    show = _post(server, "/api/show", {"model": vlm}).json()
    assert show["capabilities"] == ["completion", "vision"]
    tags = {m["name"]: m.get("capabilities") for m in httpx.get(server.url + "/api/tags").json()["models"]}
    assert tags["tiny-vlm:latest"] == ["completion", "vision"]


def test_chat_image_reaches_the_model(server: Server, vlm: str) -> None:
    plain = _chat(server, vlm)
    red = _chat(server, vlm, [RED])
    blue = _chat(server, vlm, [BLUE])
    assert red["prompt_eval_count"] > plain["prompt_eval_count"] + 3  # the image's tokens
    assert red["prompt_eval_count"] == blue["prompt_eval_count"]
    assert red["message"]["content"] != blue["message"]["content"]  # greedy output depends on the image
    assert red["eval_count"] == 6 and red["done_reason"] == "length"
    two = _chat(server, vlm, [RED, BLUE])
    assert two["prompt_eval_count"] > red["prompt_eval_count"] + 3


def test_chat_template_gets_image_parts(server: Server, vlm: str) -> None:
    body = {"model": vlm, "messages": [{"role": "user", "content": "hi", "images": [RED, BLUE]}],
            "_debug_render_only": True}
    info = _post(server, "/api/chat", body).json()["_debug_info"]
    assert info["image_count"] == 2
    assert info["rendered_template"] == f"<|im_start|>user\n{IMAGE_TEXT}{IMAGE_TEXT}hi<|im_end|>\n<|im_start|>assistant\n"


def test_go_template_img_tags(server: Server, vlm: str) -> None:
    body = {"model": "tiny-vlm-go", "messages": [{"role": "user", "content": "look [img] here", "images": [RED]}],
            "_debug_render_only": True}
    text = _post(server, "/api/chat", body).json()["_debug_info"]["rendered_template"]
    assert text == "<|im_start|>user\nlook [img-0] here<|im_end|>\n<|im_start|>assistant\n"
    plain = _chat(server, "tiny-vlm-go")
    red = _chat(server, "tiny-vlm-go", [RED])
    assert red["prompt_eval_count"] > plain["prompt_eval_count"] + 3


def test_generate_with_images_and_client(server: Server, vlm: str) -> None:
    base = {"model": vlm, "prompt": "Describe it.", "stream": False, "options": OPTS}
    plain = _post(server, "/api/generate", base).json()
    red = _post(server, "/api/generate", {**base, "images": [RED]}).json()
    assert red["prompt_eval_count"] > plain["prompt_eval_count"] + 3
    assert red["context"] and len(red["context"]) > len(plain["context"])
    client = ollama.Client(host=server.url)
    resp = client.generate(model=vlm, prompt="Describe it.", images=[RED], options=OPTS)
    assert resp.response == red["response"]
    raw = _post(server, "/api/generate", {**base, "raw": True, "prompt": "Describe it.", "images": [RED]}).json()
    assert raw["done"] is True  # no [img-N] in a raw prompt: the image is not used, as in Ollama


def test_streamed_chat_with_image(server: Server, vlm: str) -> None:
    body = {"model": vlm, "messages": [{"role": "user", "content": "What?", "images": [RED]}], "options": OPTS}
    with httpx.stream("POST", server.url + "/api/chat", json=body, timeout=300) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.status_code == 200 and len(lines) >= 2
    assert '"done":true' in lines[-1]


def test_bad_image_data(server: Server, vlm: str) -> None:
    r = _post(server, "/api/chat", {"model": vlm, "stream": False, "options": OPTS,
                                    "messages": [{"role": "user", "content": "x", "images": [png_b64((1, 2, 3))[:40]]}]})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid image input")


def test_images_on_a_model_without_vision(server: Server, tmp_path: Path) -> None:
    # no capability check in the server: the runner refuses, with the message llama-server gives
    r = _post(server, "/api/chat", {"model": "smollm2:135m", "stream": False,
                                    "messages": [{"role": "user", "content": "x", "images": [RED]}]})
    assert r.status_code == 400
    assert r.json() == {"error": "image input is not supported - hint: if this is unexpected, you may need to "
                                 "provide the mmproj"}
    dbg = _post(server, "/api/generate", {"model": "smollm2:135m", "prompt": "x", "images": [RED],
                                          "_debug_render_only": True}).json()
    assert dbg["_debug_info"]["image_count"] == 1 and "[img-0]x" in dbg["_debug_info"]["rendered_template"]
