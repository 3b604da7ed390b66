"""`ollmlx run MODEL [PROMPT]`: one-shot or an interactive chat session (spec §23)."""

from __future__ import annotations

import sys
from typing import Any

from ollmlx.cli.client import APIError, Client

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""


def print_verbose(final: dict[str, Any]) -> None:
    def dur(ns: int) -> str:
        s = ns / 1e9
        if s >= 1:
            return f"{s:.9f}".rstrip("0").rstrip(".") + "s"
        if s >= 1e-3:
            return f"{ns / 1e6:.6f}".rstrip("0").rstrip(".") + "ms"
        return f"{ns / 1e3:.3f}".rstrip("0").rstrip(".") + "µs"

    err = sys.stderr
    err.write(f"total duration:       {dur(final.get('total_duration', 0))}\n")
    err.write(f"load duration:        {dur(final.get('load_duration', 0))}\n")
    pc, pd = final.get("prompt_eval_count", 0), final.get("prompt_eval_duration", 0)
    err.write(f"prompt eval count:    {pc} token(s)\n")
    if pd:
        err.write(f"prompt eval duration: {dur(pd)}\n")
        err.write(f"prompt eval rate:     {pc / (pd / 1e9):.2f} tokens/s\n")
    ec, ed = final.get("eval_count", 0), final.get("eval_duration", 0)
    err.write(f"eval count:           {ec} token(s)\n")
    if ed:
        err.write(f"eval duration:        {dur(ed)}\n")
        err.write(f"eval rate:            {ec / (ed / 1e9):.2f} tokens/s\n")


class Session:
    def __init__(self, client: Client, model: str, opts: dict[str, Any]) -> None:
        self.client = client
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self.verbose = bool(opts.get("verbose"))
        self.format = opts.get("format")
        self.keepalive = opts.get("keepalive")
        self.think = opts.get("think")
        self.options: dict[str, Any] = {}
        self.system: str | None = None

    def chat(self, text: str, out: Any = None) -> str:
        out = out or sys.stdout
        self.messages.append({"role": "user", "content": text})
        msgs = ([{"role": "system", "content": self.system}] if self.system else []) + self.messages
        body: dict[str, Any] = {"model": self.model, "messages": msgs, "options": self.options}
        for key, value in (("format", self.format), ("keep_alive", self.keepalive), ("think", self.think)):
            if value is not None:
                body[key] = value
        reply, final = [], {}
        try:
            for chunk in self.client.stream("/api/chat", body):
                piece = chunk.get("message", {}).get("content", "")
                if piece:
                    out.write(piece)
                    out.flush()
                    reply.append(piece)
                if chunk.get("done"):
                    final = chunk
        except KeyboardInterrupt:
            out.write("\n")
        out.write("\n")
        if not sys.stdin.isatty() or out is not sys.stdout:
            pass
        text_out = "".join(reply)
        self.messages.append({"role": "assistant", "content": text_out})
        if self.verbose and final:
            print_verbose(final)
        return text_out

    def interactive(self) -> None:
        while True:
            try:
                line = input(">>> ")
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print("\nUse Ctrl + d or /bye to exit.")
                continue
            if line.startswith('"""'):
                parts = [line[3:]]
                while not parts[-1].endswith('"""'):
                    try:
                        parts.append(input("... "))
                    except EOFError:
                        break
                line = "\n".join(parts)
                line = line[: -3] if line.endswith('"""') else line
            stripped = line.strip()
            if not stripped:
                continue
            if stripped in ("/bye", "/exit"):
                return
            if stripped.startswith(("/?", "/help")):
                print(HELP)
                continue
            if stripped == "/clear":
                self.messages = []
                print("Cleared session context")
                continue
            if stripped.startswith("/set "):
                self._set(stripped[5:].strip())
                continue
            if stripped.startswith("/"):
                print(f"Unknown command '{stripped.split()[0]}'. Type /? for help")
                continue
            self.chat(line)
            print()

    def _set(self, args: str) -> None:
        from ollmlx.options import ParameterError, parse_parameter

        key, _, rest = args.partition(" ")
        if key == "parameter":
            name, _, value = rest.strip().partition(" ")
            try:
                parsed = parse_parameter(name, value.strip())
            except (ParameterError, ValueError) as exc:
                print(f'Couldn\'t set parameter: "{exc}"')
                return
            if parsed is not None:
                self.options[name] = parsed
            print(f"Set parameter '{name}' to '{value.strip()}'")
        elif key == "system":
            self.system = rest.strip().strip('"')
            print("Set system message.")
        elif key == "verbose":
            self.verbose = True
            print("Set 'verbose' mode.")
        elif key == "quiet":
            self.verbose = False
            print("Set 'quiet' mode.")
        elif key == "format" and rest.strip() == "json":
            self.format = "json"
            print("Set format to 'json' mode.")
        elif key == "noformat":
            self.format = None
            print("Disabled format.")
        else:
            print(f"Unknown command '/set {key}'. Type /? for help")


def run(client: Client, model: str, prompt: str | None, opts: dict[str, Any]) -> int:
    try:
        client.post("/api/show", {"model": model})
    except APIError as exc:
        if exc.status == 404:
            # Ollama pulls a missing model here; without a registry source, say what is missing.
            raise APIError(404, f"model '{model}' not found") from exc
        raise
    load: dict[str, Any] = {"model": model}
    if opts.get("keepalive") is not None:
        load["keep_alive"] = opts["keepalive"]
    client.post("/api/generate", load)
    session = Session(client, model, opts)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = (piped + ("\n\n" + prompt if prompt else "")) if piped else prompt
    if prompt:
        session.chat(prompt)
        return 0
    session.interactive()
    return 0
