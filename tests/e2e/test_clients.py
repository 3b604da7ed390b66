"""Other real clients against a live server (docs/clients.md): the npm `ollama` package under node,
LlamaIndex's Ollama LLM, LangChain's ChatOllama through the `langchain-tests` standard integration
suite, and the request sequences VS Code Copilot Chat and Continue send (spec §2, §3, §6, §20)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_ollama import ChatOllama
from langchain_tests.integration_tests import ChatModelIntegrationTests

from helpers import Server, create_smollm2, running_server
from tools_model import WEATHER_TOOL, ensure_tools_model, openai_few_shot

MODEL = "smollm2:135m"
QUESTION = "What is the capital of France? Answer briefly."



@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """These clients test the wire, not an engine: a server of this module's own on the host's
    default engine for GGUF (llama.cpp on this CPU, 4x MLX's decode speed), which keeps the
    LangChain standard suite's ~100 generations affordable. The MLX engine's API is tested
    through the same routes by the other modules."""
    with running_server(tmp_path_factory.mktemp("clients")) as srv:
        create_smollm2(srv)
        yield srv


NODE_SCRIPT = """
import { Ollama } from 'ollama'
const client = new Ollama({ host: process.argv[2] })
const ask = [{ role: 'user', content: process.argv[4] }]
const options = { temperature: 0, num_predict: 24 }
const list = await client.list()
const chat = await client.chat({ model: process.argv[3], messages: ask, options })
let streamed = ''
for await (const part of await client.chat({ model: process.argv[3], messages: ask, options, stream: true })) {
  streamed += part.message.content
}
console.log(JSON.stringify({ models: list.models.map((m) => m.name), chat, streamed }))
"""


# -- npm `ollama` under node -------------------------------------------------------------------
@pytest.mark.slow
def test_npm_ollama_chat_and_list(server: Server, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the npm client test"
    install = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "ollama"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    (tmp_path / "client.mjs").write_text(NODE_SCRIPT)
    run = subprocess.run([node, "client.mjs", server.url, MODEL, QUESTION], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert MODEL in out["models"]
    assert "Paris" in out["chat"]["message"]["content"] and out["chat"]["done_reason"] == "stop"
    assert out["streamed"] == out["chat"]["message"]["content"]


# -- LlamaIndex --------------------------------------------------------------------------------
def test_llama_index_chat_and_stream_complete(server: Server) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.ollama import Ollama

    llm = Ollama(model=MODEL, base_url=server.url, temperature=0, request_timeout=300,
                 additional_kwargs={"num_predict": 24})
    reply = llm.chat([ChatMessage(role="user", content=QUESTION)])
    assert "Paris" in (reply.message.content or "")
    deltas = [r.delta for r in llm.stream_complete("The capital of France is")]
    assert len(deltas) > 2 and "".join(d or "" for d in deltas)


# -- LangChain: the standard integration suite -------------------------------------------------
NO_TOOL_CALL = ("SmolLM2 135M answers these prompts in prose instead of calling the tool (no worked "
                "example in the conversation), so no tool call comes back")


@pytest.mark.slow
class TestLangChainChatOllama(ChatModelIntegrationTests):
    """ChatOllama (native /api/chat) on the tool-capable SmolLM2 template; greedy (a sampled 135M model
    rambles past the token limit inside a JSON string), 48 tokens at most."""

    url: ClassVar[str] = ""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _live_server(cls, server: Server) -> None:
        cls.url = server.url
        ensure_tools_model(server)

    @property
    def chat_model_class(self) -> type[ChatOllama]:
        return ChatOllama

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "smollm2-tools:135m", "base_url": self.url, "num_predict": 48, "temperature": 0}

    @property
    def model_override_value(self) -> str:
        return MODEL

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return False  # Ollama's API has no tool_choice

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    def test_bind_runnables_as_tools(self, model: BaseChatModel) -> None:
        super().test_bind_runnables_as_tools(model)

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(strict=True, reason=NO_TOOL_CALL)
    def test_unicode_tool_call_integration(self, model: BaseChatModel, *, tool_choice: str | None = None,
                                           force_tool_call: bool = True) -> None:
        super().test_unicode_tool_call_integration(model, tool_choice=tool_choice, force_tool_call=force_tool_call)

    @pytest.mark.xfail(strict=True, reason="format=\"json\" only guarantees JSON, not the Joke schema the test "
                       "asks for in prose; SmolLM2 135M writes other keys")
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)


# -- editors: request sequences replayed --------------------------------------------------------
COPILOT_HEADERS = {"User-Agent": "GitHubCopilotChat/0.30.0", "Authorization": "Bearer",
                   "X-VSCode-User-Agent-Library-Version": "node-fetch", "X-GitHub-Api-Version": "2025-05-01",
                   "X-Interaction-Type": "conversation-agent", "OpenAI-Intent": "conversation-agent"}


def sse_events(text: str) -> list[Any]:
    data = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    return [d if d == "[DONE]" else json.loads(d) for d in data]


def test_vscode_copilot_chat_sequence(server: Server) -> None:
    """Copilot Chat's Ollama provider: list, show each model (capabilities, basename, context length),
    then OpenAI chat completions streamed with tools and usage, then the turn with the tool result."""
    model = ensure_tools_model(server)
    tags = httpx.get(server.url + "/api/tags", headers=COPILOT_HEADERS).json()["models"]
    assert model in [m["model"] for m in tags]
    show = httpx.post(server.url + "/api/show", json={"model": model}, headers=COPILOT_HEADERS).json()
    assert "tools" in show["capabilities"] and "vision" not in show["capabilities"]
    info = show["model_info"]
    assert info["general.basename"] == model
    assert isinstance(info[f"{info['general.architecture']}.context_length"], int)

    body: dict[str, Any] = {"model": model, "temperature": 0, "top_p": 1, "n": 1, "stream": True, "max_tokens": 40,
            "stream_options": {"include_usage": True}, "tools": [WEATHER_TOOL], "tool_choice": "auto",
            "messages": [{"role": "system", "content": "You are an AI programming assistant."}, *openai_few_shot()]}
    r = httpx.post(server.url + "/v1/chat/completions", json=body, headers=COPILOT_HEADERS, timeout=300)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] > 0
    calls = [tc for e in events[:-2] for tc in e["choices"][0]["delta"].get("tool_calls", [])]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == \
        [("get_weather", {"city": "Paris"})]
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"

    # the agent runs the tool and sends its result back for the answer
    body["messages"] = [*body["messages"], {"role": "assistant", "content": "", "tool_calls": calls},
                        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 24 C"}]
    r = httpx.post(server.url + "/v1/chat/completions", json=body, headers=COPILOT_HEADERS, timeout=300)
    events = sse_events(r.text)
    assert r.status_code == 200 and events[-1] == "[DONE]"
    assert events[-3]["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


def test_vscode_copilot_version_gate(server: Server) -> None:
    version = httpx.get(server.url + "/api/version", headers=COPILOT_HEADERS).json()["version"]
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    assert parts + [0] * (3 - len(parts)) >= [0, 6, 4]


def test_continue_sequence(server: Server) -> None:
    """Continue's Ollama provider: /api/show with the legacy `name` field (it parses `parameters`
    line by line and looks for `.Suffix` in the template), then /api/chat streamed with its options
    and keep_alive in seconds, and raw /api/generate for autocomplete."""
    show = httpx.post(server.url + "/api/show", json={"name": MODEL})
    assert show.status_code == 200
    params = show.json().get("parameters", "")
    assert all(re.match(r"^(\S+)\s+((?:\".*\")|\S+)$", line) for line in params.split("\n") if line)
    options = {"temperature": 0, "top_p": 0.9, "top_k": 40, "num_predict": 24, "num_ctx": 4096,
               "stop": ["<|im_end|>"], "min_p": 0.05}
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "options": options,
            "keep_alive": 1800, "stream": True}
    with httpx.stream("POST", server.url + "/api/chat", json=body, timeout=300) as r:
        assert r.status_code == 200
        chunks = [json.loads(line) for line in r.iter_lines() if line]
    assert chunks[-1]["done"] and "Paris" in "".join(c["message"]["content"] for c in chunks)
    gen = httpx.post(server.url + "/api/generate", timeout=300, json={
        "model": MODEL, "prompt": "def add(a, b):\n    return", "raw": True, "keep_alive": 1800, "stream": False,
        "options": {"temperature": 0, "num_predict": 8, "stop": ["\n"]}})
    assert gen.status_code == 200 and gen.json()["done"] and gen.json()["eval_count"] > 0
