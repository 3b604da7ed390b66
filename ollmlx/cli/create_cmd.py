"""`ollmlx create NAME [-f Modelfile]`: resolve FROM, upload files as blobs, then /api/create."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ollmlx.cli.client import Client
from ollmlx.cli.progress import Progress
from ollmlx.store.modelfile import parse_modelfile_bytes

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
        status = f"copying file {digest}"

        def report(done: int, total: int, status: str = status) -> None:
            progress.update({"status": status, "total": total, "completed": done})

        client.upload_blob(digest, str(p), report)
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
    progress.update({"status": "gathering model components"})
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
    return req


def create(client: Client, name: str, modelfile: str | None, quantize: str | None = None) -> None:
    progress = Progress()
    path = Path(modelfile) if modelfile else Path("Modelfile")
    try:
        req = build_request(client, name, path, progress, quantize)
        for obj in client.stream("/api/create", req):
            progress.update(obj)
    finally:
        progress.done()
