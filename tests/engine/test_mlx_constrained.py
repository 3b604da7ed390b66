"""Structured output under load (the MLX engine issue's target): 100 of 100 schema-constrained
generations parse and validate, sampled (not greedy), 16 at a time in one batch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ollmlx.runner.protocol import CompletionRequest, SamplingOptions
from ollmlx.text.jinja_chat import render_chat

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
        "member": {"type": "boolean"},
    },
    "required": ["name", "age", "colors", "member"],
    "additionalProperties": False,
}


def valid(doc: Any) -> bool:
    return (isinstance(doc, dict) and set(doc) == {"name", "age", "colors", "member"}
            and isinstance(doc["name"], str) and len(doc["name"]) <= 24
            and isinstance(doc["age"], int) and not isinstance(doc["age"], bool) and 0 <= doc["age"] <= 120
            and isinstance(doc["colors"], list) and len(doc["colors"]) <= 3
            and all(c in ("red", "green", "blue") for c in doc["colors"])
            and isinstance(doc["member"], bool))


@pytest.mark.slow
def test_hundred_sampled_generations_all_validate_sixteen_per_batch(smol_loaded: Any, engine_factory: Any,
                                                                    collector: Any) -> None:
    engine = engine_factory(smol_loaded, parallel=16)
    prompt = render_chat(smol_loaded.chat_template, [{"role": "user", "content": "Describe a person as JSON."}])
    # the prompt in the prefix cache first, as on a server that has answered it before: the 100
    # (submitted at once, so none finds another's entry) then decode instead of each prefilling it
    warm = collector()
    engine.submit(CompletionRequest(prompt=prompt, options=SamplingOptions(num_predict=1)), warm)
    assert warm.done.wait(120) and "error" not in warm.final, warm.final
    runs = []
    for i in range(100):
        req = CompletionRequest(prompt=prompt, format=SCHEMA,
                                options=SamplingOptions(temperature=1.0, seed=i, num_predict=120))
        c = collector()
        engine.submit(req, c)
        runs.append(c)
    texts = []
    for c in runs:
        assert c.done.wait(900), "a constrained generation did not finish"
        assert "error" not in c.final, c.final
        assert c.final["cached_tokens"] > 0  # the prompt came from the cache
        texts.append(c.text)
    docs = [json.loads(t) for t in texts]
    assert all(valid(d) for d in docs), [t for t, d in zip(texts, docs) if not valid(d)][:3]
    assert len({t for t in texts}) > 10  # sampled: the outputs really differ
