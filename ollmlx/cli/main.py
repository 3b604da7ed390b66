"""`ollmlx` command line: the commands of `ollama` (spec §23)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ollmlx import __version__, config
from ollmlx.cli.client import APIError, Client
from ollmlx.cli.humanize import human_bytes, human_time, table


def _parse_ts(s: str) -> float:
    import datetime

    if not s:
        return 0.0
    s = s.replace("Z", "+00:00")
    if "." in s:  # Python wants at most 6 fractional digits
        head, _, rest = s.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits):]
        s = f"{head}.{digits[:6]}{tz}"
    return datetime.datetime.fromisoformat(s).timestamp()


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    models = client.get("/api/tags")["models"]
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    for m in models:
        if args.prefix and not m["name"].startswith(args.prefix):
            continue
        rows.append([m["name"], m["digest"][:12], human_bytes(m["size"]), human_time(_parse_ts(m["modified_at"]))])
    sys.stdout.write(table(rows))
    return 0


def cmd_ps(client: Client, args: argparse.Namespace) -> int:
    models = client.get("/api/ps")["models"]
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
    for m in models:
        if args.prefix and not m["name"].startswith(args.prefix):
            continue
        size, vram = m.get("size", 0), m.get("size_vram", 0)
        if vram == 0:
            proc = "100% CPU"
        elif vram >= size:
            proc = "100% GPU"
        else:
            cpu = int(100 * (size - vram) / size)
            proc = f"{cpu}%/{100 - cpu}% CPU/GPU"
        until = human_time(_parse_ts(m.get("expires_at", "")), "Never")
        rows.append([m["name"], m["digest"][:12], human_bytes(size), proc, str(m.get("context_length", "")), until])
    sys.stdout.write(table(rows))
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    flags = [f for f in ("license", "modelfile", "parameters", "system", "template") if getattr(args, f)]
    if len(flags) > 1:
        raise APIError(0, "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified")
    info = client.post("/api/show", {"model": args.model, "verbose": args.verbose})
    if flags:
        print(info.get(flags[0], ""))
        return 0
    mi = info.get("model_info", {})
    arch = mi.get("general.architecture", info.get("details", {}).get("family", ""))
    rows = [["architecture", str(arch)], ["parameters", info.get("details", {}).get("parameter_size", "")]]
    ctx = mi.get(f"{arch}.context_length") or mi.get(f"{arch}.max_position_embeddings")
    if ctx:
        rows.append(["context length", str(ctx)])
    emb = mi.get(f"{arch}.embedding_length") or mi.get(f"{arch}.hidden_size")
    if emb:
        rows.append(["embedding length", str(emb)])
    rows.append(["quantization", info.get("details", {}).get("quantization_level", "")])
    out = ["  Model"] + ["    " + line for line in table(rows, padding=4).splitlines()]
    caps = info.get("capabilities") or []
    if caps:
        out += ["", "  Capabilities"] + [f"    {c}" for c in caps]
    if info.get("parameters"):
        out += ["", "  Parameters"] + ["    " + line for line in info["parameters"].splitlines()]
    if info.get("system"):
        out += ["", "  System"] + ["    " + line for line in info["system"].splitlines()[:2]]
    if info.get("license"):
        out += ["", "  License"] + ["    " + line for line in info["license"].splitlines()[:2]]
    print("\n".join(out) + "\n")
    return 0


def cmd_rm(client: Client, args: argparse.Namespace) -> int:
    for name in args.models:
        try:  # unload first, like ollama
            client.post("/api/generate", {"model": name, "keep_alive": 0})
        except APIError:
            pass
        client.delete("/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def cmd_stop(client: Client, args: argparse.Namespace) -> int:
    loaded = [m["name"] for m in client.get("/api/ps")["models"]]
    want = args.model if ":" in args.model.split("/")[-1] else args.model + ":latest"
    if args.model not in loaded and want not in loaded:
        raise APIError(0, f'couldn\'t find model "{args.model}" to stop')
    client.post("/api/generate", {"model": args.model, "keep_alive": 0})
    return 0


def cmd_cp(client: Client, args: argparse.Namespace) -> int:
    client.post("/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def cmd_create(client: Client, args: argparse.Namespace) -> int:
    from ollmlx.cli.create_cmd import create

    create(client, args.model, args.file, args.quantize)
    return 0


def cmd_run(client: Client, args: argparse.Namespace) -> int:
    from ollmlx.cli.run_cmd import run

    opts: dict[str, Any] = {"verbose": args.verbose, "format": args.format or None,
                            "keepalive": args.keepalive, "think": args.think}
    prompt = " ".join(args.prompt) if args.prompt else None
    return run(client, args.model, prompt, opts)


def cmd_version(client: Client, _: argparse.Namespace) -> int:
    try:
        server = client.get("/api/version")["version"]
    except Exception:
        print("Warning: could not connect to a running Ollama instance")
        print(f"Warning: client version is {__version__}")
        return 0
    print(f"ollmlx version is {server}")
    if server != __version__:
        print(f"Warning: client version is {__version__}")
    return 0


def serve_help() -> str:
    lines = ["Environment Variables:"]
    for name, (default, desc) in config.ENV_DOCS.items():
        lines.append(f"      {name:<26} {desc} (default: {default})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ollmlx", description="Large language model runner (MLX)")
    p.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = p.add_subparsers(dest="command")
    SUBPARSERS.clear()
    sub.add_parser("serve", aliases=["start"], help="Start ollmlx", epilog=serve_help(),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    c = sub.add_parser("create", help="Create a model")
    c.add_argument("model")
    c.add_argument("-f", "--file", default=None, help='Name of the Modelfile (default "Modelfile")')
    c.add_argument("-q", "--quantize", default=None, help="Quantize model to this level (e.g. q4_K_M)")
    s = sub.add_parser("show", help="Show information for a model")
    s.add_argument("model")
    for flag in ("license", "modelfile", "parameters", "system", "template"):
        s.add_argument(f"--{flag}", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true")
    r = sub.add_parser("run", help="Run a model")
    r.add_argument("model")
    r.add_argument("prompt", nargs="*")
    r.add_argument("--verbose", action="store_true")
    r.add_argument("--format", default="")
    r.add_argument("--keepalive", default=None)
    r.add_argument("--think", nargs="?", const=True, default=None)
    r.add_argument("--nowordwrap", action="store_true")
    r.add_argument("--hidethinking", action="store_true")
    st = sub.add_parser("stop", help="Stop a running model")
    st.add_argument("model")
    for name in ("list", "ls"):
        lp = sub.add_parser(name, help="List models")
        lp.add_argument("prefix", nargs="?", default="")
    pp = sub.add_parser("ps", help="List running models")
    pp.add_argument("prefix", nargs="?", default="")
    cp = sub.add_parser("cp", help="Copy a model")
    cp.add_argument("source")
    cp.add_argument("destination")
    rm = sub.add_parser("rm", help="Remove a model")
    rm.add_argument("models", nargs="+")
    SUBPARSERS.update(sub.choices)
    return p


SUBPARSERS: dict[str, argparse.ArgumentParser] = {}
COMMANDS = {"create": cmd_create, "show": cmd_show, "run": cmd_run, "stop": cmd_stop, "list": cmd_list,
            "ls": cmd_list, "ps": cmd_ps, "cp": cmd_cp, "rm": cmd_rm}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, _ = parser.parse_known_args(argv)
    if args.command:
        # flags may come after positional arguments (`run MODEL --verbose PROMPT`), as with cobra
        sub = SUBPARSERS[args.command]
        rest = argv[argv.index(args.command) + 1:]
        args = sub.parse_intermixed_args(rest, argparse.Namespace(command=args.command, version=False))
    if args.command in ("serve", "start"):
        from ollmlx.cli.serve import serve

        return serve()
    client = Client()
    try:
        if args.version:
            return cmd_version(client, args)
        if not args.command:
            parser.print_help()
            return 0
        client.heartbeat()
        return COMMANDS[args.command](client, args)
    except APIError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main())
