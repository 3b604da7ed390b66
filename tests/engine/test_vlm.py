"""The MLX vision engine (spec §12) on a tiny random-weight Qwen2-VL built with mlx-vlm: images
reach the model (prompt tokens grow, greedy output changes), [img-N] tags take the model's image
text, and sampling options, stops and errors behave as on the text engine."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from tiny_vlm import IMAGE_TEXT, build_tiny_qwen2_vl, png_b64

from ollmlx.runner.engine_api import EngineError
from ollmlx.runner.engines.mlx.vision import VisionEngine, is_vision_spec, load_vision, place_images
from ollmlx.runner.protocol import CompletionRequest, ModelSpec, SamplingOptions

RED, BLUE = png_b64((255, 0, 0)), png_b64((0, 0, 255))
CHAT = "<|im_start|>user\n{img}What is in the picture?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    d = build_tiny_qwen2_vl(tmp_path_factory.mktemp("vlm") / "tiny-qwen2-vl")
    files = {p.name: str(p) for p in d.iterdir() if not p.name.endswith(".safetensors")}
    return ModelSpec(format="safetensors", tensors=[str(d / "model.safetensors")], files=files, name="tiny-vlm")


@pytest.fixture(scope="module")
def engine(spec: ModelSpec) -> Any:
    eng = VisionEngine(load_vision(spec), num_ctx=2048)
    eng.start()
    yield eng
    eng.stop()


def run(engine: VisionEngine, prompt: str, images: list[str] | None = None, fmt: Any = None, logprobs: int = 0,
        **opts: Any) -> tuple[str, dict[str, Any]]:
    done = threading.Event()
    chunks: list[dict[str, Any]] = []

    def emit(c: dict[str, Any]) -> None:
        chunks.append(c)
        if c.get("done") or "error" in c:
            done.set()

    options = SamplingOptions(**{"temperature": 0.0, "num_predict": 8, **opts})
    engine.submit(CompletionRequest(prompt=prompt, images=images or [], options=options, return_tokens=True,
                                    format=fmt, logprobs=logprobs > 0, top_logprobs=logprobs), emit)
    assert done.wait(120), chunks
    final = dict(chunks[-1])
    final["logprobs"] = [lp for c in chunks for lp in c.get("logprobs") or []]
    return "".join(c.get("content", "") for c in chunks), final


def test_detects_vision_and_image_text(spec: ModelSpec, engine: VisionEngine) -> None:
    assert is_vision_spec(spec)
    assert engine.loaded.image_text == IMAGE_TEXT  # from the model's chat template


def test_image_reaches_the_model(engine: VisionEngine) -> None:
    text_only, plain = run(engine, CHAT.format(img=""))
    red, with_red = run(engine, CHAT.format(img=IMAGE_TEXT), [RED])
    blue, with_blue = run(engine, CHAT.format(img=IMAGE_TEXT), [BLUE])
    assert with_red["prompt_eval_count"] > plain["prompt_eval_count"] + 3  # the image's tokens
    assert with_red["prompt_eval_count"] == with_blue["prompt_eval_count"]
    assert red != blue  # greedy output depends on the picture
    assert with_red["done_reason"] == "length" and with_red["eval_count"] == 8
    assert len(with_red["tokens"]) == len(engine.tokenize(CHAT.format(img=IMAGE_TEXT))) + 8  # generate's context
    assert text_only == run(engine, CHAT.format(img=""))[0]  # deterministic


def test_img_tags_take_the_image_text(engine: VisionEngine) -> None:
    tagged, final = run(engine, CHAT.format(img="[img-0]"), [RED])
    native, native_final = run(engine, CHAT.format(img=IMAGE_TEXT), [RED])
    assert (tagged, final["prompt_eval_count"]) == (native, native_final["prompt_eval_count"])


def test_place_images() -> None:
    assert place_images("a [img-1] b [img-0]", ["A", "B"], "<i>") == ("a <i> b <i>", ["B", "A"])
    assert place_images("raw text", ["A"], "<i>") == ("raw text", [])  # unreferenced: ignored
    assert place_images("x <i> y", ["A"], "<i>") == ("x <i> y", ["A"])
    assert place_images("[img-3]", ["A"], "<i>") == ("[img-3]", [])


def test_stop_and_invalid_image(engine: VisionEngine) -> None:
    out, _ = run(engine, CHAT.format(img=IMAGE_TEXT), [RED], num_predict=12)
    stop = out[2:4]
    cut, final = run(engine, CHAT.format(img=IMAGE_TEXT), [RED], num_predict=12, stop=[stop])
    assert stop not in cut and out.startswith(cut) and final["done_reason"] == "stop"
    _, err = run(engine, CHAT.format(img=IMAGE_TEXT), ["not base64!"])
    assert err["status"] == 400 and err["error"].startswith("invalid image input")


def test_format_and_logprobs(engine: VisionEngine) -> None:
    out, _ = run(engine, CHAT.format(img=IMAGE_TEXT), [RED], fmt="json", num_predict=6)
    assert out.lstrip().startswith("{")  # constrained to JSON from the first token
    out, final = run(engine, CHAT.format(img=IMAGE_TEXT), [RED], logprobs=2, num_predict=4)
    assert len(final["logprobs"]) == 4 and all(len(lp["top_logprobs"]) == 2 for lp in final["logprobs"])
    for lp in final["logprobs"]:  # the drawn token is the top one under greedy decoding
        assert lp["logprob"] <= 0 and lp["top_logprobs"][0]["logprob"] == pytest.approx(lp["logprob"])


def test_text_engine_refuses_images() -> None:
    from helpers import smollm2_gguf
    from ollmlx.runner.engines.mlx.runner_engine import MLXRunnerEngine

    eng = MLXRunnerEngine(ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smollm2"), 256, 1)
    try:
        with pytest.raises(EngineError, match=r"^this model does not support image input$"):
            eng.submit(CompletionRequest(prompt="hi", images=[RED]), lambda c: None)
    finally:
        assert eng.engine is not None
        eng.engine.stop()
