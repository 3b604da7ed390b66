"""Chat template autodetection on create (spec §6 create, §13; Ollama's template.Named and
server/model.go detectChatTemplate).

A GGUF model's `tokenizer.chat_template` (Jinja) is compared with every Jinja template of the
library's `index.json` by Levenshtein distance over code points; the first closest one wins if its
distance is under 100. Its Go template becomes the model's TEMPLATE layer and its `stop` strings a
params layer, and create reports `using autodetected template <name>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from rapidfuzz.distance import Levenshtein

MAX_DISTANCE = 100  # a match must be closer than this (template.Named)


@dataclass(frozen=True)
class NamedTemplate:
    name: str
    jinja: str  # the Hugging Face template it stands for
    text: str  # the Go template stored as the TEMPLATE layer
    parameters: dict[str, Any] | None  # {"stop": [...]}, or None when the library has no params


@cache
def library() -> tuple[NamedTemplate, ...]:
    root = resources.files("ollmlx") / "data" / "templates"
    out = []
    for entry in json.loads((root / "index.json").read_text(encoding="utf-8")):
        name = entry["name"]
        text = (root / f"{name}.gotmpl").read_text(encoding="utf-8").replace("\r\n", "\n")
        params_file = root / f"{name}.json"
        params = None
        if params_file.is_file():
            # Ollama decodes into a struct with only `stop`: other keys never reach the model
            raw = json.loads(params_file.read_text(encoding="utf-8"))
            params = {"stop": raw.get("stop")}
        out.append(NamedTemplate(name, entry["template"], text, params))
    return tuple(out)


def detect(chat_template: str) -> NamedTemplate | None:
    """The library template closest to `chat_template`, or None when none is close enough."""
    best: NamedTemplate | None = None
    score = MAX_DISTANCE
    for candidate in library():
        # only a strictly smaller distance than the best so far (and than 100) can win
        d = Levenshtein.distance(chat_template, candidate.jinja, score_cutoff=score - 1)
        if d < score:
            best, score = candidate, d
            if score == 0:
                break
    return best
