"""Streaming thinking parser with Ollama's semantics (thinking/parser.go): text between the opening
and closing tag is thinking; whitespace right after either tag is eaten; a partial closing tag is
held back until it is decided. Output that does not start with the opening tag is all content."""

from __future__ import annotations

from enum import Enum, auto

from ollmlx.serve.parsers.common import overlap


class _State(Enum):
    LOOKING_FOR_OPENING = auto()
    STARTED_EATING_WHITESPACE = auto()
    THINKING = auto()
    DONE_EATING_WHITESPACE = auto()
    DONE = auto()


class ThinkingParser:
    def __init__(self, opening: str, closing: str, *, started: bool = False) -> None:
        self.opening = opening
        self.closing = closing
        self._state = _State.LOOKING_FOR_OPENING
        self._acc = ""
        if started:  # the prompt ended with the opening tag: Ollama feeds the tag itself first
            self.add(opening)

    @property
    def thinking_done(self) -> bool:
        return self._state in (_State.DONE, _State.DONE_EATING_WHITESPACE)

    def add(self, text: str) -> tuple[str, str]:
        """Feed model output; returns (thinking, content) that can be sent now."""
        self._acc += text
        thinking: list[str] = []
        content: list[str] = []
        more = True
        while more:  # one call may pass through several states
            t, c, more = self._eat()
            thinking.append(t)
            content.append(c)
        return "".join(thinking), "".join(content)

    def _eat(self) -> tuple[str, str, bool]:
        state, acc = self._state, self._acc
        if state is _State.LOOKING_FOR_OPENING:
            trimmed = acc.lstrip()
            if trimmed.startswith(self.opening):
                after = trimmed[len(self.opening):].lstrip()
                self._acc = after
                self._state = _State.THINKING if after else _State.STARTED_EATING_WHITESPACE
                return "", "", True
            if self.opening.startswith(trimmed):  # a partial opening tag, or only whitespace so far
                return "", "", False
            # no opening tag: thinking was skipped; the untrimmed text is content
            self._state = _State.DONE
            self._acc = ""
            return "", acc, False
        if state is _State.STARTED_EATING_WHITESPACE:
            trimmed = acc.lstrip()
            self._acc = ""
            if not trimmed:
                return "", "", False
            self._state = _State.THINKING
            self._acc = trimmed
            return "", "", True
        if state is _State.THINKING:
            if self.closing in acc:
                thought, remaining = acc.split(self.closing, 1)
                remaining = remaining.lstrip()
                self._acc = ""
                self._state = _State.DONE if remaining else _State.DONE_EATING_WHITESPACE
                return thought, remaining, False
            n = overlap(acc, self.closing)
            if n:  # hold back what may be the start of the closing tag
                self._acc = acc[len(acc) - n:]
                return acc[: len(acc) - n], "", False
            self._acc = ""
            return acc, "", False
        if state is _State.DONE_EATING_WHITESPACE:
            trimmed = acc.lstrip()
            self._acc = ""
            if trimmed:
                self._state = _State.DONE
            return "", trimmed, False
        self._acc = ""
        return "", acc, False


def strip_thinking(content: str, opening: str = "<think>", closing: str = "</think>") -> str:
    """The content of an earlier reply without its thinking (filterThinkTags)."""
    return ThinkingParser(opening, closing).add(content)[1]
