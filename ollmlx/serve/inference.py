"""One generate or chat request end to end: resolve the model, check capabilities, merge options,
build the prompt, run it on a runner, and produce Ollama's response chunks with their metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ollmlx.api.schemas import ChatRequest, GenerateRequest
from ollmlx.api.wire import rfc3339nano
from ollmlx.durations import GoDurationError, KeepAliveError, parse_keep_alive
from ollmlx.errors import BadRequest, InvalidModelName, ModelNotFound, ModelRequired, OllmlxError
from ollmlx.options import OptionTypeError, default_options, merge_options
from ollmlx.runner.protocol import CompletionRequest, SamplingOptions
from ollmlx.sched.scheduler import Scheduler
from ollmlx.serve import prompt as prompts
from ollmlx.serve.capabilities import capabilities, chat_template_of
from ollmlx.serve.loading import load_request
from ollmlx.serve.parsers import Delta, OutputParser, build_output_parser
from ollmlx.serve.parsers.thinking import strip_thinking
from ollmlx.store.names import parse_name
from ollmlx.store.store import Model, Store

log = logging.getLogger("ollmlx.serve")
THINK_LEVELS = ("high", "medium", "low", "max")


class OptionError(OllmlxError):
    status = 500


@dataclass
class Think:
    value: bool | None
    level: str | None


def parse_think(raw: Any) -> Think:
    if raw is None:
        return Think(None, None)
    if isinstance(raw, bool):
        return Think(raw, "medium" if raw else None)
    if isinstance(raw, str):
        if raw in THINK_LEVELS:
            return Think(True, raw)
        if raw in ("true", "false"):
            return Think(raw == "true", "medium" if raw == "true" else None)
        raise BadRequest(f'invalid think value: "{raw}" (must be "high", "medium", "low", "max", true, or false)')
    raise BadRequest(f"think must be a boolean or string, got {type(raw).__name__}")


def default_think(think: Think, caps: list[str]) -> tuple[Think, bool]:
    """(think, is_think_set): a thinking model thinks unless asked not to (spec §9); a defaulted
    value counts as set, as Ollama fills in the request before rendering."""
    if think.value is None and "thinking" in caps:
        return Think(True, "medium"), True
    return think, think.value is not None


def output_parser(model: Model, prompt: str, think: Think, tools: list[dict[str, Any]] | None,
                  template_override: str | None = None) -> OutputParser | None:
    go_template = template_override or model.template
    return build_output_parser(go_template=go_template, chat_template=None if go_template else chat_template_of(model),
                               prompt=prompt, tools=tools, think=bool(think.value))


def check_images(model: Model, caps: list[str], images: list[str]) -> None:
    """Images reach the runner unchecked by capability (spec §12); a runner without vision
    refuses them as Ollama's do: llama-server without a projector (400), the MLX runner (500)."""
    if not images or "vision" in caps:
        return
    if model.format == "gguf":
        raise BadRequest("image input is not supported - hint: if this is unexpected, you may need to provide the mmproj")
    raise OllmlxError("this model does not support image input")


def strip_earlier_thinking(model: Model, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """filterThinkTags: for qwen3 / deepseek-r1, <think>…</think> leaves assistant messages that
    come before the last user message."""
    if model.config.get("model_family") != "qwen3" and model.name.model != "deepseek-r1":
        return msgs
    last_user = max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=-1)
    return [{**m, "content": strip_thinking(str(m.get("content") or ""))}
            if m.get("role") == "assistant" and i < last_user else m for i, m in enumerate(msgs)]


def keep_alive_of(raw: Any) -> float | None:
    try:
        return parse_keep_alive(raw)
    except (GoDurationError, KeepAliveError) as exc:
        raise BadRequest(str(exc)) from exc


def sampling(opts: dict[str, Any]) -> SamplingOptions:
    return SamplingOptions(**{k: opts[k] for k in SamplingOptions.model_fields if k in opts and opts[k] is not None})


class Inference:
    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler

    def resolve(self, name: str, *, chat: bool) -> Model:
        if not name:
            if chat:
                raise ModelRequired()
            raise ModelNotFound("")
        parsed = parse_name(name)
        if not parsed.is_valid():
            raise InvalidModelName()
        return self.store.load(parsed, display=name)

    def options(self, model: Model, request_options: dict[str, Any] | None) -> dict[str, Any]:
        try:
            return merge_options(default_options(), model.params, request_options)
        except OptionTypeError as exc:
            raise OptionError(str(exc)) from exc

    async def _load_or_unload(self, model: Model, keep_alive: float | None, opts: dict[str, Any],
                              req_model: str, t0: float) -> dict[str, Any]:
        if keep_alive is not None and keep_alive == 0:
            await self.scheduler.unload_key(model.digest)
            return {"model": req_model, "created_at": rfc3339nano(), "done": True, "done_reason": "unload"}
        loaded = await self.scheduler.acquire(load_request(model, opts), keep_alive)
        self.scheduler.release(loaded)
        return {"model": req_model, "created_at": rfc3339nano(), "done": True, "done_reason": "load"}

    async def _run(self, model: Model, opts: dict[str, Any], keep_alive: float | None, creq: CompletionRequest,
                   t0: float) -> AsyncIterator[dict[str, Any]]:
        """Yields the runner's chunks, the last one extended with Ollama's durations."""
        loaded = await self.scheduler.acquire(load_request(model, opts), keep_alive)
        load_duration = time.perf_counter() - t0
        try:
            async for chunk in loaded.runner.completion(creq):
                if chunk.get("done"):
                    chunk["total_duration"] = int((time.perf_counter() - t0) * 1e9)
                    chunk["load_duration"] = int(load_duration * 1e9)
                yield chunk
        finally:
            self.scheduler.release(loaded)

    # -- /api/generate ---------------------------------------------------------------------
    async def generate(self, req: GenerateRequest) -> AsyncIterator[dict[str, Any]]:
        t0 = time.perf_counter()
        model = self.resolve(req.model, chat=False)
        keep_alive = keep_alive_of(req.keep_alive)
        caps = capabilities(model)
        opts = self.options(model, req.options)
        if not req.prompt and not req.suffix and not req.debug_render_only and keep_alive == 0:
            status = await self._load_or_unload(model, keep_alive, opts, req.model, t0)
            yield {**status, "response": ""}
            return
        if "completion" not in caps:
            raise BadRequest(f'"{req.model}" does not support generate')
        if req.raw and (req.template or req.system or req.context):
            raise BadRequest("raw mode does not support template, system, or context")
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        think = parse_think(req.think)
        if think.value and "thinking" not in caps:
            raise BadRequest(f'"{req.model}" does not support thinking')
        think, think_set = default_think(think, caps)
        if not req.prompt and not req.suffix and not req.debug_render_only:
            status = await self._load_or_unload(model, keep_alive, opts, req.model, t0)
            yield {**status, "response": ""}
            return

        if req.raw:
            text = req.prompt
        elif req.suffix:
            if "insert" not in caps:
                raise BadRequest(f"{model.name.display_long()} does not support insert")
            text = prompts.render_fim(model, req.prompt, req.suffix, req.template or None)
        else:
            msgs: list[dict[str, Any]] = []
            system = req.system or model.system
            if system:
                msgs.append({"role": "system", "content": system})
            if not req.context:
                msgs.extend(m for m in model.messages if isinstance(m, dict))
            msgs.append({"role": "user", "content": req.prompt, **({"images": req.images} if req.images else {})})
            text = prompts.render(model, prompts.PromptRequest(
                msgs, think=think.value, think_level=think.level, is_think_set=think_set,
                template_override=req.template or None))
        if req.debug_render_only:
            yield {"model": req.model, "created_at": rfc3339nano(), "response": "", "done": False,
                   "_debug_info": {"rendered_template": text, "image_count": len(req.images or [])}}
            return
        check_images(model, caps, req.images or [])
        creq = CompletionRequest(prompt=text, options=sampling(opts), format=req.format or None,
                                 logprobs=req.logprobs, top_logprobs=req.top_logprobs,
                                 shift=req.shift is not False, truncate=req.truncate is not False,
                                 return_tokens=not req.raw, images=req.images or [])
        parser = output_parser(model, text, think, None, req.template or None)
        if req.context:  # deprecated continuation: earlier tokens come back as text before the prompt
            creq.prompt = await self._detokenize(model, opts, keep_alive, req.context) + text
        async for chunk in self._run(model, opts, keep_alive, creq, t0):
            delta = parser.feed(chunk.get("content", ""), bool(chunk.get("done"))) if parser \
                else Delta(chunk.get("content", ""))
            out: dict[str, Any] = {"model": req.model, "created_at": rfc3339nano(), "response": delta.content}
            if delta.thinking:
                out["thinking"] = delta.thinking
            out["done"] = bool(chunk.get("done"))
            if chunk.get("logprobs"):
                out["logprobs"] = chunk["logprobs"]
            if chunk.get("done"):
                out["done_reason"] = chunk.get("done_reason", "stop")
                if chunk.get("tokens") is not None:
                    out["context"] = chunk["tokens"]
                _metrics(out, chunk)
            yield out

    async def _detokenize(self, model: Model, opts: dict[str, Any], keep_alive: float | None,
                          tokens: list[int]) -> str:
        loaded = await self.scheduler.acquire(load_request(model, opts), keep_alive)
        try:
            return await loaded.runner.detokenize(tokens)
        finally:
            self.scheduler.release(loaded)

    # -- /api/chat -------------------------------------------------------------------------
    async def chat(self, req: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        t0 = time.perf_counter()
        model = self.resolve(req.model, chat=True)
        keep_alive = keep_alive_of(req.keep_alive)
        caps = capabilities(model)
        opts = self.options(model, req.options)
        messages = [m.wire() for m in (req.messages or [])]
        if not messages and keep_alive == 0:
            status = await self._load_or_unload(model, keep_alive, opts, req.model, t0)
            yield {**status, "message": {"role": "assistant", "content": ""}}
            return
        if "completion" not in caps:
            raise BadRequest(f'"{req.model}" does not support chat')
        if req.tools and "tools" not in caps:
            raise BadRequest(f"{model.name.display_long()} does not support tools")
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        think = parse_think(req.think)
        if think.value and "thinking" not in caps:
            raise BadRequest(f'"{req.model}" does not support thinking')
        think, think_set = default_think(think, caps)
        if not messages:
            status = await self._load_or_unload(model, keep_alive, opts, req.model, t0)
            yield {**status, "message": {"role": "assistant", "content": ""}}
            return
        msgs = [m for m in model.messages if isinstance(m, dict)] + messages
        if model.system and messages[0].get("role") != "system":  # the request's first message decides
            msgs.insert(0, {"role": "system", "content": model.system})
        msgs = strip_earlier_thinking(model, msgs)
        text = prompts.render(model, prompts.PromptRequest(
            msgs, tools=req.tools, think=think.value, think_level=think.level, is_think_set=think_set))
        if req.debug_render_only:
            yield {"model": req.model, "created_at": rfc3339nano(), "message": {"role": "assistant", "content": ""},
                   "done": False, "_debug_info": {"rendered_template": text,
                                                  "image_count": sum(len(m.get("images") or []) for m in msgs)}}
            return
        images = [img for m in msgs for img in (m.get("images") or [])]  # in [img-N] order
        check_images(model, caps, images)
        parser = output_parser(model, text, think, req.tools or None)
        # a thinking model thinks unconstrained first; `format` applies once the answer starts
        two_pass = bool(req.format) and parser is not None and parser.thinking is not None
        creq = CompletionRequest(prompt=text, options=sampling(opts), format=None if two_pass else req.format or None,
                                 logprobs=req.logprobs, top_logprobs=req.top_logprobs,
                                 shift=req.shift is not False, truncate=req.truncate is not False, images=images)
        thought: list[str] = []
        restart = False
        run: Any = self._run(model, opts, keep_alive, creq, t0)  # an async generator: closed below
        try:
            async for chunk in run:
                delta = parser.feed(chunk.get("content", ""), bool(chunk.get("done"))) if parser \
                    else Delta(chunk.get("content", ""))
                thought.append(delta.thinking)
                if two_pass and delta.content and "".join(thought):
                    restart = True  # the thinking is over: constrain what follows (spec §10)
                    if delta.thinking:
                        yield _chat_chunk(req.model, chunk, Delta(thinking=delta.thinking), final=False)
                    break
                if delta.hold and not chunk.get("logprobs"):
                    continue  # the parsers are buffering: Ollama sends nothing for this chunk
                for out in _chat_chunks(req.model, chunk, delta):
                    yield out
        finally:
            await run.aclose()
        if not restart:
            return
        # again, with the thinking as an assistant message and the format applied from the start
        msgs.append({"role": "assistant", "content": "", "thinking": "".join(thought)})
        text = prompts.render(model, prompts.PromptRequest(
            msgs, tools=req.tools, think=think.value, think_level=think.level, is_think_set=think_set))
        parser = output_parser(model, text, Think(False, None), req.tools or None)
        creq = creq.model_copy(update={"prompt": text, "format": req.format})
        async for chunk in self._run(model, opts, keep_alive, creq, t0):
            delta = parser.feed(chunk.get("content", ""), bool(chunk.get("done"))) if parser \
                else Delta(chunk.get("content", ""))
            if not delta.hold or chunk.get("logprobs"):
                for out in _chat_chunks(req.model, chunk, delta):
                    yield out


def _chat_chunks(model: str, chunk: dict[str, Any], delta: Delta) -> list[dict[str, Any]]:
    """Tool calls come on a chunk of their own, with empty content: text parsed before them in the
    same runner chunk goes out first."""
    if delta.tool_calls and delta.content:
        return [_chat_chunk(model, chunk, Delta(delta.content, delta.thinking), final=False),
                _chat_chunk(model, chunk, Delta(tool_calls=delta.tool_calls))]
    return [_chat_chunk(model, chunk, delta)]


def _chat_chunk(model: str, chunk: dict[str, Any], delta: Delta, final: bool = True) -> dict[str, Any]:
    """A /api/chat chunk from a runner chunk and what the parsers made of its text."""
    message: dict[str, Any] = {"role": "assistant", "content": delta.content}
    if delta.thinking:
        message["thinking"] = delta.thinking
    if delta.tool_calls:
        message["tool_calls"] = delta.tool_calls
    done = final and bool(chunk.get("done"))
    out: dict[str, Any] = {"model": model, "created_at": rfc3339nano(), "message": message, "done": done}
    if chunk.get("logprobs") and final:
        out["logprobs"] = chunk["logprobs"]
    if done:
        out["done_reason"] = chunk.get("done_reason", "stop")
        _metrics(out, chunk)
    return out


def _metrics(out: dict[str, Any], chunk: dict[str, Any]) -> None:
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration"):
        if chunk.get(key):
            out[key] = chunk[key]
