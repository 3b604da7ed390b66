"""OpenAI chat/completions/models/embeddings wire formats and their translation to and from the
native requests and chunks (spec §20; Ollama's openai/openai.go)."""

from __future__ import annotations

import base64
import binascii
import json
import random
import string
import struct
import time
from typing import Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from ollmlx.api.compat import go_type_name
from ollmlx.api.gojson import json_kind
from ollmlx.api.schemas import ChatRequest, GenerateRequest, GoModel
from ollmlx.api.streaming import dumps
from ollmlx.errors import BadRequest

Number = StrictInt | StrictFloat
IMAGE_PREFIXES = tuple(f"data:image/{t};base64," for t in ("jpeg", "jpg", "png", "webp"))


# -- request models --------------------------------------------------------------------------
class FunctionCall(GoModel):
    name: StrictStr = ""
    arguments: StrictStr = ""


class ToolCall(GoModel):
    id: StrictStr = ""
    index: StrictInt = 0
    type: StrictStr = ""
    function: FunctionCall = Field(default_factory=FunctionCall)


class Message(GoModel):
    role: StrictStr = ""
    content: Any = None
    reasoning: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    name: StrictStr | None = None
    tool_call_id: StrictStr | None = None


class StreamOptions(GoModel):
    include_usage: StrictBool | None = None


class JsonSchema(GoModel):
    schema_: Any = Field(None, alias="schema")


class ResponseFormat(GoModel):
    type: StrictStr = ""
    json_schema: JsonSchema | None = None


class Reasoning(GoModel):
    effort: StrictStr | None = None


_CHAT_TYPES = {"model": "string", "messages": "[]openai.Message", "stream": "bool",
               "stream_options": "openai.StreamOptions", "max_tokens": "int", "max_completion_tokens": "int",
               "seed": "int", "temperature": "float64", "frequency_penalty": "float64",
               "presence_penalty": "float64", "top_p": "float64", "response_format": "openai.ResponseFormat",
               "tools": "[]api.Tool", "reasoning": "openai.Reasoning", "reasoning_effort": "string",
               "logprobs": "bool", "top_logprobs": "int", "_debug_render_only": "bool"}


class ChatCompletionRequest(GoModel):
    GO_NAME = "ChatCompletionRequest"
    GO_TYPES = _CHAT_TYPES
    model: StrictStr = ""
    messages: list[Message] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = None
    # Newer clients send this instead of the deprecated max_tokens; Ollama ignores it, we honour it.
    max_completion_tokens: StrictInt | None = None
    seed: StrictInt | None = None
    stop: Any = None
    temperature: Number | None = None
    frequency_penalty: Number | None = None
    presence_penalty: Number | None = None
    top_p: Number | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: StrictStr | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    debug_render_only: StrictBool | None = Field(None, alias="_debug_render_only")


class CompletionRequest(GoModel):
    GO_NAME = "CompletionRequest"
    GO_TYPES = {"model": "string", "prompt": "string", "frequency_penalty": "float32", "max_tokens": "int",
                "presence_penalty": "float32", "seed": "int", "stream": "bool",
                "stream_options": "openai.StreamOptions", "temperature": "float32", "top_p": "float32",
                "suffix": "string", "logprobs": "int", "_debug_render_only": "bool"}
    model: StrictStr = ""
    prompt: StrictStr | None = None
    frequency_penalty: Number | None = None
    max_tokens: StrictInt | None = None
    presence_penalty: Number | None = None
    seed: StrictInt | None = None
    stop: Any = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    suffix: StrictStr | None = None
    logprobs: StrictInt | None = None
    debug_render_only: StrictBool | None = Field(None, alias="_debug_render_only")


class EmbedRequest(GoModel):
    GO_NAME = "EmbedRequest"
    GO_TYPES = {"input": "interface {}", "model": "string", "dimensions": "int", "encoding_format": "string"}
    input: Any = None
    model: StrictStr = ""
    dimensions: StrictInt | None = None
    encoding_format: StrictStr | None = None


# -- shared pieces ---------------------------------------------------------------------------
def think_from_reasoning_effort(effort: str | None) -> bool | str | None:
    """OpenAI's effort scale clamped onto Ollama's think levels."""
    if not effort:
        return None
    if effort == "none":
        return False
    if effort == "minimal":
        return "low"
    if effort in ("low", "medium", "high", "max"):
        return effort
    if effort in ("xhigh", "ultra"):
        return "max"
    raise BadRequest(f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", "high", '
                     '"xhigh", "ultra", "max", or "none")')


def decode_image_url(url: str) -> str:
    """A base64 data URL → the native base64 image string (validated)."""
    if url.startswith(("http://", "https://")):
        raise BadRequest("image URLs are not currently supported, please use base64 encoded data instead")
    if url.startswith("data:;base64,"):
        payload = url.removeprefix("data:;base64,")
    else:
        prefix = next((p for p in IMAGE_PREFIXES if url.startswith(p)), None)
        if prefix is None:
            raise BadRequest("invalid image input")
        payload = url.removeprefix(prefix)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid image input") from exc
    return base64.b64encode(raw).decode()


def tool_call_id() -> str:
    """IDs like the ones Ollama's tool parsers give (`call_` + 8 lowercase letters/digits)."""
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def to_tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for tc in calls or []:
        fn = tc.get("function") or {}
        out.append({"id": tc.get("id") or tool_call_id(), "index": fn.get("index", 0), "type": "function",
                    "function": {"name": fn.get("name", ""), "arguments": dumps(fn.get("arguments") or {})}})
    return out


def from_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    out = []
    for tc in calls:
        try:
            args = json.loads(tc.function.arguments)
        except json.JSONDecodeError as exc:
            raise BadRequest("invalid tool call arguments") from exc
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest("invalid tool call arguments")
        out.append({"id": tc.id or None, "function": {"name": tc.function.name, "arguments": args}})
    return out


def usage(final: dict[str, Any]) -> dict[str, int]:
    prompt, completion = final.get("prompt_eval_count", 0), final.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _stops(stop: Any, strict: bool) -> list[str] | None:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        for s in stop:
            if strict and not isinstance(s, str):
                raise BadRequest(f"invalid type for 'stop' field: {go_type_name(s)}")
        return [s for s in stop if isinstance(s, str)]
    return None


# -- /v1/chat/completions --------------------------------------------------------------------
def _name_from_tool_call_id(messages: list[Message], call_id: str) -> str:
    for msg in reversed(messages):  # last one wins, like Ollama
        for tc in msg.tool_calls or []:
            if tc.id == call_id:
                return tc.function.name
    return ""


def _content_parts(role: str, parts: list[Any]) -> list[dict[str, Any]]:
    """Each part becomes its own native message with the message's role."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            raise BadRequest("invalid message format")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest("invalid message format")
            out.append({"role": role, "content": part["text"]})
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("invalid message format")
            out.append({"role": role, "content": "", "images": [decode_image_url(url)]})
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict):
                raise BadRequest("invalid input_audio format")
            if not isinstance(audio.get("data"), str):
                raise BadRequest("invalid input_audio format: missing data")
            try:
                raw = base64.b64decode(audio["data"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadRequest(f"invalid input_audio base64 data: {exc}") from exc
            out.append({"role": role, "content": "", "images": [base64.b64encode(raw).decode()]})
        else:
            raise BadRequest("invalid message format")
    return out


def from_chat_request(r: ChatCompletionRequest) -> ChatRequest:
    if not r.messages:
        raise BadRequest("[] is too short - 'messages'")
    messages: list[dict[str, Any]] = []
    for msg in r.messages:
        tool_name = ""
        if msg.role.lower() == "tool":
            tool_name = msg.name or (_name_from_tool_call_id(r.messages, msg.tool_call_id)
                                     if msg.tool_call_id else "")
        extras = {"tool_name": tool_name or None, "tool_call_id": msg.tool_call_id or None,
                  "thinking": msg.reasoning or None}
        if isinstance(msg.content, str):
            messages.append({"role": msg.role, "content": msg.content, **extras,
                             "tool_calls": from_tool_calls(msg.tool_calls or []) or None})
        elif isinstance(msg.content, list):
            messages.extend(_content_parts(msg.role, msg.content))
            # parts may have made several messages: tool calls and reasoning go on the last one
            if messages and msg.tool_calls:
                messages[-1].update(extras, tool_calls=from_tool_calls(msg.tool_calls))
        else:
            if msg.tool_calls is None:  # content may only be absent next to tool calls
                raise BadRequest(f"invalid message content type: {go_type_name(msg.content)}")
            messages.append({"role": msg.role, "content": "", "thinking": msg.reasoning or None,
                             "tool_calls": from_tool_calls(msg.tool_calls) or None,
                             "tool_call_id": msg.tool_call_id or None})

    options: dict[str, Any] = {}
    stops = _stops(r.stop, strict=False)
    if stops is not None:
        options["stop"] = stops
    max_tokens = r.max_tokens if r.max_tokens is not None else r.max_completion_tokens
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = float(r.temperature) if r.temperature is not None else 1.0
    if r.seed is not None:
        options["seed"] = r.seed
    if r.frequency_penalty is not None:
        options["frequency_penalty"] = float(r.frequency_penalty)
    if r.presence_penalty is not None:
        options["presence_penalty"] = float(r.presence_penalty)
    options["top_p"] = float(r.top_p) if r.top_p is not None else 1.0

    fmt: Any = None
    if r.response_format is not None:
        kind = r.response_format.type.strip().lower()
        if kind == "json_object":
            fmt = "json"
        elif kind == "json_schema" and r.response_format.json_schema is not None:
            fmt = r.response_format.json_schema.schema_

    for tool in r.tools or []:
        fn = tool.get("function")
        if fn is not None and not isinstance(fn, dict):
            raise BadRequest(f"json: cannot unmarshal {json_kind(fn)} into Go struct field Tool.tools.function "
                             "of type api.ToolFunction")
    effort = r.reasoning.effort if r.reasoning is not None else r.reasoning_effort
    return ChatRequest.model_validate({
        "model": r.model, "messages": [{k: v for k, v in m.items() if v is not None} for m in messages],
        "format": fmt, "options": options, "stream": bool(r.stream), "tools": r.tools,
        "think": think_from_reasoning_effort(effort), "logprobs": bool(r.logprobs),
        "top_logprobs": r.top_logprobs or 0, "_debug_render_only": bool(r.debug_render_only)})


def _logprobs(chunk: dict[str, Any]) -> dict[str, Any] | None:
    lps = chunk.get("logprobs")
    return {"content": lps} if lps else None


def to_chat_completion(cid: str, r: dict[str, Any], created: int) -> dict[str, Any]:
    msg = r.get("message") or {}
    calls = to_tool_calls(msg.get("tool_calls"))
    reason = r.get("done_reason") or None
    if reason == "stop" and calls:
        reason = "tool_calls"
    message: dict[str, Any] = {"role": msg.get("role", "assistant"), "content": msg.get("content", "")}
    if msg.get("thinking"):
        message["reasoning"] = msg["thinking"]
    if calls:
        message["tool_calls"] = calls
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": reason}
    if lps := _logprobs(r):
        choice["logprobs"] = lps
    out = {"id": cid, "object": "chat.completion", "created": created, "model": r.get("model", ""),
           "system_fingerprint": "fp_ollama", "choices": [choice], "usage": usage(r)}
    if r.get("_debug_info"):
        out["_debug_info"] = r["_debug_info"]
    return out


class ChatStream:
    """Native chat chunks → `chat.completion.chunk` objects, keeping the state OpenAI's stream
    shape needs: role on the first chunk, one `created`, a separate finish chunk, usage."""

    def __init__(self, cid: str, include_usage: bool) -> None:
        self.id = cid
        self.include_usage = include_usage
        self.created = int(time.time())
        self.first_sent = False
        self.tool_call_sent = False

    def _chunk(self, model: str, delta: dict[str, Any], finish: str | None = None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if logprobs:
            choice["logprobs"] = logprobs
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model,
                "system_fingerprint": "fp_ollama", "choices": [choice]}

    def process(self, r: dict[str, Any]) -> list[dict[str, Any]]:
        msg = r.get("message") or {}
        model = r.get("model", "")
        content, thinking = msg.get("content", ""), msg.get("thinking") or ""
        calls = to_tool_calls(msg.get("tool_calls"))
        lps = _logprobs(r)
        out: list[dict[str, Any]] = []
        # the metrics-only trailer is not a content chunk (unless nothing was sent yet)
        empty_trailer = r.get("done") and self.first_sent and not (content or thinking or calls or lps)
        if not empty_trailer:
            role = {} if self.first_sent else {"role": "assistant"}
            if thinking and (content or calls):  # one chunk for the reasoning, one for the rest
                out.append(self._chunk(model, {**role, "reasoning": thinking}, logprobs=lps))
                rest: dict[str, Any] = {"content": content}
                if calls:
                    rest["tool_calls"] = calls
                out.append(self._chunk(model, rest))
            else:
                delta: dict[str, Any] = {**role, "content": content}
                if thinking:
                    delta["reasoning"] = thinking
                if calls:
                    delta["tool_calls"] = calls
                out.append(self._chunk(model, delta, logprobs=lps))
            self.first_sent = True
            self.tool_call_sent = self.tool_call_sent or bool(calls)
        if r.get("done"):
            reason = r.get("done_reason") or "stop"
            if reason == "stop" and self.tool_call_sent:
                reason = "tool_calls"
            finish = self._chunk(model, {}, finish=reason)
            out.append(finish)
            if self.include_usage:
                out.append({**finish, "choices": [], "usage": usage(r)})
        return out


# -- /v1/completions -------------------------------------------------------------------------
def from_completion_request(r: CompletionRequest) -> GenerateRequest:
    options: dict[str, Any] = {}
    stops = _stops(r.stop, strict=True)
    if stops is not None:
        options["stop"] = stops
    if r.max_tokens is not None:
        options["num_predict"] = r.max_tokens
    options["temperature"] = float(r.temperature) if r.temperature is not None else 1.0
    if r.seed is not None:
        options["seed"] = r.seed
    options["frequency_penalty"] = float(r.frequency_penalty or 0)
    options["presence_penalty"] = float(r.presence_penalty or 0)
    options["top_p"] = float(r.top_p) if r.top_p else 1.0
    top = r.logprobs if r.logprobs is not None and r.logprobs > 0 else 0
    return GenerateRequest.model_validate({
        "model": r.model, "prompt": r.prompt or "", "suffix": r.suffix or "", "options": options,
        "stream": bool(r.stream), "logprobs": top > 0, "top_logprobs": top,
        "_debug_render_only": bool(r.debug_render_only)})


def _completion_choice(r: dict[str, Any]) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": r.get("response", ""), "index": 0,
                              "finish_reason": r.get("done_reason") or None}
    if lps := _logprobs(r):
        choice["logprobs"] = lps
    return choice


def to_completion(cid: str, r: dict[str, Any], created: int) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": r.get("model", ""),
            "system_fingerprint": "fp_ollama", "choices": [_completion_choice(r)], "usage": usage(r)}


def completion_chunks(cid: str, r: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """One chunk per native chunk; with include_usage every chunk carries a zeroed usage and the
    last is followed by one with the real usage and no choices."""
    chunk: dict[str, Any] = {"id": cid, "object": "text_completion", "created": int(time.time()),
                             "choices": [_completion_choice(r)], "model": r.get("model", ""),
                             "system_fingerprint": "fp_ollama"}
    if include_usage:
        chunk["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    out = [chunk]
    if r.get("done") and include_usage:
        out.append({**chunk, "choices": [], "usage": usage(r)})
    return out


# -- /v1/models ------------------------------------------------------------------------------
def to_model(model_id: str, modified: float, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(modified), "owned_by": owned_by}


# -- /v1/embeddings --------------------------------------------------------------------------
def embed_input(r: EmbedRequest) -> Any:
    if r.encoding_format and r.encoding_format.lower() not in ("float", "base64"):
        raise BadRequest(f"Invalid value for 'encoding_format' = {r.encoding_format}. "
                         "Supported values: ['float', 'base64'].")
    if r.input == "":
        return [""]
    if r.input is None or r.input == []:
        raise BadRequest("invalid input")
    return r.input


def floats_to_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def to_embedding_list(model: str, r: dict[str, Any], encoding_format: str | None) -> dict[str, Any]:
    as_base64 = (encoding_format or "").lower() == "base64"
    data = [{"object": "embedding", "embedding": floats_to_base64(e) if as_base64 else e, "index": i}
            for i, e in enumerate(r.get("embeddings") or [])]
    tokens = r.get("prompt_eval_count", 0)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
