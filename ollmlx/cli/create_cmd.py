"""`ollmlx create NAME [-f Modelfile]`: resolve FROM, upload files as blobs, then /api/create."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ollmlx.cli.client import APIError, Client
from ollmlx.cli.progress import Progress, Spinner
from ollmlx.cli.transfer_cmd import StatusStream
from ollmlx.store.modelfile import parse_modelfile_bytes
from ollmlx.store.names import parse_name

# Files of an HF/MLX directory that make up a model (weights, config, tokenizer, pooling).
MODEL_FILE_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt", ".tiktoken")
MAX_DEPTH = 2


def _expand(arg: str, base: Path) -> Path:
    p = Path(os.path.expanduser(arg))
    return p if p.is_absolute() else base / p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def model_dir_files(root: Path) -> list[Path]:
    """Regular files of a model directory. Symlinks are followed only when they stay inside it."""
    root = root.resolve()
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and depth < MAX_DEPTH - 1]
        for name in filenames:
            p = Path(dirpath) / name
            if name.startswith(".") or not name.endswith(MODEL_FILE_SUFFIXES):
                continue
            real = p.resolve()
            if not real.is_relative_to(root) or not real.is_file():
                continue
            out.append(p)
    return sorted(out)


def upload_files(client: Client, files: list[Path], root: Path, progress: Progress) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for p in files:
        if not p.is_file():
            raise ValueError(f"{p} is not a regular file")
        digest = _sha256(p)
        spinner = Spinner(f"copying file {digest} 0%")
        progress.add(spinner)

        def report(done: int, total: int, spinner: Spinner = spinner, digest: str = digest) -> None:
            spinner.message = f"copying file {digest} {100 * done // max(total, 1)}%"

        try:
            client.upload_blob(digest, str(p), report)
        finally:
            spinner.message = f"copying file {digest} 100%"
            spinner.stop()
        rel = p.name if p == root else str(p.relative_to(root)).replace(os.sep, "/")
        mapping[rel] = digest
    return mapping


def build_request(client: Client, name: str, modelfile_path: Path | None, progress: Progress,
                  quantize: str | None = None) -> dict[str, Any]:
    if modelfile_path is not None and modelfile_path.is_file():
        mf = parse_modelfile_bytes(modelfile_path.read_bytes())
        base = modelfile_path.resolve().parent
    else:  # Ollama falls back to `FROM .` when the Modelfile is missing
        mf = parse_modelfile_bytes(b"FROM .\n")
        base = Path.cwd()
    fields = mf.create_fields()
    req: dict[str, Any] = {"model": name}
    gathering = Spinner("gathering model components")
    progress.add(gathering)
    for arg in fields.from_:
        target = _expand(arg, base)
        if target.is_file():
            req["files"] = upload_files(client, [target], target, progress)
        elif target.is_dir():
            files = model_dir_files(target)
            if not files:
                raise ValueError(f"no model files found in {target}")
            req["files"] = upload_files(client, files, target, progress)
        else:
            req["from"] = arg
    if fields.adapters:
        target = _expand(fields.adapters[-1], base)
        paths = model_dir_files(target) if target.is_dir() else [target]
        req["adapters"] = upload_files(client, paths, target, progress)
    if fields.drafts:
        target = _expand(fields.drafts[-1], base)
        paths = model_dir_files(target) if target.is_dir() else [target]
        req["draft_files"] = upload_files(client, paths, target, progress)
    for key in ("template", "system", "renderer", "parser", "requires"):
        value = getattr(fields, key)
        if value is not None:
            req[key] = value
    if fields.license:
        req["license"] = fields.license
    if fields.parameters:
        req["parameters"] = fields.parameters
    if fields.messages:
        req["messages"] = fields.messages
    if quantize:
        req["quantize"] = quantize
    gathering.stop()
    return req


def create(client: Client, name: str, modelfile: str | None, quantize: str | None = None,
           convert: str | None = None, draft_quantize: str | None = None) -> None:
    """CreateHandler: the name is checked first, then the Modelfile read, files uploaded as blobs
    and /api/create's statuses drawn. `convert` asks the server to convert the weights (`mlx`)."""
    if not parse_name(name).is_valid():
        raise APIError(0, f"invalid model name: {name}")
    if modelfile and not Path(modelfile).is_file():
        raise APIError(0, "specified Modelfile wasn't found")
    progress = Progress()
    path = Path(modelfile) if modelfile else Path("Modelfile")
    try:
        req = build_request(client, name, path, progress, quantize)
        if draft_quantize:
            if not req.get("draft_files"):
                raise APIError(0, "--draft-quantize requires a DRAFT model")
            req["draft_quantize"] = draft_quantize
        if convert:
            req["convert"] = convert
        StatusStream(progress, "create").consume(client.stream("/api/create", req))
    finally:
        progress.stop()
