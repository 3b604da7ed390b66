"""The model-management commands: list/ls, ps, show, cp, rm, stop (cmd/cmd.go ListHandler,
ListRunningHandler, ShowHandler/showInfo, CopyHandler, DeleteHandler, StopHandler; spec §23)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ollmlx.cli import tables
from ollmlx.cli.client import APIError, Client
from ollmlx.cli.humanize import human_bytes, human_number, human_time, parse_timestamp
from ollmlx.options import go_format_float, go_format_value

SHOW_FLAGS = ("license", "modelfile", "parameters", "system", "template")


def list_rows(models: list[dict[str, Any]], prefix: str = "", now: float | None = None) -> list[list[str]]:
    rows = []
    for m in models:
        if prefix and not m["name"].lower().startswith(prefix.lower()):
            continue
        size = "-" if m.get("remote_model") else human_bytes(int(m.get("size") or 0))
        modified = human_time(parse_timestamp(m.get("modified_at", "")), "Never", now)
        rows.append([m["name"], m["digest"][:12], size, modified])
    return rows


def processor(size: int, vram: int) -> str:
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = math.floor((size - vram) / size * 100 + 0.5)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def ps_rows(models: list[dict[str, Any]], prefix: str = "", now: float | None = None) -> list[list[str]]:
    now = time.time() if now is None else now
    rows = []
    for m in models:
        if prefix and not m["name"].startswith(prefix):
            continue
        size, vram = int(m.get("size") or 0), int(m.get("size_vram") or 0)
        expires = parse_timestamp(m.get("expires_at", ""))
        until = "Stopping..." if expires and now - expires > 0 else human_time(expires, "Never", now)
        rows.append([m["name"], m["digest"][:12], human_bytes(size), processor(size, vram),
                     str(int(m.get("context_length") or 0)), until])
    return rows


def cmd_list(client: Client, prefix: str = "") -> None:
    rows = list_rows(client.get("/api/tags")["models"], prefix)
    sys.stdout.write(tables.render(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))


def cmd_ps(client: Client, prefix: str = "") -> None:
    rows = ps_rows(client.get("/api/ps")["models"], prefix)
    sys.stdout.write(tables.render(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))


def _metadata_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return go_format_float(float(v))
    if isinstance(v, list):
        # as many items as fit in 10 cells, then "...+N more]"
        shown, width = 0, 1
        for i, item in enumerate(v):
            w = len(go_format_value(item)) + (2 if i > 0 else 0)
            if width + w > 10 and i > 0:
                break
            width += w
            shown += 1
        if shown < len(v):
            return go_format_value(v[:shown]).removesuffix("]") + f" ...+{len(v) - shown} more]"
        return go_format_value(v)
    if v is None:
        return "<nil>"
    return "map[string]interface {}" if isinstance(v, dict) else type(v).__name__


def _head(text: str, n: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in (lines if n < 0 else lines[:n])]
    if 0 <= n < len(lines):
        rows.append(["", "..."])
    return rows


def _number(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return go_format_float(float(v)) if not float(v).is_integer() else str(int(v))
    return None


def show_info(resp: dict[str, Any], verbose: bool, out: TextIO) -> None:
    """showInfo: the Model, Capabilities, Projector, Parameters, [Metadata, Tensors,] System and
    License sections, each a header line and a borderless table."""

    def section(header: str, rows: list[list[str]]) -> None:
        out.write(f"  {header}\n")
        limit = 100 if header in ("Template", "System", "License") else tables.MAX_COL_WIDTH
        out.write(tables.render(rows, col_limit=limit))
        out.write("\n")

    details = resp.get("details") or {}
    info = resp.get("model_info")
    rows: list[list[str]] = []
    if resp.get("remote_host"):
        rows += [["", "Remote model", resp.get("remote_model", "")], ["", "Remote URL", resp["remote_host"]]]
    if info is not None:
        arch = info.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""
        if arch:
            rows.append(["", "architecture", arch])
        params = details.get("parameter_size") or ""
        if not params and isinstance(info.get("general.parameter_count"), int | float):
            params = human_number(int(info["general.parameter_count"]))
        if params:
            rows.append(["", "parameters", params])
        for label, key in (("context length", "context_length"), ("embedding length", "embedding_length")):
            value = _number(info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, value])
    else:
        rows += [["", "architecture", details.get("family", "")], ["", "parameters", details.get("parameter_size", "")]]
    rows.append(["", "quantization", details.get("quantization_level", "")])
    if resp.get("requires"):
        rows.append(["", "requires", resp["requires"]])
    section("Model", rows)

    if resp.get("capabilities"):
        section("Capabilities", [["", c] for c in resp["capabilities"]])

    proj = resp.get("projector_info")
    if proj is not None:
        rows = []
        arch = proj.get("general.architecture") if isinstance(proj.get("general.architecture"), str) else ""
        if arch:
            rows.append(["", "architecture", arch])
        if isinstance(proj.get("general.parameter_count"), int | float):
            rows.append(["", "parameters", human_number(int(proj["general.parameter_count"]))])
        for label, suffix in (("embedding length", "embedding_length"), ("dimensions", "projection_dim")):
            for modality in ("vision", "audio"):
                value = _number(proj.get(f"{arch}.{modality}.{suffix}"))
                if value is not None:
                    rows.append(["", label, value])
                    break
        section("Projector", rows)

    if resp.get("parameters"):
        section("Parameters", [["", *line.split()] for line in resp["parameters"].splitlines() if line])

    if info is not None and verbose:
        section("Metadata", [["", k, _metadata_value(info[k])] for k in sorted(info)])

    if resp.get("tensors") and verbose:
        section("Tensors", [["", t["name"], t["type"], "[" + " ".join(str(d) for d in t["shape"]) + "]"]
                            for t in resp["tensors"]])

    if resp.get("system"):
        section("System", _head(resp["system"], 2))
    if resp.get("license"):
        section("License", _head(resp["license"], 2))


def cmd_show(client: Client, model: str, flags: dict[str, bool], verbose: bool) -> None:
    chosen = [f for f in SHOW_FLAGS if flags.get(f)]
    if len(chosen) > 1:
        raise APIError(0, "only one of '--license', '--modelfile', '--parameters', '--system', "
                          "or '--template' can be specified")
    resp = client.post("/api/show", {"model": model, "verbose": verbose})
    if "image" in (resp.get("capabilities") or []):
        raise APIError(0, "image generation models are not currently supported")
    if chosen:
        value = resp.get(chosen[0]) or ""
        # Println for license, modelfile and parameters; Print for system and template
        sys.stdout.write(value + ("\n" if chosen[0] in ("license", "modelfile", "parameters") else ""))
        return
    show_info(resp, verbose, sys.stdout)


def cmd_cp(client: Client, source: str, destination: str) -> None:
    client.post("/api/copy", {"source": source, "destination": destination})
    print(f"copied '{source}' to '{destination}'")


def unload(client: Client, model: str) -> None:
    """loadOrUnloadModel with keep_alive 0: show (so a missing model says so), then unload."""
    client.post("/api/show", {"model": model})
    client.post("/api/generate", {"model": model, "keep_alive": 0})


def cmd_rm(client: Client, models: list[str]) -> None:
    for name in models:
        try:
            unload(client, name)
        except APIError as exc:
            if "not found" not in exc.message.lower():
                print(f"Warning: unable to stop model '{name}'", file=sys.stderr)
        client.delete("/api/delete", {"model": name})
        print(f"deleted '{name}'")


def cmd_stop(client: Client, model: str) -> None:
    # Ollama unloads whatever the name; ollmlx also says so when the model is not loaded.
    loaded = [m["name"] for m in client.get("/api/ps")["models"]]
    want = model if ":" in model.split("/")[-1] else model + ":latest"
    try:
        if model not in loaded and want not in loaded:
            raise APIError(404, "not found")
        unload(client, model)
    except APIError as exc:
        if "not found" in exc.message:
            raise APIError(exc.status, f'couldn\'t find model "{model}" to stop') from exc
        raise
