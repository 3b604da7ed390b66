"""Schemathesis against the live server's OpenAPI schema (GET /openapi.json), with a fixed budget:
every operation gets OLLMLX_SCHEMA_EXAMPLES generated requests (CI: 25). Whatever the request,
the server answers in time, answers errors in Ollama's JSON shape, never crashes, and gives no 5xx
but those Ollama documents (spec §19): a runtime option of the wrong type (500 `option "k" must be of
type t`), a full queue (503), and transfer failures of pull/push (500; this sandbox has no network)
- ollmlx's own /api/search is held to the same rule as pull.

The live schema is used as served, with two additions made here: the `$defs` that pydantic nests
in request bodies are inlined (the served `#/$defs/...` references do not resolve from the
document root), and routes that read their body by hand get the body models they decode.
A quarter of the generate/chat/embed cases are aimed at the real model (options tamed to a few
tokens, no load-time options) so that inference is fuzzed too, within the budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from helpers import Server, running_server
from ollmlx.api.schemas import CopyRequest, CreateRequest, GoModel, NameRequest
from ollmlx.api.transfer import PullRequest

MODEL = "smollm2:135m"
EXAMPLES = int(os.environ.get("OLLMLX_SCHEMA_EXAMPLES", "25"))
BODIES: dict[tuple[str, str], type[GoModel]] = {("post", "/api/show"): NameRequest, ("delete", "/api/delete"): NameRequest,
          ("post", "/api/copy"): CopyRequest, ("post", "/api/create"): CreateRequest,
          ("post", "/api/pull"): PullRequest, ("post", "/api/push"): PullRequest}
INFERENCE = {"/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/v1/chat/completions",
             "/v1/completions", "/v1/embeddings", "/v1/messages"}
NETWORK = {"/api/pull", "/api/push", "/api/search"}
LOAD_TIME = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "low_vram", "f16_kv",
             "vocab_only", "use_mlock", "numa"}


def inline_defs(node: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Replace `#/$defs/X` references by their definitions (bounded, for recursive models)."""
    if isinstance(node, dict):
        defs = {**(defs or {}), **node.get("$defs", {})}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs.get(ref.split("/")[-1], {})
            return inline_defs(target, defs, depth + 1) if depth < 6 else {"type": "object"}
        return {k: inline_defs(v, defs, depth) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [inline_defs(v, defs, depth) for v in node]
    return node


def load_schema(server: Server) -> dict[str, Any]:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    for (method, path), model in BODIES.items():
        op = doc["paths"].get(path, {}).get(method)
        if op is not None and "requestBody" not in op:
            op["requestBody"] = {"content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}}}
    return inline_defs(doc)


@pytest.fixture(scope="module")
def target(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own on a copy of the session's store (fuzzed creates and deletes land there)."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    shutil.copytree(server.models, tmp / "models")
    env = {"OLLMLX_REGISTRY_TIMEOUT": "2", "HF_HUB_OFFLINE": "1"}
    with running_server(tmp, env, models=tmp / "models") as srv:
        yield srv


# the output-length field of each OpenAI-style route: a body that leaves it out generates until
# the model stops or its window fills (as with OpenAI and Ollama), minutes on this CPU
LENGTH_FIELD = {"/v1/completions": "max_tokens", "/v1/chat/completions": "max_tokens",
                "/v1/messages": "max_tokens", "/v1/responses": "max_output_tokens"}


def tame(body: Any, path: str = "") -> Any:
    """Aim a generated inference body at the real model with a cheap generation."""
    if not isinstance(body, dict):
        return body
    body = {**body, "model": MODEL}
    opts = body.get("options")
    opts = {k: v for k, v in opts.items() if k not in LOAD_TIME} if isinstance(opts, dict) else {}
    body["options"] = {**opts, "num_predict": 4}
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if key in body:
            body[key] = 4
    if path in LENGTH_FIELD and not any(k in body for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")):
        body[LENGTH_FIELD[path]] = 4
    body.pop("keep_alive", None)
    return body


def allowed_5xx(path: str, status: int, text: str) -> bool:
    if status == 503 and "maximum pending requests exceeded" in text:
        return True
    if status == 500 and re.search(r'option \\?"[^"]+\\?" must be of type', text):
        return True
    if path in NETWORK and status in (500, 502, 503, 504):
        return True
    # Ollama pulls a FROM model it does not have; with no registry that pull fails with a 500
    return path == "/api/create" and status == 500 and "not found" in text


def fuzz_operation(op: Any, target: Server, failures: list[str], seen: dict[str, int]) -> None:
    path, method = op.path, op.method.lower()
    aim = path in INFERENCE

    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(), quarter=st.integers(0, 3) if aim else st.just(1))
    def run(case: Any, quarter: int) -> None:
        if quarter == 0 and case.body is not None:
            case.body = tame(case.body, path)
        try:
            r = case.call(base_url=target.url, timeout=120)
        except Exception as exc:  # a hang (timeout) or a dropped connection
            failures.append(f"{method.upper()} {path}: {type(exc).__name__}: {exc}")
            return
        key = f"{method.upper()} {path} {r.status_code}"
        seen[key] = seen.get(key, 0) + 1
        if r.status_code >= 500 and not allowed_5xx(path, r.status_code, r.text):
            failures.append(f"{key}: {r.text[:300]} <- {json.dumps(case.body, default=str)[:300]}")
        ctype = r.headers.get("content-type") or ""
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        if r.status_code >= 400 and method != "head" and ctype.startswith("application/json"):
            assert "error" in json.loads(r.text), (key, r.text)

    run()
    assert target.alive(), f"server died fuzzing {method.upper()} {path}"


@pytest.mark.slow
def test_schemathesis_against_the_live_schema(target: Server) -> None:
    schema = schemathesis.openapi.from_dict(load_schema(target))
    failures: list[str] = []
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        fuzz_operation(result.ok(), target, failures, seen)  # type: ignore[union-attr]
    print("schemathesis statuses:", json.dumps(dict(sorted(seen.items()))))
    assert failures == [], "\n".join(failures[:20])
    assert target.proc.poll() is None
    assert "unhandled error" not in target.log()
    assert len(target.runners()) <= 1
    assert sum(seen.values()) >= EXAMPLES  # the budget was spent
