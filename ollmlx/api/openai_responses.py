"""The stateless OpenAI Responses API (`POST /v1/responses`, spec §20) translated to a native chat
request, and native chat chunks back to a response object or its event sequence (Ollama's
openai/responses.go). The built-in `web_search` tool needs ollama.com and is not offered."""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from pydantic import StrictBool, StrictInt, StrictStr

from ollmlx.api.gojson import json_kind
from ollmlx.api.openai_wire import Number, decode_image_url, think_from_reasoning_effort, to_tool_calls
from ollmlx.api.schemas import ChatRequest, GoModel
from ollmlx.errors import BadRequest

log = logging.getLogger("ollmlx.api")


class ResponsesRequest(GoModel):
    GO_NAME = "ResponsesRequest"
    GO_TYPES = {"model": "string", "background": "bool", "include": "[]string", "instructions": "string",
                "max_output_tokens": "int", "reasoning": "openai.ResponsesReasoning", "temperature": "float64",
                "text": "openai.ResponsesText", "top_p": "float64", "truncation": "string",
                "tools": "[]openai.ResponsesTool", "stream": "bool"}
    model: StrictStr = ""
    background: StrictBool | None = None
    input: Any = None
    instructions: StrictStr | None = None
    max_output_tokens: StrictInt | None = None
    reasoning: dict[str, Any] | None = None
    temperature: Number | None = None
    text: dict[str, Any] | None = None
    top_p: Number | None = None
    truncation: StrictStr | None = None
    tools: list[dict[str, Any]] | None = None
    stream: StrictBool | None = None

    @property
    def effort(self) -> str:
        return str((self.reasoning or {}).get("effort") or "")

    @property
    def text_format(self) -> dict[str, Any] | None:
        fmt = (self.text or {}).get("format")
        return fmt if isinstance(fmt, dict) else None


# -- request ---------------------------------------------------------------------------------
def _content(parts: Any, where: str) -> tuple[str, list[str]]:
    """Message content (a string or content items) → text and native images."""
    if parts is None:
        return "", []
    if isinstance(parts, str):
        return parts, []
    if not isinstance(parts, list):
        raise BadRequest(f"{where}: content must be a string or array")
    text, images = "", []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text += str(part.get("text") or "")
        elif kind == "input_image":
            if part.get("image_url"):
                images.append(decode_image_url(str(part["image_url"])))
        elif kind == "input_file":
            raise BadRequest("file inputs are not currently supported")
        else:
            raise BadRequest(f"{where}: content[{i}]: unknown content type: {kind or ''}")
    return text, images


def _function_output(output: Any) -> tuple[str, list[str]]:
    if isinstance(output, list):
        return _content(output, "output")
    return (output if isinstance(output, str) else ""), []


def _item_type(item: Any, i: int) -> str:
    if not isinstance(item, dict):
        raise BadRequest(f"input[{i}]: json: cannot unmarshal {json_kind(item)} into Go value of type openai.ResponsesInputItem")
    kind = item.get("type") or ("message" if item.get("role") else "")
    if not kind:
        raise BadRequest(f"input[{i}]: input item missing required 'type' field")
    if kind not in ("message", "function_call", "function_call_output", "reasoning", "web_search_call"):
        raise BadRequest(f'input[{i}]: unknown input item type: "{kind}"')
    return str(kind)


def _messages(r: ResponsesRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if r.instructions:
        messages.append({"role": "system", "content": r.instructions})
    if isinstance(r.input, str):
        if r.input:
            messages.append({"role": "user", "content": r.input})
        return messages
    if r.input is not None and not isinstance(r.input, list):
        raise BadRequest("input must be a string or array")
    items: list[Any] = r.input or []
    kinds = [_item_type(item, i) for i, item in enumerate(items)]
    pending_thinking = ""
    for i, (item, kind) in enumerate(zip(items, kinds)):
        if kind == "reasoning":  # merged into the next assistant message
            pending_thinking = str(item.get("encrypted_content") or "")
        elif kind == "message":
            text, images = _content(item.get("content"), f"input[{i}]")
            msg: dict[str, Any] = {"role": str(item.get("role") or ""), "content": text, "images": images}
            if msg["role"] == "assistant" and pending_thinking:
                msg["thinking"], pending_thinking = pending_thinking, ""
            # an assistant message replayed between a function_call and its output stays in the
            # assistant message that holds the call, so the tool result follows the call
            next_call = items[i + 1].get("call_id") if i + 1 < len(items) and \
                kinds[i + 1] == "function_call_output" else None
            last = messages[-1] if messages else None
            if msg["role"] == "assistant" and next_call and last and last["role"] == "assistant" and \
                    any(tc["id"] == next_call for tc in last.get("tool_calls") or []):
                if last["content"] and msg["content"]:
                    last["content"] += "\n"
                last["content"] += msg["content"]
                last["images"] = (last.get("images") or []) + images
                if msg.get("thinking"):
                    last["thinking"] = msg["thinking"]
                continue
            messages.append(msg)
        elif kind == "function_call":
            raw = item.get("arguments") or ""
            if not isinstance(raw, str):
                raise BadRequest(f"input[{i}]: json: cannot unmarshal {json_kind(raw)} into Go struct field "
                                 "ResponsesFunctionCall.arguments of type string")
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                raise BadRequest(f"failed to parse function call arguments: {exc}") from exc
            if args is not None and not isinstance(args, dict):
                raise BadRequest("failed to parse function call arguments: json: cannot unmarshal "
                                 f"{json_kind(args)} into Go value of type api.ToolCallFunctionArguments")
            call = {"id": item.get("call_id") or None,
                    "function": {"name": str(item.get("name") or ""), "arguments": args or {}}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
                target = messages[-1]
            else:
                target = {"role": "assistant", "content": "", "tool_calls": [call]}
                messages.append(target)
            if pending_thinking:
                target["thinking"], pending_thinking = pending_thinking, ""
        elif kind == "function_call_output":
            text, images = _function_output(item.get("output"))
            messages.append({"role": "tool", "content": text, "images": images,
                             "tool_call_id": item.get("call_id") or None})
        # web_search_call items are history metadata only
    if pending_thinking:
        messages.append({"role": "assistant", "content": "", "thinking": pending_thinking})
    return messages


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Responses tools (flat) → native tools; a namespace expands to `<ns>.<member>` functions."""
    out: list[dict[str, Any]] = []
    for t in tools or []:
        kind = t.get("type")
        if kind == "web_search":
            log.info("the built-in web_search tool needs ollama.com; not offered to the model")
        elif kind == "namespace":
            prefix = f"{t['name']}." if t.get("name") else ""
            for member in _tools(t.get("tools")):
                name = member["function"]["name"]
                if prefix and not name.startswith(prefix):
                    member["function"]["name"] = prefix + name
                out.append(member)
        else:
            out.append({"type": kind, "function": {"name": t.get("name", ""),
                                                   "description": t.get("description") or "",
                                                   "parameters": t.get("parameters") or {}}})
    return out


def from_responses_request(r: ResponsesRequest) -> ChatRequest:
    options: dict[str, Any] = {"temperature": float(r.temperature) if r.temperature is not None else 1.0}
    if r.top_p is not None:
        options["top_p"] = float(r.top_p)
    if r.max_output_tokens is not None:
        options["num_predict"] = r.max_output_tokens
    fmt = r.text_format
    schema = fmt.get("schema") if fmt and fmt.get("type") == "json_schema" else None
    messages = [{k: v for k, v in m.items() if v not in (None, [])} for m in _messages(r)]
    return ChatRequest.model_validate({
        "model": r.model, "messages": messages, "options": options, "tools": _tools(r.tools) or None,
        "format": schema, "think": think_from_reasoning_effort(r.effort), "stream": bool(r.stream)})


# -- response --------------------------------------------------------------------------------
def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [_output_text(text)] if status == "completed" else []}


def _usage(r: dict[str, Any]) -> dict[str, Any]:
    i, o = r.get("prompt_eval_count", 0), r.get("eval_count", 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def response_object(r: ResponsesRequest, response_id: str, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, created: int) -> dict[str, Any]:
    """The response envelope; request parameters are echoed back as OpenAI does."""
    reasoning = None
    summary = (r.reasoning or {}).get("summary")
    if r.effort or summary:
        reasoning = {"effort": r.effort or None, "summary": summary or None}
    return {
        "id": response_id, "object": "response", "created_at": created,
        "completed_at": int(time.time()) if status == "completed" else None, "status": status,
        "incomplete_details": None, "model": r.model, "previous_response_id": None,
        "instructions": r.instructions or None, "output": output, "error": None,
        "tools": r.tools or [], "tool_choice": "auto", "truncation": r.truncation or "disabled",
        "parallel_tool_calls": True, "text": {"format": r.text_format or {"type": "text"}},
        "top_p": float(r.top_p) if r.top_p is not None else 1.0, "presence_penalty": 0, "frequency_penalty": 0,
        "top_logprobs": 0, "temperature": float(r.temperature) if r.temperature is not None else 1.0,
        "reasoning": reasoning, "usage": usage, "max_output_tokens": r.max_output_tokens, "max_tool_calls": None,
        "store": False, "background": bool(r.background), "service_tier": "default", "metadata": {},
        "safety_identifier": None, "prompt_cache_key": None,
    }


def to_response(r: ResponsesRequest, response_id: str, item_id: str, chat: dict[str, Any],
                created: int) -> dict[str, Any]:
    msg = chat.get("message") or {}
    output: list[dict[str, Any]] = []
    if msg.get("thinking"):
        output.append({"id": f"rs_{response_id}", "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": msg["thinking"]}],
                       "encrypted_content": msg["thinking"]})
    calls = to_tool_calls(msg.get("tool_calls"))
    for i, tc in enumerate(calls):
        output.append({"id": f"fc_{response_id}_{i}", "type": "function_call", "status": "completed",
                       "call_id": tc["id"], "name": tc["function"]["name"], "arguments": tc["function"]["arguments"]})
    if not calls:
        output.append(_message_item(item_id, msg.get("content", "")))
    return response_object(r, response_id, "completed", output, _usage(chat), created)


class ResponsesStream:
    """Native chat chunks → the Responses API's event sequence (created, in_progress, output items
    with their deltas, completed), numbering events as OpenAI does."""

    def __init__(self, r: ResponsesRequest, response_id: str, item_id: str) -> None:
        self.r, self.response_id, self.item_id = r, response_id, item_id
        self.created = int(time.time())
        self.seq = 0
        self.started = False
        self.output_index = 0
        self.text_started = False
        self.text = ""
        self.tool_calls_sent = False
        self.reasoning_id = ""
        self.thinking = ""
        self.completed: list[dict[str, Any]] = []

    def _event(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return kind, data

    def _envelope(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        return response_object(self.r, self.response_id, status, output, usage, self.created)

    def process(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        msg = chunk.get("message") or {}
        events = []
        if not self.started:
            self.started = True
            events.append(self._event("response.created", response=self._envelope("in_progress", [], None)))
            events.append(self._event("response.in_progress", response=self._envelope("in_progress", [], None)))
        if msg.get("thinking"):
            events += self._thinking(msg["thinking"])
        if msg.get("tool_calls"):
            events += self._finish_reasoning() + self._tool_calls(msg["tool_calls"])
            self.tool_calls_sent = True
        elif not self.tool_calls_sent and msg.get("content"):
            events += self._text(msg["content"])
        if chunk.get("done"):
            events += self._complete(chunk)
        return events

    def failed(self, message: str) -> tuple[str, dict[str, Any]]:
        response = self._envelope("failed", list(self.completed), None)
        response["error"] = {"code": "server_error", "message": message}
        return self._event("response.failed", response=response)

    def _thinking(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = []
        if not self.reasoning_id:
            self.reasoning_id = f"rs_{random.randrange(999999)}"
            events.append(self._event("response.output_item.added", output_index=self.output_index,
                                      item={"id": self.reasoning_id, "type": "reasoning", "summary": []}))
        self.thinking += text
        events.append(self._event("response.reasoning_summary_text.delta", item_id=self.reasoning_id,
                                  output_index=self.output_index, summary_index=0, delta=text))
        return events

    def _finish_reasoning(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.reasoning_id:
            return []
        item = {"id": self.reasoning_id, "type": "reasoning",
                "summary": [{"type": "summary_text", "text": self.thinking}], "encrypted_content": self.thinking}
        self.completed.append(item)
        index = self.output_index
        events = [self._event("response.reasoning_summary_text.done", item_id=self.reasoning_id,
                              output_index=index, summary_index=0, text=self.thinking),
                  self._event("response.output_item.done", output_index=index, item=item)]
        self.reasoning_id, self.thinking = "", ""
        self.output_index += 1
        return events

    def _tool_calls(self, calls: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        events = []
        for i, tc in enumerate(to_tool_calls(calls)):
            index = self.output_index + i
            item_id = f"fc_{random.randrange(999999)}_{i}"
            fn = tc["function"]
            item = {"id": item_id, "type": "function_call", "status": "completed", "call_id": tc["id"],
                    "name": fn["name"], "arguments": fn["arguments"]}
            self.completed.append(item)
            events += [
                self._event("response.output_item.added", output_index=index,
                            item={**item, "status": "in_progress", "arguments": ""}),
                self._event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                            delta=fn["arguments"]),
                self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                            arguments=fn["arguments"]),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        self.output_index += len(calls)
        return events

    def _text(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = self._finish_reasoning()
        if not self.text_started:
            self.text_started = True
            events.append(self._event("response.output_item.added", output_index=self.output_index,
                                      item=_message_item(self.item_id, "", status="in_progress")))
            events.append(self._event("response.content_part.added", item_id=self.item_id,
                                      output_index=self.output_index, content_index=0, part=_output_text("")))
        self.text += text
        events.append(self._event("response.output_text.delta", item_id=self.item_id, output_index=self.output_index,
                                  content_index=0, delta=text, logprobs=[]))
        return events

    def _complete(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = self._finish_reasoning()
        output = list(self.completed)
        if self.text_started:
            item = _message_item(self.item_id, self.text)
            output.append(item)
            if not self.tool_calls_sent:
                idx = self.output_index
                events += [
                    self._event("response.output_text.done", item_id=self.item_id, output_index=idx,
                                content_index=0, text=self.text, logprobs=[]),
                    self._event("response.content_part.done", item_id=self.item_id, output_index=idx,
                                content_index=0, part=_output_text(self.text)),
                    self._event("response.output_item.done", output_index=idx, item=item),
                ]
        events.append(self._event("response.completed", response=self._envelope("completed", output, _usage(chunk))))
        return events
