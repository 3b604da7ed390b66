"""One generate or chat request end to end: resolve the model, check capabilities, merge options,
build the prompt, run it on a runner, and produce Ollama's response chunks with their metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ollmlx.api.schemas import ChatRequest, GenerateRequest
from ollmlx.api.wire import rfc3339nano
from ollmlx.durations import GoDurationError, KeepAliveError, parse_keep_alive
from ollmlx.errors import (
    BadRequest,
    InvalidModelName,
    ModelNotFound,
    ModelRequired,
    OllmlxError,
    PromptOverBudget,
    RequestCanceled,
    RunnerError,
)
from ollmlx.options import OptionTypeError, default_options, merge_options
from ollmlx.runner.protocol import CompletionRequest, SamplingOptions
from ollmlx.sched.scheduler import Loaded, Scheduler
from ollmlx.serve import prompt as prompts
from ollmlx.serve.capabilities import capabilities, chat_template_of
from ollmlx.serve.loading import load_request
from ollmlx.serve.parsers import Delta, OutputParser, build_output_parser
from ollmlx.serve.parsers.harmony import (
    END,
    FINAL,
    MESSAGE,
    START,
    FunctionNames,
    HarmonyParser,
    prefill_for,
    uses_harmony,
)
from ollmlx.serve.parsers.thinking import strip_thinking
from ollmlx.serve.template_choice import go_template_in_use
from ollmlx.serve.truncate import IMAGE_TOKENS, Fitted, fit_messages
from ollmlx.store.names import parse_name
from ollmlx.store.store import Model, Store
from ollmlx.text import ollama_template

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


def request_think(raw: Any, model: str, caps: list[str]) -> tuple[Think, bool]:
    """A request's `think`, checked against the model: (think, is_think_set). A thinking model
    thinks unless asked not to (spec §9); a defaulted value counts as set, as Ollama fills in the
    request before rendering."""
    think = parse_think(raw)
    if think.value and "thinking" not in caps:
        raise BadRequest(f'"{model}" does not support thinking')
    if think.value is None and "thinking" in caps:
        return Think(True, "medium"), True
    return think, think.value is not None


def output_parser(model: Model, prompt: str, think: Think, tools: list[dict[str, Any]] | None,
                  template_override: str | None = None) -> OutputParser | None:
    go_template = template_override or go_template_in_use(model)
    return build_output_parser(go_template=go_template, chat_template=None if go_template else chat_template_of(model),
                               prompt=prompt, tools=tools, think=bool(think.value))


def harmony_names(model: Model, template_override: str | None = None) -> FunctionNames | None:
    """A per-request tool-name map when the model speaks harmony (gpt-oss), else None."""
    return FunctionNames() if uses_harmony(model.config, template_override or go_template_in_use(model)) else None


def harmony_parser(names: FunctionNames, text: str, prefill: str, constrained: bool) -> tuple[HarmonyParser, str]:
    """The parser and the prompt. With a `format` the answer is written straight into the final
    channel (the grammar allows no harmony header), so the prompt opens that channel for it."""
    if constrained and prefill != FINAL and text.endswith(START + "assistant"):
        return HarmonyParser(names, FINAL), text + FINAL.removeprefix(START + "assistant")
    return HarmonyParser(names, prefill), text


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


async def gguf_read(model: Model) -> None:
    """A model's GGUF metadata, read once: the first read takes seconds, so off the event loop;
    later requests find it on the model and skip the thread hop (~0.2 ms of a warm turn's wait)."""
    if "gguf" not in vars(model):  # functools.cached_property keeps its value in the instance
        await asyncio.to_thread(getattr, model, "gguf")


def keep_alive_of(raw: Any) -> float | None:
    try:
        return parse_keep_alive(raw)
    except (GoDurationError, KeepAliveError) as exc:
        raise BadRequest(str(exc)) from exc


def sampling(opts: dict[str, Any]) -> SamplingOptions:
    return SamplingOptions(**{k: opts[k] for k in SamplingOptions.model_fields if k in opts and opts[k] is not None})


class RunObserver(Protocol):
    """Where per-request figures go (the /metrics registry, ollmlx/api/metrics.py)."""

    def first_token(self, model: str, seconds: float) -> None: ...

    def token_gap_observer(self, model: str) -> Callable[[float], None]: ...

    def finished(self, model: str, prompt_tokens: int, eval_tokens: int) -> None: ...


class Inference:
    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler
        self.observer: RunObserver | None = None

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

    async def _run(self, model: Model, opts: dict[str, Any], keep_alive: float | None, creq: CompletionRequest,
                   t0: float, kind: str = "generate",
                   held: tuple[Loaded, float] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yields the runner's chunks, the last one extended with Ollama's durations, and logs one
        INFO line saying what became of the request (per-chunk work: one clock read, one observe).
        `held`: a runner the caller acquired (and releases) with its load duration."""
        name = model.name.display_shortest()
        log.debug("%s request model=%s options=%s prompt=%r", kind, name, creq.options.model_dump(exclude_none=True),
                  creq.prompt[:4000])
        loaded = None
        ttft: float | None = None
        load_duration = 0.0
        done: dict[str, Any] = {}
        ended = "error"
        try:
            if held is not None:
                loaded, load_duration = held
            else:
                loaded = await self.scheduler.acquire(load_request(model, opts), keep_alive)
                load_duration = time.perf_counter() - t0
            gap = self.observer.token_gap_observer(name) if self.observer else None
            last = 0.0
            try:
                async for chunk in loaded.runner.completion(creq):
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                        if self.observer:
                            self.observer.first_token(name, ttft)
                    elif gap is not None:
                        gap(now - last)
                    last = now
                    if chunk.get("done"):
                        chunk["total_duration"] = int((now - t0) * 1e9)
                        chunk["load_duration"] = int(load_duration * 1e9)
                        done = chunk
                    yield chunk
            finally:
                if held is None:
                    self.scheduler.release(loaded)
            ended = str(done.get("done_reason") or "stop")
        except (asyncio.CancelledError, GeneratorExit, RequestCanceled):
            ended = "canceled"
            raise
        except PromptOverBudget:
            ended = ""  # not an end: the caller truncates the conversation and asks again
            raise
        except RunnerError as exc:
            ended = f"error: {exc.message}"
            if self.scheduler.closing:
                raise RunnerError("the server is shutting down") from exc
            raise
        except OllmlxError as exc:
            ended = f"error {exc.status}: {exc.message}"
            raise
        finally:
            prompt_tokens, eval_tokens = int(done.get("prompt_eval_count") or 0), int(done.get("eval_count") or 0)
            if not ended:
                log.debug("%s model=%s: the conversation is over num_ctx, truncating", kind, name)
            else:
                if self.observer:
                    self.observer.finished(name, prompt_tokens, eval_tokens)
                log.info("%s model=%s engine=%s runner_pid=%s prompt_tokens=%d eval_tokens=%d load=%.3fs ttft=%s "
                         "total=%.3fs ended=%s", kind, name, loaded.req.engine if loaded else "-",
                         loaded.runner.pid if loaded else "-", prompt_tokens, eval_tokens, load_duration,
                         f"{ttft:.3f}s" if ttft is not None else "-", time.perf_counter() - t0, ended)

    # -- /api/generate ---------------------------------------------------------------------
    async def generate(self, req: GenerateRequest) -> AsyncIterator[dict[str, Any]]:
        """GenerateHandler's order of checks: top_logprobs, the model, unload, raw, think,
        capabilities, options; then the model is loaded before the prompt is built (spec §2)."""
        t0 = time.perf_counter()
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        model = self.resolve(req.model, chat=False)
        await gguf_read(model)
        keep_alive = keep_alive_of(req.keep_alive)
        if not req.prompt and keep_alive == 0:  # unload, before any capability check
            await self.scheduler.unload_key(model.digest)
            yield {"model": req.model, "created_at": rfc3339nano(), "response": "", "done": True,
                   "done_reason": "unload"}
            return
        caps = capabilities(model)
        if req.raw and (req.template or req.system or req.context):
            raise BadRequest("raw mode does not support template, system, or context")
        think, think_set = request_think(req.think, req.model, caps)
        names = None if req.raw else harmony_names(model, req.template or None)
        if names is not None and think.level == "max":
            think = Think(think.value, "high")  # harmony has no "max" level
        if "completion" not in caps:
            raise BadRequest(f'"{req.model}" does not support generate')
        if req.suffix and "insert" not in caps:
            raise BadRequest(f"{model.name.display_long()} does not support insert")
        opts = self.options(model, req.options)
        loaded, load_duration = await self._acquire(model, opts, keep_alive, t0)
        try:
            if not req.prompt:  # load only
                yield {"model": req.model, "created_at": rfc3339nano(), "response": "", "done": True,
                       "done_reason": "load"}
                return
            async for out in _fitted(lambda defer: self._generate(
                    req, model, caps, opts, keep_alive, think, think_set, names, t0, (loaded, load_duration), defer)):
                yield out
        finally:
            self.scheduler.release(loaded)

    async def _generate(self, req: GenerateRequest, model: Model, caps: list[str], opts: dict[str, Any],
                        keep_alive: float | None, think: Think, think_set: bool, names: FunctionNames | None,
                        t0: float, held: tuple[Loaded, float], defer: bool) -> AsyncIterator[dict[str, Any]]:
        """One try at the generation; with `defer`, the runner checks the untruncated prompt's token
        count and may refuse it (PromptOverBudget) before any output."""
        fitted = await self._generate_prompt(model, req, held[0], opts, think, think_set,
                                             defer and not req.debug_render_only)
        text = fitted.prompt
        if req.debug_render_only:
            yield {"model": req.model, "created_at": rfc3339nano(), "response": "", "done": False,
                   "_debug_info": {"rendered_template": text, "image_count": len(req.images or [])}}
            return
        check_images(model, caps, req.images or [])
        parser: OutputParser | None
        if names is not None:
            parser, text = harmony_parser(names, text, START + "assistant", bool(req.format))
        else:
            parser = output_parser(model, text, think, None, req.template or None)
        creq = CompletionRequest(prompt=text, options=sampling(opts), format=req.format or None,
                                 logprobs=req.logprobs, top_logprobs=req.top_logprobs,
                                 shift=req.shift is not False, truncate=req.truncate is not False,
                                 return_tokens=not req.raw, images=req.images or [], fit_tokens=fitted.budget)
        async for chunk in self._run(model, opts, keep_alive, creq, t0, held=held):
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
                if chunk.get("tokens"):
                    out["context"] = chunk["tokens"]
                _metrics(out, chunk)
            yield out

    async def _acquire(self, model: Model, opts: dict[str, Any], keep_alive: float | None,
                       t0: float) -> tuple[Loaded, float]:
        """The model's runner (loaded if need be), and the load_duration so far."""
        try:
            loaded = await self.scheduler.acquire(load_request(model, opts), keep_alive)
        except (asyncio.CancelledError, OllmlxError) as exc:  # what became of a request that never ran
            ended = ("canceled" if isinstance(exc, asyncio.CancelledError | RequestCanceled)
                     else f"error {exc.status}: {exc.message}")
            log.info("request model=%s engine=- runner_pid=- prompt_tokens=0 eval_tokens=0 load=%.3fs ttft=- "
                     "total=%.3fs ended=%s", model.name.display_shortest(), time.perf_counter() - t0,
                     time.perf_counter() - t0, ended)
            raise
        return loaded, time.perf_counter() - t0

    def _fit_context(self, loaded: Loaded, opts: dict[str, Any]) -> int:
        """num_ctx for prompt fitting: the request's, but no more than the runner serves."""
        num_ctx = int(opts.get("num_ctx") or 0)
        served = loaded.info.num_ctx if loaded.info else 0
        return min(num_ctx, served) if num_ctx and served else (num_ctx or served)

    async def _fit(self, model: Model, loaded: Loaded, opts: dict[str, Any], msgs: list[dict[str, Any]],
                   truncate: bool, render: Callable[[list[dict[str, Any]]], str], defer: bool = False) -> Fitted:
        async def tokenize(text: str) -> list[int]:
            return await loaded.runner.tokenize(text, add_special=True)

        return await fit_messages(msgs, render, tokenize, self._fit_context(loaded, opts), truncate=truncate,
                                  per_image=IMAGE_TOKENS if model.projector_paths else 0, defer=defer)

    async def _generate_prompt(self, model: Model, req: GenerateRequest, loaded: Loaded, opts: dict[str, Any],
                               think: Think, think_set: bool, defer: bool) -> Fitted:
        """The text sent to the runner: the prompt as is (raw); the FIM template (suffix); the
        request `template` run on the values; else the chat-like render of system, the model's
        MESSAGEs and the prompt, truncated to num_ctx. The deprecated `context` comes back as text
        in front (spec §2)."""
        if req.raw:
            return Fitted([], req.prompt, 0)
        if req.template:
            try:
                ollama_template.parse(req.template)
            except ollama_template.TemplateError as exc:
                raise prompts.TemplateRenderError(str(exc)) from exc
        prefix = await loaded.runner.detokenize(req.context) if req.context is not None else ""
        if req.suffix:
            return Fitted([], prefix + prompts.render_fim(model, req.prompt, req.suffix, req.template or None), 0)
        msgs: list[dict[str, Any]] = []
        system = req.system or model.system
        if system:
            msgs.append({"role": "system", "content": system})
        if req.context is None:
            msgs.extend(m for m in model.messages if isinstance(m, dict))
        msgs.append({"role": "user", "content": req.prompt, **({"images": req.images} if req.images else {})})

        def render(kept: list[dict[str, Any]]) -> str:
            return prompts.render(model, prompts.PromptRequest(
                kept, think=think.value, think_level=think.level, is_think_set=think_set,
                template_override=req.template or None))

        if req.template:  # the request's template runs directly on the values
            return Fitted(msgs, prefix + render(msgs), 0)
        fitted = await self._fit(model, loaded, opts, msgs, req.truncate is not False, render, defer)
        fitted.prompt = prefix + fitted.prompt
        return fitted

    # -- /api/chat -------------------------------------------------------------------------
    async def chat(self, req: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        """ChatHandler's order of checks (spec §3): top_logprobs, the model, unload, think,
        capabilities, options; the model loads, then the history is rendered and truncated."""
        t0 = time.perf_counter()
        if not 0 <= req.top_logprobs <= 20:
            raise BadRequest("top_logprobs must be between 0 and 20")
        model = self.resolve(req.model, chat=True)
        await gguf_read(model)
        keep_alive = keep_alive_of(req.keep_alive)
        messages = [m.wire() for m in (req.messages or [])]
        if not messages and keep_alive == 0:  # unload, before any capability check
            await self.scheduler.unload_key(model.digest)
            yield {"model": req.model, "created_at": rfc3339nano(), "message": {"role": "assistant", "content": ""},
                   "done": True, "done_reason": "unload"}
            return
        caps = capabilities(model)
        think, think_set = request_think(req.think, req.model, caps)
        if "completion" not in caps:
            raise BadRequest(f'"{req.model}" does not support chat')
        if req.tools and "tools" not in caps:
            raise BadRequest(f"{model.name.display_long()} does not support tools")
        opts = self.options(model, req.options)
        loaded, load_duration = await self._acquire(model, opts, keep_alive, t0)
        try:
            if not messages:  # load only
                yield {"model": req.model, "created_at": rfc3339nano(),
                       "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "load"}
                return
            async for out in _fitted(lambda defer: self._chat(
                    req, model, caps, opts, keep_alive, messages, think, think_set, t0, (loaded, load_duration), defer)):
                yield out
        finally:
            self.scheduler.release(loaded)

    async def _chat(self, req: ChatRequest, model: Model, caps: list[str], opts: dict[str, Any],
                    keep_alive: float | None, messages: list[dict[str, Any]], think: Think, think_set: bool,
                    t0: float, held: tuple[Loaded, float], defer: bool) -> AsyncIterator[dict[str, Any]]:
        """One try at the chat; with `defer`, the runner checks the untruncated conversation's
        token count and may refuse it (PromptOverBudget) before any output."""
        msgs = [m for m in model.messages if isinstance(m, dict)] + messages
        if model.system and messages[0].get("role") != "system":  # the request's first message decides
            msgs.insert(0, {"role": "system", "content": model.system})
        msgs = strip_earlier_thinking(model, msgs)
        names = harmony_names(model)
        tools = names.tools(req.tools) if names is not None else req.tools
        if names is not None and think.level == "max":
            think = Think(think.value, "high")  # harmony has no "max" level

        def render(kept: list[dict[str, Any]]) -> str:
            return prompts.render(model, prompts.PromptRequest(
                kept, tools=tools, think=think.value, think_level=think.level, is_think_set=think_set))

        fitted = await self._fit(model, held[0], opts, msgs, req.truncate is not False, render,
                                 defer and not req.debug_render_only)
        msgs, text = fitted.messages, fitted.prompt
        if req.debug_render_only:
            yield {"model": req.model, "created_at": rfc3339nano(), "message": {"role": "assistant", "content": ""},
                   "done": False, "_debug_info": {"rendered_template": text,
                                                  "image_count": sum(len(m.get("images") or []) for m in msgs)}}
            return
        images = [img for m in msgs for img in (m.get("images") or [])]  # in [img-N] order
        check_images(model, caps, images)
        parser: OutputParser | None
        # a harmony model that reasons does so unconstrained, then answers in the final channel
        prefill = prefill_for(msgs) if names is not None else ""
        harmony_two_pass = (names is not None and bool(req.format) and bool(think.value)
                            and prefill == START + "assistant" and text.endswith(START + "assistant"))
        if names is not None:
            parser, text = harmony_parser(names, text, prefill, bool(req.format) and not harmony_two_pass)
        else:
            parser = output_parser(model, text, think, req.tools or None)
        # a thinking model thinks unconstrained first; `format` applies once the answer starts
        two_pass = bool(req.format) and parser is not None and (parser.thinking is not None or harmony_two_pass)
        creq = CompletionRequest(prompt=text, options=sampling(opts), format=None if two_pass else req.format or None,
                                 logprobs=req.logprobs, top_logprobs=req.top_logprobs,
                                 shift=req.shift is not False, truncate=req.truncate is not False, images=images,
                                 fit_tokens=fitted.budget)
        thought: list[str] = []
        restart = False
        run: Any = self._run(model, opts, keep_alive, creq, t0, "chat", held=held)  # an async generator: closed below
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
        if names is not None:  # harmony: the analysis closed and the final channel opened (spec §10)
            text += "<|channel|>analysis" + MESSAGE + "".join(thought) + END + FINAL
            parser = HarmonyParser(names, FINAL)
        else:
            msgs.append({"role": "assistant", "content": "", "thinking": "".join(thought)})
            text = prompts.render(model, prompts.PromptRequest(
                msgs, tools=req.tools, think=think.value, think_level=think.level, is_think_set=think_set))
            parser = output_parser(model, text, Think(False, None), req.tools or None)
        creq = creq.model_copy(update={"prompt": text, "format": req.format, "fit_tokens": None})
        async for chunk in self._run(model, opts, keep_alive, creq, t0, "chat"):
            delta = parser.feed(chunk.get("content", ""), bool(chunk.get("done"))) if parser \
                else Delta(chunk.get("content", ""))
            if not delta.hold or chunk.get("logprobs"):
                for out in _chat_chunks(req.model, chunk, delta):
                    yield out


async def _fitted(attempt: Callable[[bool], AsyncIterator[dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
    """A request's output, first with the num_ctx check left to the runner (`attempt(True)`); if
    the runner refuses the prompt (before any output), truncated by the server (`attempt(False)`)."""
    try:
        async for out in attempt(True):
            yield out
    except PromptOverBudget:
        async for out in attempt(False):
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
