"""`ollmlx` command line: the commands and flags of `ollama` (cmd/cmd.go NewCLI; spec §23).

Arguments are parsed with argparse from one table of commands; help is printed in cobra's layout
with the environment variables each command reads. As with cobra, flags may follow positional
arguments, `--flag=value` works for every flag, and `--think` alone means `--think=true`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx

from ollmlx import OLLAMA_API_VERSION, config
from ollmlx.cli.client import CONNECT_ERROR, APIError, Client


@dataclass(frozen=True)
class Flag:
    long: str
    help: str
    kind: str = "bool"  # bool | string | int
    short: str = ""
    no_opt: str | None = None  # value of a bare string flag (cobra's NoOptDefVal)


@dataclass(frozen=True)
class Command:
    name: str
    use: str
    short: str
    flags: tuple[Flag, ...] = ()
    args: tuple[tuple[str, str], ...] = ()  # (dest, nargs)
    aliases: tuple[str, ...] = ()
    env: tuple[str, ...] = ("OLLAMA_HOST",)
    heartbeat: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


INSECURE = Flag("insecure", "Use an insecure registry")
COMMANDS: tuple[Command, ...] = (
    Command("serve", "serve", "Start ollmlx", (
        Flag("hostfile", "Run MLX models across the hosts of this mlx.launch hostfile (OLLMLX_HOSTFILE)", "string"),
    ), aliases=("start",), env=tuple(config.ENV_DOCS), heartbeat=False),
    Command("create", "create MODEL", "Create a model", (
        Flag("file", 'Name of the Modelfile (default "Modelfile")', "string", "f"),
        Flag("quantize", "Quantize model to this level (e.g. q4_K_M)", "string", "q"),
        Flag("draft-quantize", "Quantize draft model to this level", "string"),
        Flag("experimental", "Enable experimental safetensors model creation"),
        Flag("convert", "Convert the weights on import (mlx)", "string"),
    ), (("model", "1"),)),
    Command("show", "show MODEL", "Show information for a model", (
        Flag("license", "Show license of a model"),
        Flag("modelfile", "Show Modelfile of a model"),
        Flag("parameters", "Show parameters of a model"),
        Flag("template", "Show template of a model"),
        Flag("system", "Show system message of a model"),
        Flag("verbose", "Show detailed model information", short="v"),
    ), (("model", "1"),)),
    Command("run", "run MODEL [PROMPT]", "Run a model", (
        Flag("keepalive", "Duration to keep a model loaded (e.g. 5m)", "string"),
        Flag("verbose", "Show timings for response"),
        Flag("insecure", "Use an insecure registry"),
        Flag("nowordwrap", "Don't wrap words to the next line automatically"),
        Flag("format", "Response format (e.g. json)", "string"),
        Flag("think", "Enable thinking mode: true/false or high/medium/low for supported models", "string",
             no_opt="true"),
        Flag("hidethinking", "Hide thinking output (if provided)"),
        Flag("truncate", "For embedding models: truncate inputs exceeding context length (default: true). "
                         "Set --truncate=false to error instead"),
        Flag("dimensions", "Truncate output embeddings to specified dimension (embedding models only)", "int"),
        Flag("markdown", "Render answers as Markdown"),
    ), (("model", "1"), ("prompt", "*")), env=("OLLAMA_EDITOR", "OLLAMA_HOST", "OLLAMA_NOHISTORY")),
    Command("stop", "stop MODEL", "Stop a running model", args=(("model", "1"),)),
    Command("pull", "pull MODEL", "Pull a model from a registry", (INSECURE,), (("model", "1"),)),
    Command("push", "push MODEL", "Push a model to a registry", (INSECURE,), (("model", "1"),)),
    Command("list", "list", "List models", args=(("prefix", "?"),), aliases=("ls",)),
    Command("ps", "ps", "List running models", args=(("prefix", "?"),)),
    Command("cp", "cp SOURCE DESTINATION", "Copy a model", args=(("source", "1"), ("destination", "1"))),
    Command("rm", "rm MODEL [MODEL...]", "Remove a model", args=(("models", "+"),)),
)
BY_NAME = {alias: c for c in COMMANDS for alias in (c.name, *c.aliases)}


# -- help in cobra's layout ------------------------------------------------------------------

def _flag_lines(flags: list[tuple[str, str, str]]) -> str:
    width = max(len(left) for left, _, _ in flags)
    return "".join(f"  {left:<{width}}   {help_}\n" for left, help_, _ in flags)


def env_docs(names: tuple[str, ...]) -> str:
    if not names:
        return ""
    lines = ["", "Environment Variables:"]
    for name in names:
        default, desc = config.ENV_DOCS.get(name, ("", ""))
        shown = default if default else '""'
        lines.append(f"      {name:<27}   {desc} (default: {shown})")
    return "\n".join(lines) + "\n"


def command_help(cmd: Command) -> str:
    flags = []
    for f in cmd.flags:
        left = (f"-{f.short}, " if f.short else "    ") + f"--{f.long}"
        if f.kind != "bool":
            left += f" {f.kind}" if f.no_opt is None else f"[={f.no_opt}]"
        flags.append((left, f.help, f.long))
    flags.append(("-h, --help", f"help for {cmd.name}", "help"))
    flags.sort(key=lambda x: x[2])
    out = f"{cmd.short}\n\nUsage:\n  ollmlx {cmd.use}"
    out += " [flags]\n"
    if cmd.aliases:
        out += "\nAliases:\n  " + ", ".join((cmd.name, *cmd.aliases)) + "\n"
    out += "\nFlags:\n" + _flag_lines(flags)
    return out + env_docs(cmd.env)


def root_help() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = ["Large language model runner (MLX)", "", "Usage:", "  ollmlx [flags]", "  ollmlx [command]", "",
             "Available Commands:"]
    for c in COMMANDS:
        lines.append(f"  {c.name:<{max(width, 11)}} {c.short}")
    lines.append(f"  {'help':<{max(width, 11)}} Help about any command")
    lines += ["", "Flags:", "  -h, --help      help for ollmlx", "  -v, --version   Show version information", "",
              'Use "ollmlx [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse with cobra's help text and error line."""

    def __init__(self, prog: str, help_text: str = "") -> None:
        super().__init__(prog=prog, add_help=False)
        self.help_text = help_text

    def format_help(self) -> str:
        return self.help_text

    def error(self, message: str) -> Any:
        sys.stderr.write(f"Error: {message}\n")
        raise SystemExit(1)


def go_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid argument "{value}": strconv.ParseBool: parsing "{value}": invalid syntax')


def build_parser(cmd: Command) -> _Parser:
    p = _Parser(prog=f"ollmlx {cmd.name}", help_text=command_help(cmd))
    p.add_argument("-h", "--help", action="store_true")
    for f in cmd.flags:
        names = ([f"-{f.short}"] if f.short else []) + [f"--{f.long}"]
        if f.kind == "bool":
            p.add_argument(*names, dest=f.long, nargs="?", const=True, default=None, type=go_bool)
        elif f.kind == "int":
            p.add_argument(*names, dest=f.long, type=int, default=0)
        else:
            p.add_argument(*names, dest=f.long, default=None)
    p.add_argument("positionals", nargs="*")
    return p


def normalize_argv(cmd: Command, argv: list[str]) -> list[str]:
    """cobra's flag forms: a bare `--think` is `--think=true`; a bare bool flag takes no value
    (only `--flag=value` sets one), so the next word stays a positional argument."""
    out = []
    bools = {f"--{f.long}": f.long for f in cmd.flags if f.kind == "bool"}
    bools.update({f"-{f.short}": f.long for f in cmd.flags if f.kind == "bool" and f.short})
    no_opt = {f"--{f.long}": f.no_opt for f in cmd.flags if f.no_opt is not None}
    valued = {f"--{f.long}": f.long for f in cmd.flags if f.kind != "bool" and f.no_opt is None}
    valued.update({f"-{f.short}": f.long for f in cmd.flags if f.kind != "bool" and f.short})
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg in no_opt:
            out.append(f"{arg}={no_opt[arg]}")
        elif arg in bools:
            out.append(f"--{bools[arg]}=true")
        elif arg in valued and i + 1 < len(argv):
            # like pflag, the next word is the value even when it starts with "-" (`--keepalive -1s`)
            out.append(f"--{valued[arg]}={argv[i + 1]}")
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def bind_args(cmd: Command, args: argparse.Namespace) -> None:
    """Positional arguments onto their names, with cobra's ExactArgs / MinimumNArgs messages."""
    pos: list[str] = list(args.positionals)
    exact = [dest for dest, n in cmd.args if n == "1"]
    rest = next(((dest, n) for dest, n in cmd.args if n != "1"), None)
    if rest is None and len(pos) != len(exact):
        raise APIError(0, f"accepts {len(exact)} arg(s), received {len(pos)}")
    if (rest is not None and rest[1] == "+") or cmd.name == "run":
        least = len(exact) + (1 if rest and rest[1] == "+" else 0)
        if len(pos) < least:
            raise APIError(0, f"requires at least {least} arg(s), only received {len(pos)}")
    for dest in exact:
        setattr(args, dest, pos.pop(0))
    if rest is not None:
        dest, n = rest
        setattr(args, dest, pos if n != "?" else (pos[0] if pos else None))


# -- dispatch ------------------------------------------------------------------------------

def version(client: Client) -> int:
    try:
        server = str(client.get("/api/version")["version"])
    except (httpx.HTTPError, APIError, KeyError, ValueError):
        print("Warning: could not connect to a running Ollama instance")
        server = ""
    if server:
        print(f"ollmlx version is {server}")
    if server != OLLAMA_API_VERSION:
        print(f"Warning: client version is {OLLAMA_API_VERSION}")
    return 0


def dispatch(client: Client, cmd: Command, a: argparse.Namespace) -> int:
    from ollmlx.cli import models_cmd

    name = cmd.name
    if name == "create":
        from ollmlx.cli.create_cmd import create

        create(client, a.model, a.file, a.quantize, a.convert, getattr(a, "draft-quantize"))
    elif name == "show":
        flags = {f: bool(getattr(a, f)) for f in models_cmd.SHOW_FLAGS}
        models_cmd.cmd_show(client, a.model, flags, bool(a.verbose))
    elif name == "run":
        from ollmlx.cli.run_cmd import run

        return run(client, a.model, list(a.prompt), vars(a))
    elif name == "stop":
        models_cmd.cmd_stop(client, a.model)
    elif name == "pull":
        from ollmlx.cli.transfer_cmd import pull

        pull(client, a.model, bool(a.insecure))
    elif name == "push":
        from ollmlx.cli.transfer_cmd import push

        push(client, a.model, bool(a.insecure))
    elif name == "list":
        models_cmd.cmd_list(client, a.prefix or "")
    elif name == "ps":
        models_cmd.cmd_ps(client, a.prefix or "")
    elif name == "cp":
        models_cmd.cmd_cp(client, a.source, a.destination)
    elif name == "rm":
        models_cmd.cmd_rm(client, list(a.models))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the command is the first word that is no flag of the root command
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("--",):
        i += 1
    root_flags, rest = argv[:i], argv[i:]
    if not rest:
        if any(f in ("-v", "--version") for f in root_flags):
            return version(Client())
        sys.stdout.write(root_help())
        return 0
    word, rest = rest[0], rest[1:]
    if word == "help":
        target = BY_NAME.get(rest[0]) if rest else None
        sys.stdout.write(command_help(target) if target else root_help())
        return 0
    cmd = BY_NAME.get(word)
    if cmd is None:
        sys.stderr.write(f'Error: unknown command "{word}" for "ollmlx"\n')
        return 1
    try:
        args = build_parser(cmd).parse_intermixed_args(normalize_argv(cmd, rest))
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.help:
        sys.stdout.write(command_help(cmd))
        return 0
    if cmd.name == "serve":
        from ollmlx.cli.serve import serve

        return serve(hostfile=args.hostfile)
    client = Client()
    try:
        bind_args(cmd, args)
        if cmd.heartbeat:
            client.heartbeat()
        return dispatch(client, cmd, args)
    except APIError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except httpx.TransportError:
        print(f"Error: {CONNECT_ERROR}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
