"""The Modelfile grammar (spec §14), a faithful port of Ollama's ``parser/parser.go``.

:func:`parse_modelfile` runs the same rune-by-rune state machine as ``ParseFile``, so the
accepted inputs, the values (trimming, ``"..."`` / ``\"\"\"...\"\"\"`` unquoting, multi-line
values) and the error messages (including their line numbers, which count ``\\r`` and
``\\n`` separately exactly as Ollama does) are the same.  :meth:`Modelfile.to_text` is
``Modelfile.String()``; :meth:`Modelfile.create_fields` is the part of
``Modelfile.CreateRequest`` that does not touch the filesystem.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ollmlx.options import (
    DEPRECATED_PARAMETERS,
    OLLMLX_PARAMETERS,
    ParameterError,
    format_params,
    go_format_value,
    parse_parameter,
)

__all__ = [
    "COMMANDS",
    "MESSAGE_ROLES",
    "Command",
    "CreateFields",
    "Modelfile",
    "ModelfileError",
    "build_model_modelfile",
    "is_valid_semver",
    "normalize_requires",
    "parse_modelfile",
    "parse_modelfile_bytes",
    "quote_value",
    "unquote_value",
]

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = (
    "from", "license", "template", "system", "adapter", "draft",
    "renderer", "parser", "parameter", "message", "requires",
)  # fmt: skip
MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant")

ERR_MISSING_FROM = "no FROM line"
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_UNEXPECTED_EOF = "unexpected EOF"
ERR_REQUIRES = "requires must be a valid semver (e.g. 0.14.0)"


class ModelfileError(ValueError):
    """A Modelfile error; ``str()`` is Ollama's text, ``(line N): ...`` when positional."""

    def __init__(self, msg: str, line: int | None = None) -> None:
        self.msg = msg
        self.line = line
        super().__init__(f"(line {line}): {msg}" if line else msg)


@dataclass(frozen=True)
class Command:
    """One instruction.  ``name`` is ``model`` for FROM, the lower-cased instruction
    otherwise, or the parameter key for PARAMETER; MESSAGE args are ``"role: text"``."""

    name: str
    args: str

    def to_text(self) -> str:
        """Ollama's ``Command.String()``."""
        if self.name == "model":
            # Ollama prints FROM raw; quoting as the other commands do changes nothing for a name
            # or path, and keeps a quoted multi-line value (`FROM "\nx"`) reading back the same
            return f"FROM {quote_value(self.args)}"
        if self.name in (
            "license",
            "template",
            "system",
            "adapter",
            "renderer",
            "parser",
            "requires",
            "draft",
        ):
            return f"{self.name.upper()} {quote_value(self.args)}"
        if self.name == "message":
            role, _, message = self.args.partition(": ")
            return f"MESSAGE {role} {quote_value(message)}"
        return f"PARAMETER {self.name} {quote_value(self.args)}"


@dataclass
class CreateFields:
    """What ``Modelfile.CreateRequest`` extracts, before any path is resolved or hashed."""

    from_: list[str] = field(default_factory=list)  # each FROM argument: name, file or dir
    drafts: list[str] = field(default_factory=list)
    adapters: list[str] = field(default_factory=list)  # Ollama's client keeps only the last
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def to_text(self) -> str:
        """Ollama's ``Modelfile.String()``: one command per line, each ending in ``\\n``."""
        return "".join(cmd.to_text() + "\n" for cmd in self.commands)

    __str__ = to_text

    def create_fields(self) -> CreateFields:
        """Collect the commands like ``CreateRequest`` (later TEMPLATE/SYSTEM/... win,
        LICENSE and MESSAGE accumulate, ``stop`` values accumulate, deprecated parameters
        are skipped with a warning).  Raises :class:`ModelfileError` for a bad REQUIRES or
        a bad PARAMETER (``unknown parameter 'x'``, ``invalid float value [x]`` ...)."""
        out = CreateFields()
        for cmd in self.commands:
            name, args = cmd.name, cmd.args
            if name == "model":
                out.from_.append(args)
            elif name == "draft":
                out.drafts.append(args)
            elif name == "adapter":
                out.adapters.append(args)
            elif name in ("template", "system", "renderer", "parser"):
                setattr(out, name, args)
            elif name == "license":
                out.license.append(args)
            elif name == "requires":
                out.requires = normalize_requires(args)
            elif name == "message":
                role, _, content = args.partition(": ")
                out.messages.append({"role": role, "content": content})
            elif name in DEPRECATED_PARAMETERS:
                log.warning("warning: parameter %s is deprecated", name)
            else:
                try:
                    typed = ({name: parse_parameter(name, args)} if name in OLLMLX_PARAMETERS
                             else format_params({name: [args]}))
                except ParameterError as exc:
                    raise ModelfileError(str(exc)) from None
                for key, value in typed.items():
                    prev = out.parameters.get(key)
                    if isinstance(prev, list) and isinstance(value, list):
                        prev.extend(value)
                    else:
                        out.parameters[key] = value
        return out


def quote_value(s: str) -> str:
    """Ollama's ``quote``: only values with a newline or leading/trailing space are quoted,
    with ``\"\"\"`` if they contain ``"`` and ``"`` otherwise. A carriage return and any blank
    at either end (a tab) count here too: Ollama's misses them, and the value would not read back."""
    if "\n" in s or "\r" in s or s[:1].isspace() or s[-1:].isspace():
        if '"' in s:
            return f'"""{s}"""'
        return f'"{s}"'
    return s


def unquote_value(s: str) -> tuple[str, bool]:
    """Ollama's ``unquote``: strip ``\"\"\"`` or ``"`` pairs; ``ok`` is False while open."""
    if s.startswith('"""'):
        if len(s) >= 6 and s.endswith('"""'):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


# -- semver (golang.org/x/mod/semver.IsValid, with the "v" prefix) ------------------------------

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER_RE = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?)?)?\Z"
)


def is_valid_semver(v: str) -> bool:
    """``semver.IsValid``: ``vMAJOR[.MINOR[.PATCH[-pre][+build]]]`` (``v1``, ``v1.2`` allowed)."""
    return bool(_SEMVER_RE.match(v))


def normalize_requires(value: str) -> str:
    """Validate a REQUIRES value like Ollama (``v`` prefix optional) and drop the ``v``."""
    v = value if value.startswith("v") else "v" + value
    if not is_valid_semver(v):
        raise ModelfileError(ERR_REQUIRES)
    return v[1:]


# -- the parser state machine --------------------------------------------------------------------

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)
_EOF = object()  # parse-rune error: io.ErrUnexpectedEOF
_BAD_COMMAND = object()  # parse-rune error: errInvalidCommand


def _is_alpha(r: str) -> bool:
    return "a" <= r <= "z" or "A" <= r <= "Z"


def _step(r: str, cs: int) -> tuple[int, str, object | None]:
    """Ollama's ``parseRuneForState``: (next state, rune to keep or ``""``, error)."""
    space = r in " \t"
    newline = r in "\r\n"
    if cs == _NIL:
        if r == "#":
            return _COMMENT, "", None
        if space or newline:
            return _NIL, "", None
        return _NAME, r, None
    if cs == _NAME:
        if _is_alpha(r):
            return _NAME, r, None
        if space:
            return _VALUE, "", None
        return _NIL, "", _BAD_COMMAND
    if cs == _VALUE:
        if newline or space:
            return _NIL, r, None
        return _VALUE, r, None
    if cs == _PARAMETER:
        if _is_alpha(r) or "0" <= r <= "9" or r == "_":
            return _PARAMETER, r, None
        if space:
            return _VALUE, "", None
        return _NIL, "", _EOF
    if cs == _MESSAGE:
        if _is_alpha(r):
            return _MESSAGE, r, None
        if space:
            return _VALUE, "", None
        return _NIL, "", _EOF
    # _COMMENT
    if newline:
        return _NIL, "", None
    return _COMMENT, "", None


def _closed(buf: list[str], first: int, last: int) -> bool:
    """``unquote(strings.TrimSpace(buf))``'s ``ok``, from the first and last non-space runes."""
    if first < 0:
        return True
    head = "".join(buf[first:first + 3])
    if head == '"""':
        return last - first + 1 >= 6 and "".join(buf[last - 2:last + 1]) == '"""'
    if head.startswith('"'):
        return last - first + 1 >= 2 and buf[last] == '"'
    return True


def _trim(s: str) -> str:
    # The buffer only ever holds printable runes plus " ", "\t", "\r", "\n", so this is
    # exactly Go's strings.TrimSpace here.
    return s.strip(" \t\r\n")


def parse_modelfile(text: str, *, check_requires: bool = True) -> Modelfile:
    """Parse Modelfile text (a leading UTF-8 BOM is ignored).

    Raises :class:`ModelfileError` with Ollama's messages: ``no FROM line``,
    ``(line N): command must be one of ...``, ``(line N): message role must be one of ...``,
    ``unexpected EOF`` (unterminated quote / missing value at the end) and
    ``unexpected EOF: <buffer>`` (bad character in a PARAMETER key or MESSAGE role).
    With ``check_requires`` a REQUIRES that is not semver raises
    ``requires must be a valid semver (e.g. 0.14.0)`` (Ollama checks this in CreateRequest).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    commands: list[Command] = []
    cmd_name = ""
    role = ""
    curr = _NIL
    line = 1
    buf: list[str] = []
    # indices of the buffer's first and last non-space runes: whether a quoted value is still open
    # is read from them, not from the joined buffer (joining at every space or line of a long
    # value made parsing quadratic; Go's strings.Builder.String() costs nothing)
    first = last = -1

    for r in text:
        if r in "\r\n":
            line += 1
        nxt, keep, err = _step(r, curr)
        if err is _EOF:
            raise ModelfileError(f"{ERR_UNEXPECTED_EOF}: {''.join(buf)}")
        if err is _BAD_COMMAND:
            raise ModelfileError(ERR_INVALID_COMMAND, line)

        if nxt != curr:
            if curr == _VALUE and (r in " \t" or not _closed(buf, first, last)):
                # still inside a quoted value, or an inner space: keep reading
                if r not in " \t\r\n":
                    first, last = (len(buf) if first < 0 else first), len(buf)
                buf.append(r)
                continue
            b = "".join(buf)
            if curr == _NAME:
                lowered = b.lower()
                if lowered not in COMMANDS:
                    raise ModelfileError(ERR_INVALID_COMMAND, line)
                if lowered == "from":
                    cmd_name = "model"
                elif lowered == "parameter":
                    nxt = _PARAMETER  # the key becomes the command name
                elif lowered == "message":
                    nxt = _MESSAGE
                    cmd_name = lowered
                else:
                    cmd_name = lowered
            elif curr == _PARAMETER:
                cmd_name = b
            elif curr == _MESSAGE:
                if b not in MESSAGE_ROLES:
                    raise ModelfileError(ERR_INVALID_ROLE, line)
                role = b
            elif curr == _VALUE:
                value, _ = unquote_value(_trim(b))
                if role:
                    value = f"{role}: {value}"
                    role = ""
                commands.append(Command(cmd_name, value))
            buf.clear()
            first = last = -1
            curr = nxt

        if keep and keep.isprintable():
            if keep not in " \t":
                first, last = (len(buf) if first < 0 else first), len(buf)
            buf.append(keep)

    if curr == _VALUE:
        value, ok = unquote_value(_trim("".join(buf)))
        if not ok:
            raise ModelfileError(ERR_UNEXPECTED_EOF)
        if role:
            value = f"{role}: {value}"
        commands.append(Command(cmd_name, value))
    elif curr not in (_NIL, _COMMENT):
        raise ModelfileError(ERR_UNEXPECTED_EOF)

    if not any(c.name == "model" for c in commands):
        raise ModelfileError(ERR_MISSING_FROM)
    if check_requires:
        for c in commands:
            if c.name == "requires":
                normalize_requires(c.args)
    return Modelfile(commands)


def parse_modelfile_bytes(data: bytes, *, check_requires: bool = True) -> Modelfile:
    """Decode like Ollama (UTF-8, or UTF-16 LE/BE when a BOM says so) and parse."""
    if data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le", errors="replace")
    elif data.startswith(b"\xfe\xff"):
        text = data[2:].decode("utf-16-be", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    return parse_modelfile(text, check_requires=check_requires)


def build_model_modelfile(
    model_path: str,
    *,
    adapters: Iterable[str] = (),
    draft: str = "",
    projectors: Iterable[str] = (),
    template: str | None = None,
    system: str = "",
    renderer: str = "",
    parser: str = "",
    options: Mapping[str, Any] | None = None,
    licenses: Iterable[str] = (),
    messages: Iterable[Mapping[str, Any]] = (),
) -> Modelfile:
    """The Modelfile of a stored model, in the order of Ollama's ``Model.String()``.

    Option values are rendered with Go's ``%v`` (numbers as float64: ``42``, ``0.7``,
    ``1e+06``), one PARAMETER per list item; Ollama's map order is random, here keys sort.
    """
    cmds = [Command("model", model_path)]
    cmds += [Command("adapter", a) for a in adapters]
    if draft:
        cmds.append(Command("draft", draft))
    cmds += [Command("model", p) for p in projectors]
    if template is not None:
        cmds.append(Command("template", template))
    for name, value in (("system", system), ("renderer", renderer), ("parser", parser)):
        if value:
            cmds.append(Command(name, value))
    for key in sorted(options or {}):
        value = (options or {})[key]
        items = value if isinstance(value, list | tuple) else [value]
        cmds += [Command(key, go_format_value(item)) for item in items]
    cmds += [Command("license", lic) for lic in licenses]
    cmds += [Command("message", f"{m.get('role', '')}: {m.get('content', '')}") for m in messages]
    return Modelfile(cmds)
