"""Line input for the interactive session on GNU readline: the `>>> ` / `... ` prompts, emacs keys
(Ctrl+A/E/K/U/W/L, Alt+B/F), Ctrl+G (edit the line in an editor), Ctrl+C and Ctrl+D as Ollama's
readline reports them, and a history kept like Ollama's (the last 100 entries, saved after each
entry to `~/.ollmlx/history` while history is enabled; `OLLAMA_NOHISTORY` or `/set nohistory`
stop the saving)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType

HISTORY_LIMIT = 100


class Interrupted(Exception):
    """Ctrl+C at the prompt; `line` is what had been typed."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class EditPrompt(Exception):
    """Ctrl+G at the prompt; `line` is what had been typed."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


# Ctrl+G is a readline macro (Python cannot bind a key to a function): it ends the line with this
# mark and accepts it, and readline() turns a line with the mark into EditPrompt.
EDIT_MARK = "\x1d"


class LineReader:
    def __init__(self, history_file: Path, history_enabled: bool = True) -> None:
        import readline

        self.rl = readline
        self.history_file = history_file
        self.history_enabled = history_enabled
        readline.set_auto_history(False)
        self.prefill = ""  # text the next line starts with (what the editor gave back)
        if "libedit" not in (readline.__doc__ or ""):  # macOS's libedit knows neither
            readline.parse_and_bind("set enable-bracketed-paste on")
            readline.parse_and_bind(r'"\C-g": "\C-e\C-v\C-]\C-j"')
        with contextlib.suppress(OSError):
            history_file.parent.mkdir(parents=True, exist_ok=True)
            if history_file.is_file():
                readline.read_history_file(str(history_file))
        self._trim()

    def _trim(self) -> None:
        while self.rl.get_current_history_length() > HISTORY_LIMIT:
            self.rl.remove_history_item(0)

    def readline(self, prompt: str) -> str:
        """One line. Raises EOFError on Ctrl+D and Interrupted on Ctrl+C."""
        typed: list[str] = []

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            # runs inside readline's wait loop, before readline throws the line away
            typed.append(self.rl.get_line_buffer())
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        prefill, self.prefill = self.prefill, ""
        if prefill:
            self.rl.set_startup_hook(lambda: self.rl.insert_text(prefill))
        try:
            line = input(prompt)
        except KeyboardInterrupt:
            raise Interrupted(typed[0] if typed else "") from None
        finally:
            signal.signal(signal.SIGINT, previous)
            if prefill:
                self.rl.set_startup_hook(None)
        if line.endswith(EDIT_MARK):
            raise EditPrompt(line[: -len(EDIT_MARK)])
        if line:
            self.add_history(line)
        return line

    def add_history(self, line: str) -> None:
        self.rl.add_history(line)
        self._trim()
        if not self.history_enabled:
            return
        tmp = self.history_file.with_name(self.history_file.name + ".tmp")
        try:
            self.rl.write_history_file(str(tmp))
            os.replace(tmp, self.history_file)
        except OSError:
            pass
