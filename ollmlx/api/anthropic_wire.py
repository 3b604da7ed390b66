"""Anthropic Messages wire format and its translation to and from the native chat (spec §21;
Ollama's anthropic/anthropic.go). The built-in web_search tool needs ollama.com and is not offered."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from typing import Any

from pydantic import Field, StrictBool, StrictInt, StrictStr

from ollmlx.api.gojson import json_kind
from ollmlx.api.openai_wire import Number
from ollmlx.api.schemas import ChatRequest, GoModel
from ollmlx.errors import BadRequest

log = logging.getLogger("ollmlx.api")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": new_id("req")}


class MessageParam(GoModel):
    role: StrictStr = ""
    content: Any = None


class Tool(GoModel):
    type: StrictStr = ""
    name: StrictStr = ""
    description: StrictStr = ""
    input_schema: Any = None


class ThinkingConfig(GoModel):
    type: StrictStr = ""
    budget_tokens: StrictInt | None = None


class OutputConfig(GoModel):
    effort: StrictStr = ""


class MessagesRequest(GoModel):
    GO_NAME = "MessagesRequest"
    GO_TYPES = {"model": "string", "max_tokens": "int", "messages": "[]anthropic.MessageParam",
                "stream": "bool", "temperature": "float64", "top_p": "float64", "top_k": "int",
                "stop_sequences": "[]string", "tools": "[]anthropic.Tool", "thinking": "anthropic.ThinkingConfig",
                "output_config": "anthropic.OutputConfig"}
    model: StrictStr = ""
    max_tokens: StrictInt = 0
    messages: list[MessageParam] | None = None
    system: Any = None
    stream: StrictBool | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None
    stop_sequences: list[StrictStr] | None = None
    tools: list[Tool] | None = None
    tool_choice: Any = None  # accepted and ignored, as Ollama does
    thinking: ThinkingConfig | None = None
    metadata: Any = None
    output_config: OutputConfig | None = Field(None)


# -- request ---------------------------------------------------------------------------------
def _image(source: Any) -> str:
    if not isinstance(source, dict):
        raise BadRequest("invalid image source")
    if source.get("type") != "base64":
        raise BadRequest(f"invalid image source type: {source.get('type') or ''}. Only base64 images are supported.")
    data = str(source.get("data") or "")
    try:
        return base64.b64encode(base64.b64decode(data, validate=True)).decode()
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"invalid base64 image data: {exc}") from exc


def _tool_result(content: Any) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    text, images = "", []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text += block["text"]
        elif block.get("type") == "image":
            if not isinstance(block.get("source"), dict):
                raise BadRequest("invalid tool_result image source")
            images.append(_image(block["source"]))
    return text, images


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise BadRequest(f"json: cannot unmarshal {json_kind(content)} into Go value of type []anthropic.ContentBlock")
    for block in content:
        if not isinstance(block, dict):
            raise BadRequest(f"json: cannot unmarshal {json_kind(block)} into Go value of type anthropic.ContentBlock")
        for field, (kind, go_type) in BLOCK_FIELDS.items():
            value = block.get(field)
            if value is not None and not isinstance(value, kind):
                raise BadRequest(f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                                 f"ContentBlock.messages.content.{field} of type {go_type}")
    return content


# typed fields of Ollama's anthropic.ContentBlock (the rest are `any`)
BLOCK_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "type": (str, "string"), "text": (str, "string"), "id": (str, "string"), "name": (str, "string"),
    "tool_use_id": (str, "string"), "thinking": (str, "string"), "signature": (str, "string"),
    "is_error": (bool, "bool"), "input": (dict, "api.ToolCallFunctionArguments"), "source": (dict, "anthropic.ImageSource"),
}


def _message(msg: MessageParam) -> list[dict[str, Any]]:
    """One Anthropic message → native messages: tool results become `tool` messages (before the
    user's text, after an assistant's), tool_use blocks become tool calls."""
    role = msg.role.lower()
    text, images, calls, thinking = "", [], [], ""
    results: list[dict[str, Any]] = []
    for block in _blocks(msg.content):
        kind = block.get("type")
        if kind == "text":
            text += block.get("text") or ""
        elif kind == "image":
            if block.get("source") is None:
                raise BadRequest("invalid image source")
            images.append(_image(block["source"]))
        elif kind in ("tool_use", "server_tool_use"):
            if kind == "tool_use" and not block.get("id"):
                raise BadRequest("tool_use block missing required 'id' field")
            if kind == "tool_use" and not block.get("name"):
                raise BadRequest("tool_use block missing required 'name' field")
            args = block.get("input")
            calls.append({"id": block.get("id") or None,
                          "function": {"name": block.get("name") or "", "arguments": args if isinstance(args, dict) else {}}})
        elif kind in ("tool_result", "web_search_tool_result"):
            result_text, result_images = _tool_result(block.get("content"))
            results.append({"role": "tool", "content": result_text, "images": result_images or None,
                            "tool_call_id": block.get("tool_use_id") or None})
        elif kind == "thinking":
            thinking = block.get("thinking") or ""
    out: list[dict[str, Any]] = []
    if role == "user":
        out += results
    if text or images or calls or thinking:
        out.append({"role": role, "content": text, "images": images or None, "tool_calls": calls or None,
                    "thinking": thinking or None})
    if role != "user":
        out += results
    return out


def _system(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(b["text"] for b in system
                       if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
    return ""


def _tool(t: Tool) -> dict[str, Any] | None:
    if t.type.startswith("web_search"):
        log.info("the built-in web_search tool needs ollama.com; not offered to the model")
        return None
    schema = t.input_schema
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest(f'invalid input_schema for tool "{t.name}": json: cannot unmarshal {json_kind(schema)} '
                         "into Go value of type api.ToolFunctionParameters")
    return {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": schema or {}}}


def think_of(r: MessagesRequest) -> bool | str | None:
    if r.thinking is not None and r.thinking.type == "enabled":
        return True
    if r.thinking is not None and r.thinking.type == "disabled":
        return False
    effort = r.output_config.effort.strip().lower() if r.output_config else ""
    effort = "high" if effort == "xhigh" else effort
    return effort if effort in ("high", "medium", "low", "max") else None


def validate(r: MessagesRequest) -> None:
    if not r.model:
        raise BadRequest("model is required")
    if r.max_tokens <= 0:
        raise BadRequest("max_tokens is required and must be positive")
    if not r.messages:
        raise BadRequest("messages is required")


def from_messages_request(r: MessagesRequest) -> ChatRequest:
    messages: list[dict[str, Any]] = []
    if system := _system(r.system):
        messages.append({"role": "system", "content": system})
    for msg in r.messages or []:
        messages += _message(msg)
    options: dict[str, Any] = {"num_predict": r.max_tokens}
    if r.temperature is not None:
        options["temperature"] = float(r.temperature)
    if r.top_p is not None:
        options["top_p"] = float(r.top_p)
    if r.top_k is not None:
        options["top_k"] = r.top_k
    if r.stop_sequences:
        options["stop"] = r.stop_sequences
    tools = [t for t in (_tool(t) for t in r.tools or []) if t is not None]
    return ChatRequest.model_validate({
        "model": r.model, "messages": [{k: v for k, v in m.items() if v is not None} for m in messages],
        "options": options, "stream": bool(r.stream), "tools": tools or None, "think": think_of(r)})


def estimate_input_tokens(r: MessagesRequest) -> int:
    """A rough count (characters / 4) for message_start, before the real count is known."""
    total = len(json.dumps(r.system)) if r.system is not None and not isinstance(r.system, str) else len(r.system or "")
    for msg in r.messages or []:
        total += len(msg.role)
        for block in _blocks(msg.content):
            total += len(block.get("text") or "") + len(block.get("thinking") or "")
            if block.get("type") in ("tool_use", "tool_result"):
                total += len(json.dumps(block))
    for t in r.tools or []:
        total += len(t.name) + len(t.description) + len(json.dumps(t.input_schema or {}))
    return max(total // 4, 1 if r.messages or r.system is not None else 0)


# -- response --------------------------------------------------------------------------------
def stop_reason(done_reason: str, has_tool_calls: bool) -> str | None:
    if has_tool_calls:
        return "tool_use"
    return {"stop": "end_turn", "length": "max_tokens", "": None}.get(done_reason, "stop_sequence")


def _tool_use(tc: dict[str, Any]) -> dict[str, Any]:
    fn = tc.get("function") or {}
    return {"type": "tool_use", "id": tc.get("id") or new_id("toolu"), "name": fn.get("name", ""),
            "input": fn.get("arguments") or {}}


def to_messages_response(mid: str, chat: dict[str, Any]) -> dict[str, Any]:
    msg = chat.get("message") or {}
    content: list[dict[str, Any]] = []
    if msg.get("thinking"):
        content.append({"type": "thinking", "thinking": msg["thinking"]})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    calls = msg.get("tool_calls") or []
    content += [_tool_use(tc) for tc in calls]
    out: dict[str, Any] = {"id": mid, "type": "message", "role": "assistant", "model": chat.get("model", ""),
                           "content": content}
    if reason := stop_reason(chat.get("done_reason") or "", bool(calls)):
        out["stop_reason"] = reason
    out["usage"] = {"input_tokens": chat.get("prompt_eval_count", 0), "output_tokens": chat.get("eval_count", 0)}
    return out


class MessagesStream:
    """Native chat chunks → message_start, content_block_start/delta/stop per block (thinking, text,
    tool_use), message_delta with the stop reason and usage, message_stop."""

    def __init__(self, mid: str, model: str, estimated_input_tokens: int) -> None:
        self.id, self.model, self.estimated = mid, model, estimated_input_tokens
        self.started = False
        self.index = 0
        self.thinking_started = self.thinking_done = self.text_started = False
        self.tools_sent: set[str] = set()

    def _stop(self) -> tuple[str, dict[str, Any]]:
        return "content_block_stop", {"type": "content_block_stop", "index": self.index}

    def _start(self, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}

    def _close_thinking(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.thinking_started or self.thinking_done:
            return []
        self.thinking_done = True
        out = [self._stop()]
        self.index += 1
        return out

    def process(self, r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        msg = r.get("message") or {}
        events: list[tuple[str, dict[str, Any]]] = []
        if not self.started:
            self.started = True
            tokens = r.get("prompt_eval_count") or self.estimated
            events.append(("message_start", {"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "usage": {"input_tokens": tokens, "output_tokens": 0}}}))
        if msg.get("thinking") and not self.thinking_done:
            if self.text_started:
                events.append(self._stop())
                self.index += 1
                self.text_started = False
            if not self.thinking_started:
                self.thinking_started = True
                events.append(self._start({"type": "thinking", "thinking": ""}))
            events.append(self._delta({"type": "thinking_delta", "thinking": msg["thinking"]}))
        if msg.get("content"):
            events += self._close_thinking()
            if not self.text_started:
                self.text_started = True
                events.append(self._start({"type": "text", "text": ""}))
            events.append(self._delta({"type": "text_delta", "text": msg["content"]}))
        for tc in msg.get("tool_calls") or []:
            block = _tool_use(tc)
            if block["id"] in self.tools_sent:
                continue
            events += self._close_thinking()
            if self.text_started:
                events.append(self._stop())
                self.index += 1
                self.text_started = False
            events.append(self._start({**block, "input": {}}))
            events.append(self._delta({"type": "input_json_delta",
                                       "partial_json": json.dumps(block["input"], ensure_ascii=False,
                                                                  separators=(",", ":"))}))
            events.append(self._stop())
            self.tools_sent.add(block["id"])
            self.index += 1
        if r.get("done"):
            if self.text_started or (self.thinking_started and not self.thinking_done):
                events.append(self._stop())
            delta: dict[str, Any] = {}
            if reason := stop_reason(r.get("done_reason") or "", bool(self.tools_sent)):
                delta["stop_reason"] = reason
            events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": {
                "input_tokens": r.get("prompt_eval_count", 0), "output_tokens": r.get("eval_count", 0)}}))
            events.append(("message_stop", {"type": "message_stop"}))
        return events

    def error(self, status: int, message: str) -> tuple[str, dict[str, Any]]:
        return "error", {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
