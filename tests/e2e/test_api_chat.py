"""POST /api/chat against a live server (spec §3; §13 rendering): load/unload, MESSAGE history and
SYSTEM handling, role case, `tool` messages, capability errors, history truncation to num_ctx, and
the non-stream aggregation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, running_server

MODEL = "smollm2:135m"
LONG = "registry.ollama.ai/library/smollm2:135m"
FAST = {"temperature": 0, "num_predict": 4}


def chat(server: Server, messages: list[dict[str, Any]], **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    body.setdefault("stream", False)
    return httpx.post(server.url + "/api/chat", json={"messages": messages, **body}, timeout=300)


def rendered(server: Server, messages: list[dict[str, Any]], **body: Any) -> str:
    r = chat(server, messages, _debug_render_only=True, **body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] is False and out["message"] == {"role": "assistant", "content": ""}
    return str(out["_debug_info"]["rendered_template"])


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture(scope="module")
def persona(server: Server) -> Iterator[str]:
    """smollm2 with a SYSTEM and two MESSAGEs."""
    name = "smol-persona:latest"
    r = httpx.post(server.url + "/api/create", timeout=300, json={
        "model": name, "from": MODEL, "system": "You are a pirate.", "stream": False,
        "messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Arr, a pirate."}]})
    assert r.json() == {"status": "success"}, r.text
    yield name
    httpx.post(server.url + "/api/generate", json={"model": name, "keep_alive": 0}, timeout=60)
    httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=60)


def test_load_and_unload_with_no_messages(server: Server) -> None:
    """§3: no messages loads; with keep_alive 0 unloads, before the capability checks (tools on a
    model without them)."""
    r = chat(server, [])
    assert r.status_code == 200
    assert r.json()["message"] == {"role": "assistant", "content": ""} and r.json()["done_reason"] == "load"
    assert list(r.json()) == ["model", "created_at", "message", "done", "done_reason"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    r = chat(server, [], keep_alive=0, tools=tools, think=True)
    assert r.status_code == 200 and r.json()["done_reason"] == "unload"
    assert r.json()["message"] == {"role": "assistant", "content": ""}
    assert httpx.get(server.url + "/api/ps").json() == {"models": []}


def test_history_and_system_handling(server: Server, persona: str) -> None:
    """§3: the prompt is the model's MESSAGEs followed by the request's; the model SYSTEM comes
    first unless the request's first message is a system message (which then replaces it)."""
    text = rendered(server, [user("Hello")], model=persona)
    assert text == ("<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n"
                    "<|im_start|>assistant\nArr, a pirate.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                    "<|im_start|>assistant\n")
    own = rendered(server, [{"role": "system", "content": "You are a cat."}, user("Hello")], model=persona)
    assert "You are a pirate." not in own
    assert own.startswith("<|im_start|>user\nWho are you?")  # MESSAGEs first, then the request's system
    assert "<|im_start|>system\nYou are a cat.<|im_end|>\n<|im_start|>user\nHello" in own


def test_roles_are_lower_cased_and_tool_messages_render(server: Server) -> None:
    """§3: the role is lower-cased on decode; `tool` messages (with tool_name / tool_call_id) and
    assistant tool_calls are accepted and reach the template."""
    msgs: list[dict[str, Any]] = [{"role": "USER", "content": "Weather?"},
            {"role": "Assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
            user("So?")]
    text = rendered(server, msgs)
    assert text.startswith("<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n")
    assert "<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>user\nSo?" in text


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"model": ""}, 400, "model is required"),
    ({"model": "no-such-model"}, 404, "model 'no-such-model' not found"),
    ({"model": "bad name!"}, 400, "invalid model name"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, f"{LONG} does not support tools"),
    ({"think": True}, 400, f'"{MODEL}" does not support thinking'),
    ({"think": "low"}, 400, f'"{MODEL}" does not support thinking'),
    ({"top_logprobs": 30}, 400, "top_logprobs must be between 0 and 20"),
    ({"model": "no-such-model", "top_logprobs": 30}, 400, "top_logprobs must be between 0 and 20"),
    ({"options": {"num_predict": "ten"}}, 500, 'option "num_predict" must be of type integer'),
])
def test_request_errors(server: Server, body: dict[str, Any], status: int, message: str) -> None:
    """§3, §19: exact texts, in Ollama's order."""
    r = chat(server, [user("Hi")], **body)
    assert (r.status_code, r.json()) == (status, {"error": message})


@pytest.mark.parametrize("stream", [False, True])
def test_a_format_the_runner_refuses_is_a_plain_400_and_the_runner_serves_on(server: Server, stream: bool) -> None:
    """The runner streams its response from the start; a request its engine refuses before any
    output (a schema the grammar library cannot compile) still comes back as a plain 400, not a
    200 stream, and the same runner answers the next request."""
    bad = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    r = chat(server, [user("Hi")], format=bad, stream=stream, options=FAST)
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["error"] and "schema" in r.json()["error"]
    pids = server.runners()
    ok = chat(server, [user("Hi")], options=FAST)
    assert ok.status_code == 200 and ok.json()["done"] is True
    assert server.runners() == pids


def test_history_truncation_keeps_system_and_the_last_message(server: Server) -> None:
    """§3 truncation (server/prompt.go chatPrompt, re-tokenizing with the runner): the oldest
    messages go until the prompt fits num_ctx; system messages and the last message always stay;
    `truncate:false` sends everything."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "Be kind."}]
    for i in range(4):
        msgs += [user(f"Old question {i}: " + "why is the sky blue " * 4),
                 {"role": "assistant", "content": f"Old answer {i}: " + "because of scattering " * 4}]
    msgs.append(user("Last question?"))
    small = {"num_ctx": 128}
    cut = rendered(server, msgs, options=small)
    assert cut.startswith("<|im_start|>system\nBe kind.<|im_end|>\n")
    assert cut.endswith("<|im_start|>user\nLast question?<|im_end|>\n<|im_start|>assistant\n")
    assert "Old question 0" not in cut and "Old answer 3" in cut
    whole = rendered(server, msgs, options=small, truncate=False)
    assert all(f"Old question {i}" in whole for i in range(4))
    # the last message stays even when it alone does not fit; the runner then cuts the prompt
    huge_msgs: list[dict[str, Any]] = [{"role": "system", "content": "S"}, user("a " * 300), user("b " * 300)]
    huge = rendered(server, huge_msgs, options=small)
    assert "a a a" not in huge and "b b b" in huge and huge.startswith("<|im_start|>system\nS<|im_end|>")
    r = chat(server, msgs, options={**small, **FAST})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] <= 128


def test_stream_and_non_stream_agree(server: Server) -> None:
    """§3: streamed deltas carry message.content; the final chunk the metrics; non-stream joins them."""
    msgs = [user("Name three colors.")]
    with httpx.stream("POST", server.url + "/api/chat", timeout=300,
                      json={"model": MODEL, "messages": msgs, "options": FAST}) as r:
        chunks = [json.loads(x) for x in r.iter_lines() if x]
    assert all(c["message"]["role"] == "assistant" for c in chunks)
    assert chunks[-1]["done"] is True and chunks[-1]["done_reason"] == "length" and chunks[-1]["eval_count"] == 4
    assert all(set(c) == {"model", "created_at", "message", "done"} for c in chunks[:-1])
    joined = "".join(c["message"]["content"] for c in chunks)
    whole = chat(server, msgs, options=FAST).json()
    assert whole["message"] == {"role": "assistant", "content": joined}
    assert whole["done_reason"] == "length" and whole["eval_count"] == 4


def test_ollama_go_template_false_renders_the_ggufs_own_jinja(server: Server, tmp_path: Path) -> None:
    """§13, §22: OLLAMA_GO_TEMPLATE=false renders a GGUF with its tokenizer.chat_template instead of
    its Go TEMPLATE. SmolLM2's Jinja adds a default system turn; the autodetected chatml does not."""
    messages = [user("Hi")]
    assert "named SmolLM" not in rendered(server, messages)
    with running_server(tmp_path, {"OLLAMA_GO_TEMPLATE": "false", "OLLAMA_NOPRUNE": "1"},
                        models=server.models) as jinja_server:
        text = rendered(jinja_server, messages)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
