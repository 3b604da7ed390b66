"""The name catalogue: familiar Ollama names (`qwen3:0.6b`, `llama3.2:1b`) → the matching Hugging
Face MLX repository. Shipped as `ollmlx/data/catalogue.json`; `<OLLMLX_HOME>/catalogue.json`
(or the file named by OLLMLX_CATALOGUE) adds entries or overrides them, and an entry mapped to
null there sends that name back to the Ollama registry."""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path

from ollmlx import config
from ollmlx.store.names import ModelName, parse_name

log = logging.getLogger("ollmlx.registry")


def user_file() -> Path:
    value = os.environ.get("OLLMLX_CATALOGUE", "").strip()
    return Path(value).expanduser() if value else config.home_dir() / "catalogue.json"


def _read(text: str, where: str) -> dict[str, str | None]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        log.warning("ignoring catalogue %s: %s", where, exc)
        return {}
    if not isinstance(doc, dict):
        log.warning("ignoring catalogue %s: not a JSON object", where)
        return {}
    return {k: v for k, v in doc.items() if not k.startswith("_") and (v is None or isinstance(v, str))}


def _key(name: str | ModelName) -> tuple[str, str, str, str]:
    n = parse_name(name) if isinstance(name, str) else name
    return n.fold_key()


def load() -> dict[tuple[str, str, str, str], tuple[str, str | None]]:
    """Folded name → (name as written, repository or None)."""
    shipped = resources.files("ollmlx").joinpath("data", "catalogue.json").read_text()
    entries = _read(shipped, "ollmlx/data/catalogue.json")
    path = user_file()
    if path.is_file():
        entries.update(_read(path.read_text(), str(path)))
    return {_key(k): (k, v) for k, v in entries.items() if parse_name(k).is_valid()}


def lookup(name: ModelName) -> str | None:
    """The repository (`org/repo[:quant]`) for a name, or None when the catalogue has no entry."""
    hit = load().get(name.fold_key())
    return hit[1] if hit else None


def matching(query: str) -> list[tuple[str, str]]:
    """(name, repository) pairs whose name or repository contains `query` (case-insensitive)."""
    q = query.lower()
    return sorted((shown, repo) for shown, repo in load().values()
                  if repo and (q in shown.lower() or q in repo.lower()))
