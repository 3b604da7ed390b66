"""Chat template autodetection on create (spec §6, §13; ollmlx/store/template_detect.py): Ollama's
template library shipped with ollmlx, matched by Levenshtein distance < 100, first best wins."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import REPO, smollm2_gguf
from ollmlx.store.gguf_info import read_gguf
from ollmlx.store.template_detect import MAX_DISTANCE, detect, library

VENDORED = REPO / "tests" / "data" / "ollama-templates"


def test_library_is_ollamas() -> None:
    index = json.loads((VENDORED / "index.json").read_text())
    assert [t.name for t in library()] == [e["name"] for e in index]
    for t in library():
        assert t.text == (VENDORED / f"{t.name}.gotmpl").read_text().replace("\r\n", "\n")
        params = json.loads((VENDORED / f"{t.name}.json").read_text())
        assert t.parameters == {"stop": params.get("stop")}


def test_every_library_template_detects_itself() -> None:
    for t in library():
        found = detect(t.jinja)
        assert found is not None and found.jinja == t.jinja


def test_threshold_and_ties() -> None:
    chatml = next(t for t in library() if t.name == "chatml")
    near = chatml.jinja + "x" * (MAX_DISTANCE - 1)
    far = chatml.jinja + "x" * MAX_DISTANCE
    assert detect(near) is not None and detect(near).name == "chatml"  # type: ignore[union-attr]
    assert detect(far) is None
    assert detect("") is None and detect("{{ messages }}") is None
    # index.json lists chatml first among equals: the first best match wins
    first = next(t for t in library() if t.jinja == chatml.jinja)
    assert detect(chatml.jinja) is first


def test_smollm2_is_chatml() -> None:
    template = read_gguf(Path(smollm2_gguf())).chat_template
    assert template is not None
    found = detect(template)
    assert found is not None and found.name == "chatml"
    assert found.parameters == {"stop": ["<|im_start|>", "<|im_end|>"]}
