"""Model discovery: catalogue names plus Hugging Face's model listing, with a local metadata cache.

Ollama has no search API (ollama.com/search is a web page), so `GET /api/search?q=` is ollmlx's
own: catalogue entries first (what `ollmlx pull <name>` gets), then Hugging Face repositories as
pullable `hf.co/<org>/<repo>` names. Hub answers are cached under `<OLLMLX_HOME>/cache/search` for
OLLMLX_SEARCH_TTL seconds (default an hour); an expired entry is still served, marked stale,
when the Hub cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ollmlx import config
from ollmlx.errors import OllmlxError
from ollmlx.registry import catalogue
from ollmlx.registry import huggingface as hf

DEFAULT_TTL = 3600.0
MAX_LIMIT = 100


def ttl_seconds() -> float:
    try:
        return float(os.environ.get("OLLMLX_SEARCH_TTL", "") or DEFAULT_TTL)
    except ValueError:
        return DEFAULT_TTL


def cache_dir() -> Path:
    return config.home_dir() / "cache" / "search"


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _cache_path(query: str, fmt: str, limit: int) -> Path:
    key = hashlib.sha256(json.dumps([_endpoint(), query, fmt, limit]).encode()).hexdigest()
    return cache_dir() / f"{key}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("models"), list) else None


def _write_cache(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".search-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def _format_of(tags: list[str], library: str | None) -> str:
    lowered = {t.lower() for t in tags} | ({library.lower()} if library else set())
    for fmt in ("mlx", "gguf", "safetensors"):
        if fmt in lowered:
            return fmt
    return "unknown"


def _hub(query: str, fmt: str, limit: int) -> list[dict[str, Any]]:
    from huggingface_hub import HfApi

    with hf.hub_errors("search"):
        found = HfApi().list_models(search=query or None, filter=fmt or None, limit=limit, sort="downloads")
        out = []
        for m in found:
            tags = list(getattr(m, "tags", None) or [])
            modified = getattr(m, "last_modified", None) or getattr(m, "created_at", None)
            out.append({
                "name": f"hf.co/{m.id}", "model": f"hf.co/{m.id}", "source": "hf", "repository": m.id,
                "format": _format_of(tags, getattr(m, "library_name", None)),
                "downloads": int(getattr(m, "downloads", 0) or 0), "likes": int(getattr(m, "likes", 0) or 0),
                "modified_at": modified.isoformat() if modified is not None else None,
            })
    return out


def search(query: str, fmt: str = "", limit: int = 20) -> dict[str, Any]:
    limit = max(1, min(MAX_LIMIT, limit))
    named = [{"name": name, "model": name, "source": "catalogue", "repository": repo, "format": "mlx"}
             for name, repo in catalogue.matching(query)] if fmt in ("", "mlx") else []
    path = _cache_path(query, fmt, limit)
    cached = _read_cache(path)
    stale = False
    if cached is not None and time.time() - float(cached.get("fetched_at", 0)) < ttl_seconds():
        hub = cached["models"]
    else:
        try:
            hub = _hub(query, fmt, limit)
            _write_cache(path, {"fetched_at": time.time(), "query": query, "models": hub})
        except OllmlxError as exc:
            if cached is None:
                raise OllmlxError(f"search: {exc.message}") from exc
            hub, stale = cached["models"], True
    out: dict[str, Any] = {"models": named + hub}
    if stale:
        out["stale"] = True
    return out
