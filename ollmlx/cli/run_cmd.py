"""`ollmlx run MODEL [PROMPT...]` (cmd/cmd.go RunHandler, generate, chat, generateEmbedding;
spec §23): a one-shot answer through /api/generate, an embedding through /api/embed, or the
interactive session (interactive.py) through /api/chat."""

from __future__ import annotations

import base64
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ollmlx.cli.client import APIError, Client
from ollmlx.cli.display import ResponsePrinter
from ollmlx.cli.humanize import metrics_summary
from ollmlx.cli.progress import Progress, Spinner
from ollmlx.durations import GoDurationError, format_go_duration_ns, parse_go_duration_ns
from ollmlx.options import _shortest_text, _to_f32

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class RunOptions:
    model: str
    parent_model: str = ""
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    word_wrap: bool = True
    format: str = ""
    system: str = ""
    images: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    multimodal: bool = False
    keep_alive: str | int | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    verbose: bool = False
    markdown: bool = False

    def copy(self) -> RunOptions:
        return copy.deepcopy(self)


def parse_think(value: str | None) -> bool | str | None:
    """--think: bare or `true` → True, `false` → False, or a level."""
    if value is None:
        return None
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    if value in THINK_LEVELS:
        return value
    raise APIError(0, f'invalid value for --think: "{value}" (must be true, false, high, medium, low, or max)')


def parse_keepalive(value: str | None) -> str | int | None:
    """--keepalive takes a Go duration; the request carries it as Go marshals api.Duration."""
    if not value:
        return None
    try:
        ns = parse_go_duration_ns(value)
    except GoDurationError as exc:
        raise APIError(0, str(exc)) from exc
    return -1 if ns < 0 else format_go_duration_ns(ns)


def infer_think(capabilities: list[str], current: bool | str | None, explicit: bool) -> bool | str | None:
    """inferThinkingOption: an explicit choice stands; else think when the model can."""
    if explicit:
        return current
    return True if "thinking" in capabilities else None


def is_multimodal(info: dict[str, Any]) -> bool:
    caps = info.get("capabilities") or []
    if "vision" in caps or "audio" in caps or info.get("projector_info"):
        return True
    return any(".vision." in k for k in info.get("model_info") or {})


# -- images and audio named in a prompt (cmd/interactive.go extractFileNames) ----------------

FILE_RE = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp|wav)\b")
_UNESCAPES = [("\\ ", " "), ("\\(", "("), ("\\)", ")"), ("\\[", "["), ("\\]", "]"), ("\\{", "{"),
              ("\\}", "}"), ("\\$", "$"), ("\\&", "&"), ("\\;", ";"), ("\\'", "'"), ("\\\\", "\\"),
              ("\\*", "*"), ("\\?", "?"), ("\\~", "~")]
MAX_FILE_SIZE = 100 * 1024 * 1024


def extract_file_names(text: str) -> list[str]:
    return FILE_RE.findall(text)


def normalize_file_path(path: str) -> str:
    out, i = [], 0
    while i < len(path):  # one pass, like strings.Replacer
        for esc, plain in _UNESCAPES:
            if path.startswith(esc, i):
                out.append(plain)
                i += len(esc)
                break
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def sniff_content_type(head: bytes) -> str:
    """The part of http.DetectContentType that decides whether a file may be attached."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:14] == b"WEBPVP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wave"
    try:
        head.decode("utf-8")
        return "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        return "application/octet-stream"


def extract_file_data(text: str, err: TextIO | None = None) -> tuple[str, list[str]]:
    """Attach the images/audio named in `text`; returns the text without them and base64 data."""
    err = err or sys.stderr
    images: list[str] = []
    for fp in extract_file_names(text):
        nfp = normalize_file_path(fp)
        path = Path(nfp)
        if not path.is_file():
            continue
        data = path.read_bytes()
        kind = sniff_content_type(data[:512])
        problem = None
        if kind not in ("image/jpeg", "image/jpg", "image/png", "image/webp", "audio/wave"):
            problem = f"invalid file type: {kind}"
        elif len(data) > MAX_FILE_SIZE:
            problem = "file size exceeds maximum limit (100MB)"
        if problem:
            err.write(f'Couldn\'t process file: "{problem}"\n')
            raise APIError(0, problem)
        err.write(f"Added {'audio' if path.suffix.lower() == '.wav' else 'image'} '{nfp}'\n")
        text = text.replace(f"'{nfp}'", "").replace(f"'{fp}'", "").replace(fp, "")
        images.append(base64.b64encode(data).decode())
    return text.strip(), images


# -- requests ---------------------------------------------------------------------------------

def go_json_float32(v: float) -> str:
    """encoding/json for a float32: shortest digits, `e` notation outside [1e-6, 1e21)."""
    from decimal import Decimal

    f = _to_f32(v)
    if f == 0:
        return "0" if str(f)[0] != "-" else "-0"
    sign = "-" if f < 0 else ""
    a = abs(f)
    text = _shortest_text(a, 32)  # d.ddde±x
    if a < 1e-6 or a >= 1e21:
        mant, _, exp = text.partition("e")
        e = int(exp)
        # strconv writes at least two exponent digits; encoding/json drops the 0 of "e-07"
        return f"{sign}{mant}e-{-e}" if e < 0 else f"{sign}{mant}e+{e:02d}"
    return sign + format(Decimal(text).normalize(), "f")


def embed(client: Client, model: str, text: str, keep_alive: str | int | None,
          truncate: bool | None, dimensions: int) -> None:
    req: dict[str, Any] = {"model": model, "input": text}
    if keep_alive is not None:
        req["keep_alive"] = keep_alive
    if truncate is not None:
        req["truncate"] = truncate
    if dimensions > 0:
        req["dimensions"] = dimensions
    resp = client.post("/api/embed", req)
    embeddings = resp.get("embeddings") or []
    if not embeddings:
        raise APIError(0, "no embeddings returned")
    print("[" + ",".join(go_json_float32(x) for x in embeddings[0]) + "]")


def load_model(client: Client, opts: RunOptions) -> None:
    """loadOrUnloadModel: an empty generate loads the model (and fails early on a bad think)."""
    progress = Progress()
    progress.add(Spinner(""))
    try:
        client.post("/api/show", {"model": opts.model})
        req: dict[str, Any] = {"model": opts.model}
        if opts.keep_alive is not None:
            req["keep_alive"] = opts.keep_alive
        if opts.think is not None:
            req["think"] = opts.think
        client.post("/api/generate", req)
    finally:
        progress.stop_and_clear()


def _printer(opts: RunOptions, out: TextIO, plain: bool) -> Any:
    if opts.markdown:
        from ollmlx.cli.markdown import MarkdownPrinter

        return MarkdownPrinter(out, hide_thinking=opts.hide_thinking)
    return ResponsePrinter(out, wrap=opts.word_wrap, hide_thinking=opts.hide_thinking, plain=plain)


def _stream(client: Client, path: str, body: dict[str, Any], opts: RunOptions, plain: bool,
            pick: Any) -> tuple[Any, dict[str, Any] | None]:
    """Stream a response, printing it; Ctrl+C stops it. Returns the printer and the last chunk
    (None when interrupted)."""
    progress = Progress()
    progress.add(Spinner(""))
    printer = _printer(opts, sys.stdout, plain)
    latest: dict[str, Any] | None = None
    try:
        for chunk in client.stream(path, body):
            content, thinking, calls = pick(chunk)
            if content or not opts.hide_thinking:
                progress.stop_and_clear()
            printer.feed(content, thinking, calls)
            latest = chunk
    except KeyboardInterrupt:
        progress.stop_and_clear()
        printer.finish()
        return printer, None
    finally:
        progress.stop_and_clear()
    printer.finish()
    return printer, latest


def generate(client: Client, opts: RunOptions) -> None:
    """One-shot: /api/generate, the answer on stdout, timings on stderr with --verbose."""
    plain = not sys.stdout.isatty()
    if opts.multimodal:
        opts.prompt, opts.images = extract_file_data(opts.prompt)
    body: dict[str, Any] = {"model": opts.model, "prompt": opts.prompt, "options": opts.options}
    if opts.images:
        body["images"] = opts.images
    if opts.format:
        body["format"] = opts.format
    if opts.system:
        body["system"] = opts.system
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if opts.think is not None:
        body["think"] = opts.think

    def pick(c: dict[str, Any]) -> tuple[str, str, Any]:
        return c.get("response", ""), c.get("thinking", ""), c.get("tool_calls")

    _, latest = _stream(client, "/api/generate", body, opts, plain, pick)
    if latest is None:
        return
    if opts.prompt:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if latest.get("done") and opts.verbose:
        sys.stderr.write(metrics_summary(latest))


def chat(client: Client, opts: RunOptions) -> dict[str, Any] | None:
    """One turn of the interactive session: /api/chat with the session's messages. Returns the
    assistant message, or None when Ctrl+C stopped it."""
    body: dict[str, Any] = {"model": opts.model, "messages": opts.messages, "options": opts.options}
    if opts.format:
        body["format"] = opts.format
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if opts.think is not None:
        body["think"] = opts.think
    role = ["assistant"]

    def pick(c: dict[str, Any]) -> tuple[str, str, Any]:
        msg = c.get("message") or {}
        role[0] = msg.get("role") or role[0]
        return msg.get("content", ""), msg.get("thinking", ""), msg.get("tool_calls")

    printer, latest = _stream(client, "/api/chat", body, opts, False, pick)
    if latest is None:
        sys.stdout.write("\n")
        return None
    if opts.messages:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if opts.verbose:
        sys.stderr.write(metrics_summary(latest))
    msg: dict[str, Any] = {"role": role[0], "content": printer.text}
    if printer.thinking_text:
        msg["thinking"] = printer.thinking_text
    return msg


def show_or_pull(client: Client, name: str, insecure: bool) -> dict[str, Any]:
    """Show the model; a missing one is pulled first, as Ollama does."""
    from ollmlx.cli.transfer_cmd import pull

    try:
        return dict(client.post("/api/show", {"model": name}))
    except APIError as exc:
        if exc.status != 404:
            raise
    try:
        pull(client, name, insecure)
    except APIError as exc:
        # Ollama prints the pull's error; ollmlx first says the model is not here
        if exc.status == 404 or "file does not exist" in exc.message:
            raise APIError(404, f"model '{name}' not found") from exc
        raise APIError(exc.status, f"model '{name}' not found, and pulling it failed: {exc.message}") from exc
    return dict(client.post("/api/show", {"model": name}))


def run(client: Client, model: str, prompts: list[str], flags: dict[str, Any]) -> int:
    interactive = True
    opts = RunOptions(model=model, format=flags.get("format") or "", verbose=bool(flags.get("verbose")),
                      hide_thinking=bool(flags.get("hidethinking")), markdown=bool(flags.get("markdown")))
    think_explicit = flags.get("think") is not None
    opts.think = parse_think(flags.get("think"))
    opts.keep_alive = parse_keepalive(flags.get("keepalive"))
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            prompts = [piped, *prompts]
        interactive = False
    opts.prompt = " ".join(prompts)
    if prompts or not sys.stdout.isatty():
        interactive = False
    # wrap only what goes to a terminal: a pipe gets the model's text as it is
    opts.word_wrap = not flags.get("nowordwrap") and sys.stdout.isatty()

    info = show_or_pull(client, model, bool(flags.get("insecure")))
    caps = info.get("capabilities") or []
    opts.think = infer_think(caps, opts.think, think_explicit)
    opts.multimodal = is_multimodal(info)
    opts.parent_model = (info.get("details") or {}).get("parent_model", "")
    opts.loaded_messages = list(info.get("messages") or [])

    if "embedding" in caps:
        if not opts.prompt:
            raise APIError(0, f'embedding models require input text. Usage: ollmlx run {model} "your text here"')
        embed(client, model, opts.prompt, opts.keep_alive, flags.get("truncate"), int(flags.get("dimensions") or 0))
        return 0
    if "image" in caps:
        raise APIError(0, "image generation models are not currently supported")

    if interactive:
        from ollmlx.cli.display import WordWrap, terminal_width
        from ollmlx.cli.interactive import Session

        load_model(client, opts)
        for msg in opts.loaded_messages:
            if msg.get("role") == "user":
                print(f">>> {msg.get('content', '')}")
            elif msg.get("role") == "assistant":
                sys.stdout.write(WordWrap(terminal_width(), opts.word_wrap).feed(msg.get("content", "")))
                sys.stdout.write("\n\n")
        return Session(client, opts, think_explicit).loop()
    try:
        generate(client, opts)
    except KeyboardInterrupt:
        pass
    return 0
