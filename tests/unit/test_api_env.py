"""Environment variables as envconfig reads them (spec §22; ollmlx/config.py): OLLAMA_HOST parsing,
booleans (strconv.ParseBool, anything else non-empty is true), trimming, OLLMLX_* over OLLAMA_*,
and the defaults of the scheduler's variables."""

from __future__ import annotations

import math

import pytest

from ollmlx import config


@pytest.mark.parametrize(("value", "url", "client"), [
    ("", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("  '0.0.0.0'  ", "http://0.0.0.0:11434", "http://127.0.0.1:11434"),
    ("1.2.3.4", "http://1.2.3.4:11434", "http://1.2.3.4:11434"),
    ("example.com", "http://example.com:11434", "http://example.com:11434"),
    ("example.com:8080", "http://example.com:8080", "http://example.com:8080"),
    (":8080", "http://:8080", "http://127.0.0.1:8080"),
    ("ollama.com", "https://ollama.com:443", "https://ollama.com:443"),
    ("ollama.com:8080", "http://ollama.com:8080", "http://ollama.com:8080"),
    ("http://example.com", "http://example.com:80", "http://example.com:80"),
    ("https://example.com", "https://example.com:443", "https://example.com:443"),
    ("https://example.com:9000/ollama/", "https://example.com:9000/ollama", "https://example.com:9000/ollama"),
    ("example.com:99999", "http://example.com:11434", "http://example.com:11434"),
    ("example.com:port", "http://example.com:11434", "http://example.com:11434"),
    ("[::1]", "http://[::1]:11434", "http://[::1]:11434"),
    ("[::]:5000", "http://[::]:5000", "http://[::1]:5000"),
    ("::1", "http://[::1]:11434", "http://[::1]:11434"),
])
def test_ollama_host(value: str, url: str, client: str) -> None:
    addr = config.parse_host(value)
    assert (addr.url, addr.client_url) == (url, client)


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("0", False), ("f", False), ("F", False), ("false", False), ("FALSE", False),
    ("False", False), ("1", True), ("true", True), ("yes", True), ("fAlSe", True), ("no", True), (" 'false' ", False),
])
def test_booleans_parse_like_strconv(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    monkeypatch.delenv("OLLMLX_NOPRUNE", raising=False)
    if value is None:
        monkeypatch.delenv("OLLAMA_NOPRUNE", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_NOPRUNE", value)
    assert config.noprune() is expected


def test_defaults_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_QUEUE", "MAX_LOADED_MODELS", "CONTEXT_LENGTH", "LOAD_TIMEOUT", "DEBUG", "ORIGINS", "KEEP_ALIVE"):
        monkeypatch.delenv("OLLAMA_" + name, raising=False)
        monkeypatch.delenv("OLLMLX_" + name, raising=False)
    assert config.max_queue() == 512 and config.max_loaded_models() == 0 and config.context_length() == 0
    assert config.load_timeout_seconds() == 300 and config.debug_level() == 0 and config.origins() == []
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", '"7"')
    monkeypatch.setenv("OLLAMA_ORIGINS", " https://a.example, chrome-extension://*")
    monkeypatch.setenv("OLLAMA_LOAD_TIMEOUT", "0")
    monkeypatch.setenv("OLLAMA_DEBUG", "2")
    assert config.max_queue() == 7 and config.origins() == ["https://a.example", "chrome-extension://*"]
    assert math.isinf(config.load_timeout_seconds()) and config.debug_level() == 2
    monkeypatch.setenv("OLLAMA_LOAD_TIMEOUT", "10m")
    monkeypatch.setenv("OLLAMA_DEBUG", "true")
    assert config.load_timeout_seconds() == 600 and config.debug_level() == 1
    monkeypatch.setenv("OLLMLX_MAX_QUEUE", "3")  # OLLMLX_* wins
    assert config.max_queue() == 3
