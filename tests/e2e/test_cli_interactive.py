"""The interactive session of `ollmlx run` (spec §23, cmd/interactive.go) driven inside tmux
against a live server: keys are sent with send-keys and the screen is read with capture-pane."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, Server


def ensure_tmux() -> str:
    path = shutil.which("tmux")
    if path is None:  # the test machine is ours to set up (spec'd: tmux drives the terminal)
        for step in (["apt-get", "install", "-y", "tmux"], ["apt-get", "update"], ["apt-get", "install", "-y", "tmux"]):
            subprocess.run(step, check=False, capture_output=True, timeout=600)
            path = shutil.which("tmux")
            if path:
                break
    assert path, "tmux is needed to drive the interactive CLI (apt-get install -y tmux)"
    return path


class Tmux:
    """One tmux server of its own (a private socket) running one CLI command in a pane."""

    def __init__(self, tmp: Path, env: dict[str, str], width: int = 100, height: int = 50) -> None:
        self.tmux = ensure_tmux()
        self.socket = str(tmp / "tmux.sock")
        self.env = env
        self.width, self.height = width, height
        self.status_file = tmp / "exit-status"

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True)

    def _tmux(self, *args: str) -> str:
        r = subprocess.run([self.tmux, "-S", self.socket, *args], capture_output=True, text=True, timeout=30)
        return r.stdout

    def start(self, *cli_args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "OLLMLX_"))}
        env.update({"PYTHONPATH": str(REPO), "TERM": "xterm-256color", **self.env})
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier())
        cmd = (f"env -i {exports} {shlex.quote(sys.executable)} -m ollmlx "
               f"{' '.join(shlex.quote(a) for a in cli_args)}; echo $? > {shlex.quote(str(self.status_file))}; "
               "sleep 600")
        subprocess.run([self.tmux, "-S", self.socket, "-f", "/dev/null", "new-session", "-d",
                        "-x", str(self.width), "-y", str(self.height), cmd], check=True)

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)
        self._tmux("send-keys", "Enter")

    def screen(self, join: bool = False) -> str:
        """The pane and its history; tmux drops trailing spaces, so a prompt reads `>>>`."""
        return self._tmux("capture-pane", "-p", *(["-J"] if join else []), "-S", "-2000").rstrip()

    def wait_for(self, pattern: str, timeout: float = 180, after: int = 0) -> str:
        """The screen once `pattern` appears in it after character offset `after`."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen[after:], re.M):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"did not see {pattern!r} on screen:\n{screen}")

    def wait_prompt(self, count: int, timeout: float = 180) -> str:
        """The screen once `count` prompts `>>> ` have been drawn."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if len(re.findall(r"^>>>( |$)", screen, re.M)) >= count:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"did not see {count} prompts:\n{screen}")

    def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status_file.exists() and self.status_file.read_text().strip():
                return int(self.status_file.read_text())
            time.sleep(0.2)
        raise AssertionError(f"the CLI did not exit:\n{self.screen()}")


@pytest.fixture(scope="module")
def chat_model(server: Server) -> str:
    mf = server.models.parent / "Modelfile.cli-chat"
    mf.write_text("FROM smollm2:135m\nPARAMETER temperature 0\nPARAMETER num_predict 24\nLICENSE MIT\n")
    r = server.cli("create", "cli-chat", "-f", str(mf))
    assert r.returncode == 0, r.stderr
    return "cli-chat"


def _tail(screen: str, marker: str) -> str:
    """What the screen shows after the last line starting with `marker`."""
    i = screen.rfind(marker)
    return screen[i + len(marker):] if i >= 0 else ""


@pytest.mark.slow
def test_commands_and_help(server: Server, chat_model: str, tmp_path: Path) -> None:
    with Tmux(tmp_path, {**server.env, "HOME": str(tmp_path)}) as tm:
        tm.start("run", chat_model)
        tm.wait_prompt(1)
        tm.type("/?")
        tm.wait_for(r"Use \"\"\" to begin a multi-line message\.")
        screen = tm.screen()
        for line in ("  /set            Set session variables", "  /load <model>   Load a session or model",
                     "  /? shortcuts    Help for keyboard shortcuts"):
            assert line in screen
        tm.type("/help set")
        tm.wait_for(r"/set nothink           Disable thinking")
        tm.type("/? show")
        tm.wait_for(r"/show template     Show prompt template")
        tm.type("/? shortcuts")
        tm.wait_for(r"Ctrl \+ d            Exit ollmlx \(/bye\)")
        tm.type("/set parameter temperature 0")
        tm.wait_for(r"Set parameter 'temperature' to '0'")
        tm.type("/set parameter stop <end> <stop>")
        tm.wait_for(r"Set parameter 'stop' to '<end>, <stop>'")
        tm.type("/set parameter bogus 1")
        tm.wait_for(r"Couldn't set parameter: \"unknown parameter 'bogus'\"")
        tm.type("/set parameter")
        tm.wait_for(r"/set parameter num_ctx <int>          Set the context size")
        for cmd, reply in (("wordwrap", "Set 'wordwrap' mode."), ("nowordwrap", "Set 'nowordwrap' mode."),
                           ("verbose", "Set 'verbose' mode."), ("quiet", "Set 'quiet' mode."),
                           ("format json", "Set format to 'json' mode."), ("noformat", "Disabled format."),
                           ("format yaml", "Invalid or missing format. For 'json' mode use '/set format json'"),
                           ("nothink", "Set 'nothink' mode."), ("think high", "Set 'think' mode to 'high'."),
                           ("colour", "Unknown command '/set colour'. Type /? for help")):
            tm.type(f"/set {cmd}")
            tm.wait_for(re.escape(reply))
        assert 'warning: model "cli-chat" does not support thinking output' in tm.screen()
        tm.type("/set nothink")
        tm.type('/set system """You are a pirate.')
        tm.wait_for(r"\n\.\.\.\Z")
        tm.type('Say arr."""')
        tm.wait_for(r"Set system message\.")
        tm.type("/show system")
        tm.wait_for(r"You are a pirate\.\nSay arr\.")
        tm.type("/show parameters")
        screen = tm.wait_for(r"User defined parameters:\n(  \w+ +.*\n){2}")
        # the session's parameters are sent with /api/show, so the model's list includes them
        assert re.search(r"Model defined parameters:\n(  \w+ +.*\n)*  num_predict +24\n", screen)
        assert re.search(r"  stop {27}\[<end> <stop>\]", screen)
        tm.type("/show license")
        tm.wait_for(r"\nMIT\n")
        tm.type("/show template")
        tm.wait_for(r"<\|im_start\|>")
        tm.type("/show modelfile")
        tm.wait_for(r"# Modelfile generated by \"ollama show\"")
        tm.type("/show info")
        tm.wait_for(r"  Model\n    architecture        llama")
        tm.type("/show nothing")
        tm.wait_for(r"Unknown command '/show nothing'\. Type /\? for help")
        tm.type("/load nope")
        tm.wait_for(r"Loading model 'nope'\nCouldn't find model 'nope'")
        tm.type("/clear")
        tm.wait_for(r"Cleared session context")
        tm.type("/set nohistory")  # this line is still saved, the next ones are not
        tm.type("/whatever")
        tm.wait_for(r"Unknown command '/whatever'\. Type /\? for help")
        tm.send("C-c")
        tm.wait_for(r">>>\nUse Ctrl \+ d or /bye to exit\.")
        tm.send("C-d")
        assert tm.wait_exit() == 0
    history = (tmp_path / ".ollmlx" / "history").read_text().splitlines()
    assert history[:2] == ["/?", "/help set"] and "/clear" in history
    assert history[-1] == "/set nohistory" and "/whatever" not in history


@pytest.mark.slow
def test_chat_wrap_interrupt_multiline_save_and_load(server: Server, chat_model: str, tmp_path: Path) -> None:
    width = 50
    with Tmux(tmp_path, {**server.env, "HOME": str(tmp_path), "OLLAMA_NOHISTORY": "1"}, width=width) as tm:
        tm.start("run", chat_model)
        tm.wait_prompt(1)
        # a streamed answer, word-wrapped to the pane: no line longer than width - 5
        tm.type("/set verbose")
        tm.type("Describe the city of Paris in detail.")
        screen = tm.wait_for(r"eval rate: +\d+\.\d\d tokens/s\n")
        answer = _tail(tm.screen(join=True), "Describe the city of Paris in detail.\n").split("total duration")[0]
        assert answer.strip() and all(len(line) <= width - 5 for line in answer.splitlines()), answer
        assert re.search(r"total duration: +[\d.]+(ms|s)\n", screen)
        tm.type("/set quiet")
        # Ctrl+C stops an answer and the session goes on
        tm.type("/set parameter num_predict 400")
        before = len(tm.screen())
        tm.type("Write a very long story about a dragon.")
        # (the spinner is drawn there first: wait for a letter of the answer)
        tm.wait_for(r"Write a very long story about a dragon\.\n\w", after=before - 60)
        tm.send("C-c")
        tm.wait_for(r"dragon\.\n\w[\s\S]*\n>>>\Z", timeout=30, after=before - 60)
        tm.type("/set parameter num_predict 8")
        # multi-line input with the continuation prompt
        tm.type('"""Say')
        tm.wait_for(r"\n\.\.\.\Z")
        tm.type('hello."""')
        tm.wait_for(r"hello\.\"\"\"\n\S[\s\S]*\n>>>\Z")
        tm.type("/save cli-saved")
        tm.wait_for(r"Created new model 'cli-saved'")
        tm.type("/load cli-saved")
        tm.wait_for(r"Loading model 'cli-saved'\n>>>")
        tm.type("/bye")
        assert tm.wait_exit() == 0
    assert not (tmp_path / ".ollmlx" / "history").exists()  # OLLAMA_NOHISTORY
    mf = server.cli("show", "cli-saved", "--modelfile").stdout
    assert "PARAMETER num_predict 8" in mf
    assert "MESSAGE user Describe the city of Paris in detail." in mf
    assert "MESSAGE user Write a very long story about a dragon." in mf
    assert "MESSAGE assistant" in mf
    # a model with messages replays them when a session starts
    second = tmp_path / "second"
    second.mkdir()
    with Tmux(second, {**server.env, "HOME": str(second)}, width=width) as tm:
        tm.start("run", "cli-saved")
        screen = tm.wait_for(r"^>>> Describe the city of Paris in detail\.\n\S[\s\S]*\n>>>\Z")
        assert "\n>>> Write a very long story about a dragon.\n" in screen
        tm.type("/bye")
        assert tm.wait_exit() == 0
    server.cli("rm", "cli-saved")


@pytest.mark.slow
def test_one_shot_on_a_terminal_wraps_unless_nowordwrap(server: Server, chat_model: str, tmp_path: Path) -> None:
    """On a terminal a one-shot answer is word-wrapped at width - 5; --nowordwrap leaves the line
    breaks to the terminal (capture-pane -J joins the lines the terminal wrapped)."""
    width = 30
    prompt = "Describe the city of Paris in detail."
    answers = {}
    for flag in ("--verbose", "--nowordwrap"):
        run_dir = tmp_path / flag.strip("-")
        run_dir.mkdir()
        with Tmux(run_dir, server.env, width=width) as tm:
            tm.start("run", chat_model, flag, prompt)
            tm.wait_exit()
            answers[flag] = tm.screen(join=True).split("total duration")[0].strip()
    wrapped, unwrapped = answers["--verbose"], answers["--nowordwrap"]
    assert all(len(line) <= width - 5 for line in wrapped.splitlines()), wrapped
    assert any(len(line) > width for line in unwrapped.splitlines()), unwrapped
    assert " ".join(wrapped.split()) == " ".join(unwrapped.split())  # the same words, temperature 0


@pytest.mark.slow
def test_ctrl_g_edits_the_line_in_the_editor(server: Server, chat_model: str, tmp_path: Path) -> None:
    """§23 keys: Ctrl+G opens OLLAMA_EDITOR on what was typed; its text comes back as the input
    line, to be sent with Enter. A missing editor is an error line, and the session goes on."""
    seen = tmp_path / "editor-saw.txt"
    editor = tmp_path / "fake-editor"
    editor.write_text(f'#!/bin/sh\ncp "$1" {shlex.quote(str(seen))}\nprintf "Count to three.\\n" > "$1"\n')
    editor.chmod(0o755)
    env = {**server.env, "HOME": str(tmp_path), "OLLAMA_NOHISTORY": "1", "OLLAMA_EDITOR": str(editor)}
    with Tmux(tmp_path, env) as tm:
        tm.start("run", chat_model)
        tm.wait_prompt(1)
        tm.send("-l", "a rough draft")
        tm.send("C-g")
        screen = tm.wait_for(r"^>>> Count to three\.$")
        assert seen.read_text() == "a rough draft" and "rough draft" not in screen
        tm.send("Enter")
        tm.wait_prompt(2)  # the line with the draft was taken off the screen
        tm.send("C-d")
        assert tm.wait_exit() == 0
    env["OLLAMA_EDITOR"] = "no-such-editor --wait"  # split on blanks, as Ollama does
    with Tmux(tmp_path / "missing", {**env, "HOME": str(tmp_path)}) as tm:
        (tmp_path / "missing").mkdir()
        tm.start("run", chat_model)
        tm.wait_prompt(1)
        tm.send("-l", "draft")
        tm.send("C-g")
        tm.wait_for(r'^error: editor "no-such-editor" not found, set OLLAMA_EDITOR to the path of your preferred editor$')
        tm.send("C-d")
        assert tm.wait_exit() == 0
