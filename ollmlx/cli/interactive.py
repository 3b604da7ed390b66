"""The interactive session of `ollmlx run` (cmd/interactive.go generateInteractive; spec §23):
`>>> ` prompt, `\"\"\"` multi-line input, the slash commands, and one /api/chat per message.
Help goes to stderr and command replies to stdout, as in Ollama."""

from __future__ import annotations

import sys
from typing import Any

from ollmlx import config
from ollmlx.cli.client import APIError, Client
from ollmlx.cli.editor import EditorError, edit
from ollmlx.cli.lineinput import EditPrompt, Interrupted, LineReader
from ollmlx.cli.run_cmd import (
    RunOptions,
    chat,
    extract_file_data,
    extract_file_names,
    infer_think,
    load_model,
)
from ollmlx.options import ParameterError, format_params, go_format_value, go_quote
from ollmlx.store.names import parse_name

USAGE = """Available Commands:
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
USAGE_MULTIMODAL = "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n"

USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking

"""

USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + g            Open default editor to compose a prompt
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit ollmlx (/bye)

"""

USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

"""

USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

"""

PROMPT, ALT_PROMPT = ">>> ", "... "


def new_create_request(name: str, opts: RunOptions) -> dict[str, Any]:
    """NewCreateRequest: /save makes a model from the parent, the session's messages, system
    message and parameters."""
    parent = opts.parent_model if opts.parent_model and parse_name(opts.parent_model).is_valid() else ""
    req: dict[str, Any] = {"model": name, "from": parent or opts.model}
    if opts.system:
        req["system"] = opts.system
    if opts.options:
        req["parameters"] = opts.options
    messages = list(opts.loaded_messages) + list(opts.messages)
    if messages:
        req["messages"] = messages
    return req


class Session:
    def __init__(self, client: Client, opts: RunOptions, think_explicit: bool) -> None:
        self.client = client
        self.opts = opts
        self.think_explicit = think_explicit
        self.reader = LineReader(config.home_dir() / "history", history_enabled=not config.nohistory())
        self.buf: list[str] = []
        self.multiline: str | None = None  # "prompt" or "system" while inside \"\"\"
        self.alt = False

    # -- output helpers ------------------------------------------------------------------
    @staticmethod
    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    @staticmethod
    def help(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    # -- the loop ------------------------------------------------------------------------
    def loop(self) -> int:
        while True:
            try:
                line = self.reader.readline(ALT_PROMPT if self.alt else PROMPT)
            except EOFError:
                self.say("")
                return 0
            except EditPrompt as exc:
                self.buf = []
                if sys.stdout.isatty():  # the accepted line showed the key's mark: take it off the screen
                    sys.stdout.write("\x1b[1A\x1b[2K")
                    sys.stdout.flush()
                try:
                    content = edit(exc.line)
                except EditorError as err:
                    sys.stderr.write(f"error: {err}\n")
                    continue
                if content.strip():
                    self.reader.prefill = content
                continue
            except Interrupted as exc:
                self.say("")
                if exc.line == "":
                    self.say("Use Ctrl + d or /bye to exit.")
                self.alt = False
                self.buf = []
                self.multiline = None
                continue
            if self.handle(line) == "exit":
                return 0

    def handle(self, line: str) -> str | None:
        """One line of input; returns "exit" to end the session."""
        if self.multiline is not None:
            done = line.endswith('"""')
            self.buf.append(line[:-3] if done else line)
            if not done:
                self.buf.append("\n")
                self.alt = True
                return None
            if self.multiline == "system":
                self._set_system("".join(self.buf))
                self.buf = []
            self.multiline = None
            self.alt = False
        elif line.startswith('"""'):
            rest = line[3:]
            done = rest.endswith('"""')
            self.buf.append(rest[:-3] if done else rest)
            if not done:
                self.buf.append("\n")
                self.multiline = "prompt"
                self.alt = True
        elif line.startswith("/list"):
            from ollmlx.cli.models_cmd import cmd_list

            args = line.split()
            cmd_list(self.client, args[1] if len(args) > 1 else "")
        elif line.startswith("/load"):
            self._load(line.split())
            return None
        elif line.startswith("/save"):
            self._save(line.split())
            return None
        elif line.startswith("/clear"):
            self.opts.messages = []
            if self.opts.system:
                self.opts.messages.append({"role": "system", "content": self.opts.system})
            self.say("Cleared session context")
            return None
        elif line.startswith("/set"):
            self._set(line)
            if self.multiline is not None:
                return None
        elif line.startswith("/show"):
            self._show(line.split())
        elif line.startswith(("/help", "/?")):
            args = line.split()
            if len(args) > 1:
                topic = args[1]
                if topic in ("set", "/set"):
                    self.help(USAGE_SET)
                elif topic in ("show", "/show"):
                    self.help(USAGE_SHOW)
                elif topic in ("shortcut", "shortcuts"):
                    self.help(USAGE_SHORTCUTS)
            else:
                self.help(USAGE + (USAGE_MULTIMODAL if self.opts.multimodal else "") + "\n")
        elif line.startswith(("/exit", "/bye")):
            return "exit"
        elif line.startswith("/"):
            first = line.split()[0]
            is_file = self.opts.multimodal and any(f.startswith(first) for f in extract_file_names(line))
            if not is_file:
                self.say(f"Unknown command '{first}'. Type /? for help")
                return None
            self.buf.append(line)
        else:
            self.buf.append(line)

        text = "".join(self.buf)
        if text and self.multiline is None:
            self._send(text)
            self.buf = []
        return None

    # -- a message ---------------------------------------------------------------------------
    def _send(self, text: str) -> None:
        msg: dict[str, Any] = {"role": "user", "content": text}
        if self.opts.multimodal:
            msg["content"], images = extract_file_data(text)
            if images:
                msg["images"] = images
        self.opts.messages.append(msg)
        try:
            reply = chat(self.client, self.opts)
        except APIError as exc:
            if "does not support thinking" in exc.message or "invalid think value" in exc.message:
                self.say(f"error: {exc.message}")
                return
            raise
        if reply is not None:
            self.opts.messages.append(reply)

    # -- commands ----------------------------------------------------------------------------
    def _set_system(self, text: str) -> None:
        self.opts.system = text
        msg = {"role": "system", "content": text}
        if self.opts.messages and self.opts.messages[-1].get("role") == "system":
            self.opts.messages[-1] = msg
        else:
            self.opts.messages.append(msg)
        self.say("Set system message.")

    def _ensure_thinking_support(self) -> None:
        try:
            info = self.client.post("/api/show", {"model": self.opts.model})
        except Exception:
            return
        if "thinking" not in (info.get("capabilities") or []):
            sys.stderr.write(f"warning: model {go_quote(self.opts.model)} does not support thinking output\n")

    def _set(self, line: str) -> None:
        args = line.split()
        if len(args) < 2:
            self.help(USAGE_SET)
            return
        what = args[1]
        if what == "history":
            self.reader.history_enabled = True
        elif what == "nohistory":
            self.reader.history_enabled = False
        elif what == "wordwrap":
            self.opts.word_wrap = True
            self.say("Set 'wordwrap' mode.")
        elif what == "nowordwrap":
            self.opts.word_wrap = False
            self.say("Set 'nowordwrap' mode.")
        elif what == "verbose":
            self.opts.verbose = True
            self.say("Set 'verbose' mode.")
        elif what == "quiet":
            self.opts.verbose = False
            self.say("Set 'quiet' mode.")
        elif what == "think":
            level = args[2] if len(args) > 2 else ""
            self.opts.think = level or True
            self.think_explicit = True
            self._ensure_thinking_support()
            self.say(f"Set 'think' mode to '{level}'." if level else "Set 'think' mode.")
        elif what == "nothink":
            self.opts.think = False
            self.think_explicit = True
            self._ensure_thinking_support()
            self.say("Set 'nothink' mode.")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                self.say("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                self.opts.format = "json"
                self.say("Set format to 'json' mode.")
        elif what == "noformat":
            self.opts.format = ""
            self.say("Disabled format.")
        elif what == "parameter":
            if len(args) < 4:
                self.help(USAGE_PARAMETERS)
                return
            key, values = args[2], args[3:]
            try:
                typed = format_params({key: values})
            except ParameterError as exc:
                self.say(f"Couldn't set parameter: {go_quote(str(exc))}")
                return
            self.say(f"Set parameter '{key}' to '{', '.join(values)}'")
            self.opts.options[key] = typed[key]
        elif what == "system":
            if len(args) < 3:
                self.help(USAGE_SET)
                return
            text = " ".join(args[2:])
            if text.startswith('"""'):
                text = text[3:]
                if text.endswith('"""') and len(text) >= 3:
                    text = text[:-3]
                else:
                    self.multiline = "system"
                    self.buf = [text, "\n"] if text else []
                    self.alt = True
                    return
            self._set_system(text)
            self.buf = []
        else:
            self.say(f"Unknown command '/set {what}'. Type /? for help")

    def _show(self, args: list[str]) -> None:
        if len(args) < 2:
            self.help(USAGE_SHOW)
            return
        from ollmlx.cli.models_cmd import show_info

        req: dict[str, Any] = {"model": self.opts.model, "system": self.opts.system, "options": self.opts.options}
        try:
            resp = self.client.post("/api/show", req)
        except APIError:
            self.say("error: couldn't get model")
            raise
        what = args[1]
        if what == "info":
            show_info(resp, False, sys.stderr)
        elif what == "license":
            self.say(resp.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            self.say(resp.get("modelfile", ""))
        elif what == "parameters":
            self.say("Model defined parameters:")
            if not resp.get("parameters"):
                self.say("  No additional parameters were specified for this model.")
            else:
                for line in resp["parameters"].split("\n"):
                    self.say(f"  {line}")
            self.say("")
            if self.opts.options:
                self.say("User defined parameters:")
                for k, v in self.opts.options.items():
                    self.say(f"  {k:<30} {go_format_value(v)}")
                self.say("")
        elif what == "system":
            if self.opts.system:
                self.say(self.opts.system + "\n")
            elif resp.get("system"):
                self.say(resp["system"] + "\n")
            else:
                self.say("No system message was specified for this model.")
        elif what == "template":
            self.say(resp.get("template") or "No prompt template was specified for this model.")
        else:
            self.say(f"Unknown command '/show {what}'. Type /? for help")

    def _load(self, args: list[str]) -> None:
        if len(args) != 2:
            self.say("Usage:\n  /load <modelname>")
            return
        saved = self.opts.copy()
        self.opts.model = args[1]
        self.opts.messages = []
        self.opts.loaded_messages = []
        self.say(f"Loading model '{self.opts.model}'")
        try:
            info = self.client.post("/api/show", {"model": self.opts.model})
        except APIError as exc:
            if "not found" in exc.message:
                self.say(f"Couldn't find model '{self.opts.model}'")
                self.opts = saved
                return
            raise
        self.opts.parent_model = (info.get("details") or {}).get("parent_model", "")
        self.opts.loaded_messages = list(info.get("messages") or [])
        self.opts.think = infer_think(info.get("capabilities") or [], self.opts.think, self.think_explicit)
        try:
            load_model(self.client, self.opts)
        except APIError as exc:
            if "not found" in exc.message:
                self.say(f"Couldn't find model '{self.opts.model}'")
                self.opts = saved
                return
            if "does not support thinking" in exc.message:
                self.say(f"error: {exc.message}")
                return
            raise

    def _save(self, args: list[str]) -> None:
        if len(args) != 2:
            self.say("Usage:\n  /save <modelname>")
            return
        try:
            for _ in self.client.stream("/api/create", new_create_request(args[1], self.opts)):
                pass
        except APIError as exc:
            if "invalid model name" in exc.message:
                self.say(f"error: The model name '{args[1]}' is invalid")
                return
            raise
        self.say(f"Created new model '{args[1]}'")
