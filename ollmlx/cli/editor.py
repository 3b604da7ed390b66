"""Ctrl+G in the interactive session: compose the prompt in an editor (cmd/interactive.go
editInExternalEditor). The editor is OLLAMA_EDITOR, else VISUAL, else EDITOR, else vi (notepad on
Windows), split on whitespace as Ollama splits it; the text comes back into the input line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from ollmlx import config


class EditorError(Exception):
    pass


def editor_command() -> list[str]:
    default = "notepad" if sys.platform == "win32" else "vi"
    for candidate in (config.editor(), os.environ.get("VISUAL", ""), os.environ.get("EDITOR", ""), default):
        if words := candidate.split():
            return words
    return [default]


def edit(text: str) -> str:
    """The text after the user edited it; raises EditorError when no editor ran."""
    command = editor_command()
    if shutil.which(command[0]) is None:
        raise EditorError(f'editor "{command[0]}" not found, set OLLAMA_EDITOR to the path of your preferred editor')
    fd, path = tempfile.mkstemp(prefix="ollama-prompt-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            subprocess.run([*command, path], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EditorError(f"editor exited with error: {exc}") from exc
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().rstrip("\r\n")
    finally:
        os.unlink(path)
