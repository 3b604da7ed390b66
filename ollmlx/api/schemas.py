"""Wire models named exactly like Ollama's JSON (api/types.go). Request models ignore unknown
fields (Go's encoding/json does); `GO_TYPES` gives the Go names used in decode errors."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class GoModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    GO_NAME: ClassVar[str] = ""
    GO_TYPES: ClassVar[dict[str, str]] = {}


class ToolCallFunction(GoModel):
    index: int = 0
    name: StrictStr = ""
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(GoModel):
    id: StrictStr | None = None
    function: ToolCallFunction = Field(default_factory=ToolCallFunction)


class Message(GoModel):
    GO_NAME = "Message"
    GO_TYPES = {"role": "string", "content": "string", "thinking": "string", "images": "[]api.ImageData",
                "tool_calls": "[]api.ToolCall", "tool_name": "string", "tool_call_id": "string"}
    role: StrictStr = ""
    content: StrictStr = ""
    thinking: StrictStr | None = None
    images: list[StrictStr] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: StrictStr | None = None
    tool_call_id: StrictStr | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role.lower(), "content": self.content}
        for key in ("thinking", "images", "tool_name", "tool_call_id"):
            v = getattr(self, key)
            if v:
                out[key] = v
        if self.tool_calls:
            out["tool_calls"] = [tc.model_dump(exclude_none=True) for tc in self.tool_calls]
        return out


_INFERENCE_TYPES = {
    "model": "string", "stream": "*bool", "format": "json.RawMessage", "keep_alive": "*api.Duration",
    "options": "map[string]interface {}", "think": "*api.ThinkValue", "truncate": "*bool", "shift": "*bool",
    "_debug_render_only": "bool", "logprobs": "bool", "top_logprobs": "int",
}
_GENERATE_TYPES = {**_INFERENCE_TYPES, "prompt": "string", "suffix": "string", "system": "string",
                   "template": "string", "context": "[]int", "raw": "bool", "images": "[]api.ImageData"}
_CHAT_TYPES = {**_INFERENCE_TYPES, "messages": "[]api.Message", "tools": "api.Tools"}


class GenerateRequest(GoModel):
    GO_NAME = "GenerateRequest"
    GO_TYPES = _GENERATE_TYPES
    model: StrictStr = ""
    prompt: StrictStr = ""
    suffix: StrictStr = ""
    system: StrictStr = ""
    template: StrictStr = ""
    context: list[StrictInt] | None = None
    stream: StrictBool | None = None
    raw: StrictBool = False
    format: Any = None
    keep_alive: Any = None
    images: list[StrictStr] | None = None
    options: dict[str, Any] | None = None
    think: Any = None
    truncate: StrictBool | None = None
    shift: StrictBool | None = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt = 0
    debug_render_only: StrictBool = Field(False, alias="_debug_render_only")


class ChatRequest(GoModel):
    GO_NAME = "ChatRequest"
    GO_TYPES = _CHAT_TYPES
    model: StrictStr = ""
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    stream: StrictBool | None = None
    format: Any = None
    keep_alive: Any = None
    options: dict[str, Any] | None = None
    think: Any = None
    truncate: StrictBool | None = None
    shift: StrictBool | None = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt = 0
    debug_render_only: StrictBool = Field(False, alias="_debug_render_only")


class NameRequest(GoModel):
    """show / delete / pull / push: `model`, or the deprecated `name`."""

    GO_NAME = "ShowRequest"
    GO_TYPES = {"model": "string", "name": "string", "verbose": "bool", "system": "string", "template": "string",
                "options": "map[string]interface {}", "insecure": "bool", "stream": "*bool"}
    model: StrictStr = ""
    name: StrictStr = ""
    verbose: StrictBool = False
    system: StrictStr = ""
    options: dict[str, Any] | None = None
    insecure: StrictBool = False
    stream: StrictBool | None = None

    @property
    def target(self) -> str:
        return self.model or self.name


class CopyRequest(GoModel):
    GO_NAME = "CopyRequest"
    GO_TYPES = {"source": "string", "destination": "string"}
    source: StrictStr = ""
    destination: StrictStr = ""


class CreateRequest(GoModel):
    GO_NAME = "CreateRequest"
    GO_TYPES = {"model": "string", "name": "string", "from": "string", "files": "map[string]string",
                "adapters": "map[string]string", "template": "string", "system": "string",
                "parameters": "map[string]interface {}", "messages": "[]api.Message", "stream": "*bool",
                "quantize": "string", "quantization": "string", "license": "interface {}", "renderer": "string",
                "parser": "string", "requires": "string", "draft_quantize": "string", "remote_host": "string",
                "draft_files": "map[string]string", "info": "map[string]interface {}", "convert": "string"}
    model: StrictStr = ""
    name: StrictStr = ""
    from_: StrictStr = Field("", alias="from")
    files: dict[str, StrictStr] | None = None
    adapters: dict[str, StrictStr] | None = None
    template: StrictStr = ""
    system: StrictStr = ""
    license: Any = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    stream: StrictBool | None = None
    quantize: StrictStr = ""
    quantization: StrictStr = ""
    renderer: StrictStr = ""
    parser: StrictStr = ""
    requires: StrictStr = ""
    draft_files: dict[str, StrictStr] | None = None
    draft_quantize: StrictStr = ""
    convert: StrictStr = ""  # ollmlx: "mlx" stores a GGUF model as an MLX model

    @property
    def target(self) -> str:
        return self.model or self.name


class EmbedRequest(GoModel):
    """POST /api/embed (spec §4): `input` is a string or a list of strings, checked by the service."""

    GO_NAME = "EmbedRequest"
    GO_TYPES = {"model": "string", "input": "interface {}", "truncate": "*bool", "dimensions": "int",
                "keep_alive": "*api.Duration", "options": "map[string]interface {}"}
    model: StrictStr = ""
    input: Any = None
    truncate: StrictBool | None = None
    dimensions: StrictInt = 0
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class EmbeddingsRequest(GoModel):
    """POST /api/embeddings, the legacy single-prompt route (spec §5)."""

    GO_NAME = "EmbeddingRequest"
    GO_TYPES = {"model": "string", "prompt": "string", "keep_alive": "*api.Duration",
                "options": "map[string]interface {}"}
    model: StrictStr = ""
    prompt: StrictStr = ""
    keep_alive: Any = None
    options: dict[str, Any] | None = None
