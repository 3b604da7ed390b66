"""Modelfile SYSTEM, PARAMETER, TEMPLATE and MESSAGE layers take effect (spec §2, §3, §13, §14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import Server, smollm2_gguf

CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def custom(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mf")
    mf = tmp / "Modelfile"
    mf.write_text(
        f"FROM {smollm2_gguf()}\n"
        f'TEMPLATE """{CHATML}"""\n'
        "SYSTEM You are a pirate. Always answer in one sentence.\n"
        "PARAMETER temperature 0\n"
        "PARAMETER num_predict 20\n"
        'PARAMETER stop "<|im_end|>"\n'
        "MESSAGE user What is your name?\n"
        "MESSAGE assistant My name is Captain Smol.\n"
    )
    r = server.cli("create", "custom:latest", "-f", str(mf))
    assert r.returncode == 0, r.stderr
    yield "custom"
    # leave the shared server as found: unloaded and deleted
    httpx.post(server.url + "/api/generate", json={"model": "custom", "keep_alive": 0}, timeout=60)
    httpx.request("DELETE", server.url + "/api/delete", json={"model": "custom"}, timeout=60)


def _render(server: Server, body: dict) -> str:
    r = httpx.post(server.url + "/api/chat", json={**body, "_debug_render_only": True}, timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["_debug_info"]["rendered_template"])


def test_layers_are_stored_and_shown(server: Server, custom: str) -> None:
    show = httpx.post(server.url + "/api/show", json={"model": custom}).json()
    assert show["template"] == CHATML
    assert show["system"] == "You are a pirate. Always answer in one sentence."
    assert show["messages"] == [{"role": "user", "content": "What is your name?"},
                                {"role": "assistant", "content": "My name is Captain Smol."}]
    lines = show["parameters"].splitlines()
    assert any(line.startswith("num_predict") and line.endswith("20") for line in lines)
    assert any(line.startswith("stop") and '"<|im_end|>"' in line for line in lines)
    assert 'TEMPLATE "{{- range .Messages }}' in show["modelfile"] and "PARAMETER temperature 0" in show["modelfile"]


def test_template_system_and_messages_build_the_prompt(server: Server, custom: str) -> None:
    text = _render(server, {"model": custom, "messages": [{"role": "user", "content": "Hello"}]})
    assert text == ("<|im_start|>system\nYou are a pirate. Always answer in one sentence.<|im_end|>\n"
                    "<|im_start|>user\nWhat is your name?<|im_end|>\n"
                    "<|im_start|>assistant\nMy name is Captain Smol.<|im_end|>\n"
                    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
    # a request system message replaces the model's SYSTEM
    text = _render(server, {"model": custom, "messages": [{"role": "system", "content": "S"},
                                                          {"role": "user", "content": "Hello"}]})
    assert "pirate" not in text and text.startswith("<|im_start|>user\nWhat is your name?")
    # generate: request `system` wins, `template` overrides and runs on the same values — a legacy
    # template runs once per turn, the model's MESSAGEs included (spec §2, §13)
    r = httpx.post(server.url + "/api/generate", json={"model": custom, "prompt": "P", "system": "SYS",
                                                        "template": "[{{ .System }}|{{ .Prompt }}]",
                                                        "_debug_render_only": True}).json()
    assert r["_debug_info"]["rendered_template"] == "[SYS|What is your name?]My name is Captain Smol.[|P]"
    r = httpx.post(server.url + "/api/generate", json={"model": custom, "prompt": "P", "system": "SYS",
                                                        "context": [1, 2], "template": "[{{ .System }}|{{ .Prompt }}]",
                                                        "_debug_render_only": True}).json()
    assert r["_debug_info"]["rendered_template"].endswith("[SYS|P]")


def test_parameters_apply_and_request_options_win(server: Server, custom: str) -> None:
    r = httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": custom, "stream": False, "messages": [{"role": "user", "content": "Tell me a long story."}]}).json()
    assert r["eval_count"] <= 20
    r = httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": custom, "stream": False, "options": {"num_predict": 3},
        "messages": [{"role": "user", "content": "Tell me a long story."}]}).json()
    assert r["eval_count"] == 3 and r["done_reason"] == "length"


def test_bad_template_is_rejected_at_create(server: Server, tmp_path: Path) -> None:
    r = httpx.post(server.url + "/api/create", json={"model": "badtmpl", "from": "smollm2:135m",
                                                      "template": "{{ .Prompt ", "stream": False})
    assert r.status_code == 400 and r.json()["error"].startswith("template error: ")
