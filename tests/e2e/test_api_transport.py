"""Transport and global conventions of the native API against a live server (spec §0, §1, §19):
the route table, gin's 404/405, Go encoding/json decoding (syntax errors, type mismatches with
nested field paths, `null`, case-insensitive keys, trailing bytes), `stream` as a *bool, content
types, timestamps, omitted zero fields, the `model` echo, and the CORS preflight headers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from helpers import Server, running_server

MODEL = "smollm2:135m"
POST_ROUTES = ["/api/generate", "/api/chat", "/api/show", "/api/create", "/api/copy", "/api/embed",
               "/api/embeddings", "/api/pull", "/api/push"]
UTC_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")
LOCAL_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)$")
FAST = {"temperature": 0, "num_predict": 3}


def raw_post(server: Server, path: str, body: bytes, method: str = "POST") -> httpx.Response:
    return httpx.request(method, server.url + path, content=body, timeout=120,
                         headers={"Content-Type": "application/json"})


def error(r: httpx.Response) -> tuple[int, str]:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    return r.status_code, r.json()["error"]


# -- §1 route table, §0 router behaviour ------------------------------------------------------

def test_root_version_and_heads(server: Server) -> None:
    """§1: GET and HEAD on `/` (the Go client's heartbeat), `/api/version` and `/api/tags`."""
    r = httpx.get(server.url + "/")
    assert (r.status_code, r.text) == (200, "Ollama is running")
    assert r.headers["content-type"].startswith("text/plain")
    h = httpx.head(server.url + "/")
    assert h.status_code == 200 and h.content == b""
    v = httpx.get(server.url + "/api/version")
    assert v.status_code == 200 and re.fullmatch(r"\d+\.\d+\.\d+", v.json()["version"])
    assert httpx.head(server.url + "/api/version").status_code == 200
    assert httpx.head(server.url + "/api/tags").status_code == 200
    assert httpx.get(server.url + "/api/status").json() == {"cloud": {"disabled": False, "source": "none"}}


@pytest.mark.parametrize(("method", "path", "status", "text"), [
    ("GET", "/api/nothing", 404, "404 page not found"),
    ("POST", "/v2/anything", 404, "404 page not found"),
    ("GET", "/api/generate", 405, "405 method not allowed"),
    ("GET", "/api/chat", 405, "405 method not allowed"),
    ("DELETE", "/api/tags", 405, "405 method not allowed"),
    ("POST", "/api/delete", 405, "405 method not allowed"),
    ("GET", "/api/copy", 405, "405 method not allowed"),
])
def test_unknown_paths_and_wrong_methods(server: Server, method: str, path: str, status: int, text: str) -> None:
    """§0: gin answers an unknown path 404 and a known path with the wrong method 405, in text/plain."""
    r = httpx.request(method, server.url + path)
    assert (r.status_code, r.text) == (status, text)
    assert r.headers["content-type"].startswith("text/plain")


# -- §0 JSON decoding as Go's encoding/json does it ----------------------------------------

@pytest.mark.parametrize("path", [*POST_ROUTES, "/api/delete"])
@pytest.mark.parametrize("body", [b"", b"  \n\t "])
def test_empty_body_is_missing_request_body(server: Server, path: str, body: bytes) -> None:
    """§0, §19: an empty (or blank) body on every JSON route."""
    method = "DELETE" if path == "/api/delete" else "POST"
    assert error(raw_post(server, path, body, method)) == (400, "missing request body")


@pytest.mark.parametrize(("body", "message"), [
    (b'{"model": ', "unexpected EOF"),
    (b'{"model": "x"', "unexpected EOF"),
    (b"{'model': 'x'}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"model" "x"}', "invalid character '\"' after object key"),
    (b'{"model": "x" "prompt": "y"}', "invalid character '\"' after object key:value pair"),
    (b'{"model": x}', "invalid character 'x' looking for beginning of value"),
    (b'{"context": [1 2]}', "invalid character '2' after array element"),
    (b'{"raw": tru}', "invalid character '}' in literal true (expecting 'e')"),
    (b'{"raw": nul}', "invalid character '}' in literal null (expecting 'l')"),
    (b'{"top_logprobs": 1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"top_logprobs": -a}', "invalid character 'a' in numeric literal"),
    (b'{"top_logprobs": 1e}', "invalid character '}' in exponent of numeric literal"),
    (b'{"prompt": "\\q"}', "invalid character 'q' in string escape code"),
    (b'{"prompt": "\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
    (b'{"prompt": "a\tb"}', "invalid character '\\t' in string literal"),
    (b'{"top_logprobs": NaN}', "invalid character 'N' looking for beginning of value"),
])
def test_syntax_errors_read_like_go(server: Server, body: bytes, message: str) -> None:
    """§0: malformed JSON → 400 with Go's scanner text."""
    assert error(raw_post(server, "/api/generate", body)) == (400, message)


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/api/generate", b'{"model": 1}', "json: cannot unmarshal number into Go struct field GenerateRequest.model of type string"),
    ("/api/generate", b'{"stream": "no"}', "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool"),
    ("/api/generate", b'{"top_logprobs": 1.5}', "json: cannot unmarshal number 1.5 into Go struct field GenerateRequest.top_logprobs of type int"),
    ("/api/generate", b'{"context": [1, "a"]}', "json: cannot unmarshal string into Go struct field GenerateRequest.context of type int"),
    ("/api/generate", b'{"options": [1]}', "json: cannot unmarshal array into Go struct field GenerateRequest.options of type map[string]interface {}"),
    ("/api/generate", b'{"images": "x"}', "json: cannot unmarshal string into Go struct field GenerateRequest.images of type []api.ImageData"),
    ("/api/generate", b'[1, 2]', "json: cannot unmarshal array into Go value of type api.GenerateRequest"),
    ("/api/generate", b'"hello"', "json: cannot unmarshal string into Go value of type api.GenerateRequest"),
    ("/api/chat", b'{"messages": {"role": "user"}}', "json: cannot unmarshal object into Go struct field ChatRequest.messages of type []api.Message"),
    ("/api/chat", b'{"messages": [{"role": "user", "content": 42}]}', "json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type string"),
    ("/api/chat", b'{"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": true}}]}]}',
     "json: cannot unmarshal bool into Go struct field ChatRequest.messages.tool_calls.function.name of type string"),
    ("/api/chat", b'{"tools": {"type": "function"}}', "json: cannot unmarshal object into Go struct field ChatRequest.tools of type api.Tools"),
    ("/api/create", b'{"model": "m", "files": {"a.gguf": 7}}', "json: cannot unmarshal number into Go struct field CreateRequest.files of type string"),
    ("/api/copy", b'{"source": ["a"]}', "json: cannot unmarshal array into Go struct field CopyRequest.source of type string"),
    ("/api/show", b'{"verbose": "yes"}', "json: cannot unmarshal string into Go struct field ShowRequest.verbose of type bool"),
])
def test_type_mismatches_name_the_go_field(server: Server, path: str, body: bytes, message: str) -> None:
    """§0, §19: `json: cannot unmarshal X into Go struct field T.f of type Y`, with the full
    field path for nested fields (messages are decoded through an alias, so the outer struct
    names them)."""
    assert error(raw_post(server, path, body)) == (400, message)


@pytest.mark.parametrize(("body", "message"), [
    (b'{"model": "smollm2:135m", "keep_alive": "3600"}', 'time: missing unit in duration "3600"'),
    (b'{"model": "smollm2:135m", "keep_alive": "soon"}', 'time: invalid duration "soon"'),
    (b'{"model": "smollm2:135m", "keep_alive": true}', "Unsupported type: 'bool'"),
    (b'{"model": "smollm2:135m", "keep_alive": [1]}', "Unsupported type: '[]interface {}'"),
    (b'{"model": "smollm2:135m", "think": "true"}',
     'invalid think value: "true" (must be "high", "medium", "low", "max", true, or false)'),
    (b'{"model": "smollm2:135m", "think": 1}',
     'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'),
    (b'{"model": "smollm2:135m", "images": ["data:image/png;base64,iVBORw0KGgo="]}',
     "illegal base64 data at input byte 4"),
    (b'{"model": "smollm2:135m", "images": ["abc"]}', "illegal base64 data at input byte 0"),
    # an UnmarshalJSON error stops the decode and wins over an earlier type mismatch
    (b'{"model": "nope", "stream": 1, "keep_alive": "1"}', 'time: missing unit in duration "1"'),
])
def test_custom_unmarshalers_are_400_before_the_model_is_looked_at(server: Server, body: bytes, message: str) -> None:
    """§0, §8, §9, §12: keep_alive, think and images fail while the body is decoded."""
    assert error(raw_post(server, "/api/generate", body)) == (400, message)


def test_null_body_trailing_bytes_and_case_insensitive_keys(server: Server) -> None:
    """§0: `null` decodes as an empty struct; bytes after the first value are never read (a
    json.Decoder); keys match fields case-insensitively as Go folds them; unknown keys are ignored."""
    assert error(raw_post(server, "/api/generate", b"null")) == (404, "model '' not found")
    assert error(raw_post(server, "/api/chat", b"null")) == (400, "model is required")
    assert error(raw_post(server, "/api/show", b"null")) == (400, "model is required")
    r = raw_post(server, "/api/generate", b'{"model": "smollm2:135m", "stream": false} not json at all')
    assert r.status_code == 200 and r.json()["done_reason"] == "load"
    body = {"MODEL": MODEL, "Stream": False, "PROMPT": "", "unknown_field": [1, {"x": None}]}
    r = httpx.post(server.url + "/api/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == MODEL and r.json()["done_reason"] == "load"
    # the long s (U+017F) folds to "s" in Go: "\u017ftream" is `stream`
    r = raw_post(server, "/api/generate", json.dumps({"model": MODEL, "\u017ftream": False}).encode())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    # null leaves a field at its zero value (or a pointer unset)
    r = httpx.post(server.url + "/api/generate", timeout=120, json={
        "model": MODEL, "prompt": None, "stream": False, "keep_alive": None, "options": None, "raw": None})
    assert r.status_code == 200 and r.json()["done_reason"] == "load"


# -- §0 stream pointer, content types, timestamps, omitted fields, model echo --------------

def test_stream_is_a_bool_pointer(server: Server) -> None:
    """§0: absent, null or true stream NDJSON; only an explicit false gives one JSON object."""
    base = {"model": MODEL, "prompt": "Hi", "options": FAST}
    for extra in ({}, {"stream": None}, {"stream": True}):
        with httpx.stream("POST", server.url + "/api/generate", json={**base, **extra}, timeout=120) as r:
            assert r.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(x) for x in r.iter_lines() if x]
        assert len(lines) >= 2 and lines[-1]["done"] is True and all(not x["done"] for x in lines[:-1])
    r = httpx.post(server.url + "/api/generate", json={**base, "stream": False}, timeout=120)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json()["done"] is True and r.text.count("\n") == 0


def test_timestamps_fields_and_model_echo(server: Server) -> None:
    """§0: created_at is UTC RFC3339Nano with trailing zeros trimmed; zero metrics and empty
    optional fields are omitted; `model` echoes the request string verbatim (here an upper-case
    spelling that matches the stored name case-insensitively, §15)."""
    asked = "SmolLM2:135M"
    with httpx.stream("POST", server.url + "/api/generate", timeout=120,
                      json={"model": asked, "prompt": "Hi", "options": FAST}) as r:
        lines = [json.loads(x) for x in r.iter_lines() if x]
    for line in lines:
        assert line["model"] == asked
        assert UTC_TS.match(line["created_at"]), line["created_at"]
    for line in lines[:-1]:
        assert set(line) == {"model", "created_at", "response", "done"}, line
    final = lines[-1]
    assert set(final) >= {"done_reason", "total_duration", "load_duration", "prompt_eval_count", "eval_count", "context"}
    assert not ({"thinking", "tool_calls", "logprobs", "images", "_debug_info"} & set(final))
    assert all(isinstance(final[k], int) and final[k] > 0 for k in ("total_duration", "load_duration", "eval_count"))
    chat = httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": asked, "messages": [{"role": "user", "content": "Hi"}], "stream": False, "options": FAST}).json()
    assert chat["model"] == asked and set(chat["message"]) == {"role", "content"}
    assert "context" not in chat and UTC_TS.match(chat["created_at"])


def test_local_times_carry_the_offset(server: Server, tmp_path: Path) -> None:
    """§0: modified_at (tags, show) and expires_at (ps) are local time with the zone's offset."""
    with running_server(tmp_path, {"TZ": "Asia/Kolkata"}, models=server.models) as other:
        tags = httpx.get(other.url + "/api/tags", timeout=60).json()["models"]
        assert tags and all(t["modified_at"].endswith("+05:30") and LOCAL_TS.match(t["modified_at"]) for t in tags)
        show = httpx.post(other.url + "/api/show", json={"model": MODEL}, timeout=60).json()
        assert show["modified_at"].endswith("+05:30")
        httpx.post(other.url + "/api/generate", json={"model": MODEL, "keep_alive": "1m"}, timeout=120)
        ps = httpx.get(other.url + "/api/ps", timeout=60).json()["models"]
        assert ps[0]["expires_at"].endswith("+05:30") and LOCAL_TS.match(ps[0]["expires_at"])
        httpx.post(other.url + "/api/generate", json={"model": MODEL, "keep_alive": 0}, timeout=120)


def test_errors_before_the_first_byte_keep_their_status(server: Server) -> None:
    """§0 streaming: a failure before anything was streamed is a plain status + JSON error, also
    on a streaming request (a bad option type is Ollama's 500)."""
    r = httpx.post(server.url + "/api/generate", timeout=120,
                   json={"model": MODEL, "prompt": "Hi", "options": {"temperature": "hot"}})
    assert error(r) == (500, 'option "temperature" must be of type float32')
    r = httpx.post(server.url + "/api/chat", timeout=120, json={"model": "no-such-model", "messages": []})
    assert error(r) == (404, "model 'no-such-model' not found")


# -- §0 CORS preflight -------------------------------------------------------------------------

def test_cors_preflight_headers_and_default_origins(server: Server) -> None:
    """§0: the default origins (localhost / 127.0.0.1 / 0.0.0.0 on any port and scheme, app://,
    file://, tauri://, vscode-webview://, vscode-file://) get a 204 preflight allowing Ollama's
    headers, the OpenAI SDK's x-stainless-* ones included."""
    for origin in ("http://localhost", "https://localhost:8443", "http://127.0.0.1:5173", "https://0.0.0.0",
                   "app://obsidian.md", "file://", "tauri://localhost", "vscode-webview://abc", "vscode-file://x"):
        r = httpx.options(server.url + "/api/chat", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,x-stainless-os,x-stainless-retry-count,openai-beta"})
        assert r.status_code == 204, origin
        assert r.headers["access-control-allow-origin"] == origin
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "user-agent", "accept", "x-requested-with", "openai-beta",
                "x-stainless-os", "x-stainless-retry-count", "x-stainless-timeout"} <= allowed
