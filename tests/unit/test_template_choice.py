"""Go TEMPLATE or the GGUF's Jinja chat template (spec §13 template precedence; Ollama's
shouldUseGoTemplate / shouldPreferChatTemplate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from helpers import smollm2_gguf
from ollmlx.serve.capabilities import capabilities
from ollmlx.serve.template_choice import go_template_in_use, prefer_chat_template
from ollmlx.store.create import CreateSpec, Creator
from ollmlx.store.names import parse_name
from ollmlx.store.store import Model, Store

JINJA_TOOLS = ("{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}"
               "{% if m['role'] == 'tool' %}<tool_response>{{ m['content'] }}</tool_response>"
               "{% elif m.tool_calls %}{{ m.tool_calls | tojson }}{% else %}{{ m['content'] }}{% endif %}{% endfor %}")
GO_PLAIN = "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:"
GO_TOOLS = ('{{ if .Tools }}{{ range .Tools }}{{ . }}{{ end }}{{ end }}{{ range .Messages }}'
            '{{ if eq .Role "tool" }}<tool_response>{{ .Content }}</tool_response>'
            '{{ else if .ToolCalls }}{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}'
            '{{ else }}{{ .Content }}{{ end }}{{ end }}')


@pytest.fixture(autouse=True)
def _go_template_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OLLAMA_GO_TEMPLATE", "OLLMLX_GO_TEMPLATE"):
        monkeypatch.delenv(var, raising=False)


def _gguf_with_chat_template(path: Path, chat_template: str) -> Path:
    w = GGUFWriter(str(path), "llama")
    w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """SmolLM2: its Jinja template and the autodetected chatml, neither with tools."""
    return _model(tmp_path_factory.mktemp("smol"), smollm2_gguf(), None)


def _model(tmp_path: Path, gguf: Path, template: str | None, renderer: str | None = None) -> Model:
    store = Store(tmp_path / "models")
    digest = store.blobs.write_file(gguf)
    Creator(store, lambda _: None).run(CreateSpec(name=parse_name("m"), files={"m.gguf": digest}, template=template,
                                                  renderer=renderer))
    return store.load(parse_name("m"))


def test_a_jinja_template_with_tools_wins_over_a_go_template_without(tmp_path: Path) -> None:
    model = _model(tmp_path, _gguf_with_chat_template(tmp_path / "t.gguf", JINJA_TOOLS), GO_PLAIN)
    assert go_template_in_use(model) is None
    assert "tools" in capabilities(model)


def test_go_template_wins_when_as_capable(tmp_path: Path, smol: Model) -> None:
    model = _model(tmp_path, _gguf_with_chat_template(tmp_path / "t.gguf", JINJA_TOOLS), GO_TOOLS)
    assert go_template_in_use(model) == GO_TOOLS
    assert smol.template and go_template_in_use(smol) == smol.template


def test_ollama_go_template_decides_when_set(tmp_path: Path, smol: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(tmp_path, _gguf_with_chat_template(tmp_path / "t.gguf", JINJA_TOOLS), GO_PLAIN)
    monkeypatch.setenv("OLLAMA_GO_TEMPLATE", "true")
    assert go_template_in_use(model) == GO_PLAIN and "tools" not in capabilities(model)
    monkeypatch.setenv("OLLAMA_GO_TEMPLATE", "0")
    assert go_template_in_use(smol) is None
    monkeypatch.setenv("OLLAMA_GO_TEMPLATE", "")  # empty is unset
    assert go_template_in_use(smol) == smol.template


def test_a_builtin_renderer_renders_through_the_jinja_template(tmp_path: Path) -> None:
    """Ollama's library models with a RENDERER often carry a bare `{{ .Prompt }}` TEMPLATE."""
    gguf = _gguf_with_chat_template(tmp_path / "t.gguf", "{{ messages[0]['content'] }}")
    assert go_template_in_use(_model(tmp_path / "a", gguf, "{{ .Prompt }}", renderer="qwen3-coder")) is None
    assert go_template_in_use(_model(tmp_path / "b", gguf, "{{ .Prompt }}")) == "{{ .Prompt }}"
    assert go_template_in_use(_model(tmp_path / "c", gguf, GO_PLAIN, renderer="harmony")) == GO_PLAIN


@pytest.mark.parametrize(("jinja", "go", "prefer"), [
    (JINJA_TOOLS, GO_PLAIN, True),  # more capabilities
    ("{% if tools %}{{ tools }}{% endif %}{{ messages[0]['content'] }}", GO_TOOLS, False),  # fewer
    (JINJA_TOOLS, GO_TOOLS, False),  # same, both round-trip tools
    (JINJA_TOOLS, '{{ if .Tools }}{{ .Tools }}{{ end }}{{ .Prompt }}', True),  # same, only Jinja round-trips
    ("{{ messages[0]['content'] }}", GO_PLAIN, False),  # neither has tools
])
def test_prefer_chat_template(jinja: str, go: str, prefer: bool) -> None:
    assert prefer_chat_template(jinja, go) is prefer
