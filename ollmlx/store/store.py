"""The model store: blobs + manifests, and resolved models (what a manifest's layers mean)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ollmlx.errors import ModelNotFound, StoreError
from ollmlx.store import manifests as mf
from ollmlx.store.blobs import BlobStore
from ollmlx.store.gguf_info import GGUFInfo, read_gguf
from ollmlx.store.locking import StoreLock
from ollmlx.store.manifests import Manifest, ManifestEntry, ManifestStore
from ollmlx.store.names import ModelName

log = logging.getLogger("ollmlx.store")


@dataclass
class Model:
    """A stored model with its layers read: what the server needs to serve it."""

    name: ModelName
    entry: ManifestEntry
    config: dict[str, Any]
    blobs: BlobStore
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    # parsed JSON layers by name: read-only to callers, as the blobs under them never change
    _json: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False, compare=False)

    @property
    def manifest(self) -> Manifest:
        return self.entry.manifest

    @property
    def digest(self) -> str:
        return self.entry.digest

    @property
    def format(self) -> str:
        fmt = self.config.get("model_format")
        if fmt:
            return str(fmt)
        return "safetensors" if self.manifest.layers_of(mf.MT_TENSOR) else "gguf"

    @property
    def model_layer(self) -> mf.Layer | None:
        layers = self.manifest.layers_of(mf.MT_MODEL)
        return layers[0] if layers else None

    @property
    def gguf_path(self) -> Path | None:
        layer = self.model_layer
        return self.blobs.path(layer.digest) if layer else None

    @property
    def adapter_paths(self) -> list[Path]:
        return [self.blobs.path(layer.digest) for layer in self.manifest.layers_of(mf.MT_ADAPTER)]

    @property
    def projector_paths(self) -> list[Path]:
        return [self.blobs.path(layer.digest) for layer in self.manifest.layers_of(mf.MT_PROJECTOR)]

    @cached_property
    def gguf(self) -> GGUFInfo | None:
        path = self.gguf_path
        if path is None or not path.is_file():
            return None
        return read_gguf(path)

    def json_layer(self, name: str) -> dict[str, Any] | None:
        """The parsed JSON file `name` (tokenizer_config.json...), read once per Model; callers
        must not change it."""
        if name not in self._json:
            self._json[name] = self._read_json_layer(name)
        return self._json[name]

    def _read_json_layer(self, name: str) -> dict[str, Any] | None:
        for layer in self.manifest.layers_of(mf.MT_JSON):
            if layer.name == name:
                try:
                    data = json.loads(self.blobs.read_bytes(layer.digest))
                except ValueError:
                    return None
                return data if isinstance(data, dict) else None
        return None

    @cached_property
    def hf_config(self) -> dict[str, Any]:
        return self.json_layer("config.json") or {}

    def json_layer_paths(self) -> dict[str, str]:
        return dict(self._layer_paths[1])

    def tensor_paths(self) -> list[str]:
        return list(self._layer_paths[0])

    @cached_property
    def _layer_paths(self) -> tuple[list[str], dict[str, str]]:
        """(tensor files, JSON files by name): built once, as every request's load request names
        them (one layer per tensor: hundreds of paths for an 8B model)."""
        return ([str(self.blobs.path(layer.digest)) for layer in self.manifest.layers_of(mf.MT_TENSOR)],
                {layer.name: str(self.blobs.path(layer.digest))
                 for layer in self.manifest.layers_of(mf.MT_JSON) if layer.name})

    @property
    def size(self) -> int:
        return self.manifest.total_size()


# How many resolved models a Store keeps: each request resolves its model, and re-reading the
# manifest's layers (config, template, tokenizer_config.json) cost ~1 ms per request.
RESOLVED_MODELS = 32


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved: OrderedDict[tuple[str, str, float], Model] = OrderedDict()
        self._resolved_lock = threading.Lock()
        self.blobs = BlobStore(root)
        self.manifests = ManifestStore(root)
        # Serialises manifest writes against pruning so a create never loses a fresh blob; holds
        # across processes too (two servers on one store, ollmlx/store/locking.py).
        self.lock = StoreLock(root)

    def entry(self, name: ModelName) -> ManifestEntry | None:
        return self.manifests.get(name)

    def load(self, name: ModelName, display: str | None = None) -> Model:
        entry = self.manifests.get(name)
        if entry is None:
            raise ModelNotFound(display if display is not None else name.display_shortest())
        try:
            return self.model_from_entry(entry)
        except StoreError:
            # a delete elsewhere (another server on this store) removed the manifest and pruned
            # its blobs between our two reads: the model is gone, say so rather than "blob missing"
            if self.manifests.get(name) is None:
                raise ModelNotFound(display if display is not None else name.display_shortest()) from None
            raise

    def model_from_entry(self, entry: ManifestEntry) -> Model:
        """The model a manifest describes. Kept by the manifest's digest, path and mtime: its
        blobs are content-addressed, so the same manifest always reads the same; a re-created or
        copied model has another key."""
        key = (entry.digest, str(entry.path), entry.mtime)
        with self._resolved_lock:
            model = self._resolved.get(key)
            if model is not None:
                self._resolved.move_to_end(key)
                return model
        model = self._read_model(entry)
        with self._resolved_lock:
            self._resolved[key] = model
            while len(self._resolved) > RESOLVED_MODELS:
                self._resolved.popitem(last=False)
        return model

    def _read_model(self, entry: ManifestEntry) -> Model:
        m = entry.manifest

        def text(mt: str) -> str | None:
            layers = m.layers_of(mt)
            return self.blobs.read_bytes(layers[-1].digest).decode("utf-8", "replace") if layers else None

        try:
            config = json.loads(self.blobs.read_bytes(m.config.digest)) if m.config.digest else {}
        except (ValueError, StoreError):
            config = {}
        params: dict[str, Any] = {}
        for layer in m.layers_of(mf.MT_PARAMS):
            try:
                params.update(json.loads(self.blobs.read_bytes(layer.digest)))
            except ValueError as exc:
                raise StoreError(f"invalid params layer: {exc}") from exc
        messages: list[dict[str, Any]] = []
        for layer in m.layers_of(mf.MT_MESSAGES):
            messages = json.loads(self.blobs.read_bytes(layer.digest))
        template = text(mf.MT_TEMPLATE) or text(mf.MT_PROMPT)
        licenses = [self.blobs.read_bytes(layer.digest).decode("utf-8", "replace") for layer in m.layers_of(mf.MT_LICENSE)]
        return Model(entry.name, entry, config if isinstance(config, dict) else {}, self.blobs,
                     template=template, system=text(mf.MT_SYSTEM), params=params,
                     messages=messages, licenses=licenses)

    def list(self) -> list[ManifestEntry]:
        return sorted(self.manifests.list(), key=lambda e: e.mtime, reverse=True)

    def write_manifest(self, name: ModelName, manifest: Manifest) -> None:
        with self.lock:  # checked under the lock: a prune elsewhere cannot slip in between
            for digest in manifest.digests():
                if not self.blobs.exists(digest):
                    raise StoreError(f"refusing to write a manifest that points at a missing blob {digest}")
            self.manifests.write(name, manifest)

    def write_manifest_bytes(self, name: ModelName, data: bytes) -> Manifest:
        """Write a manifest exactly as received (a registry's bytes keep their digest, as Ollama
        stores them); it must parse and every blob it names must already be in the store."""
        manifest = Manifest.from_bytes(data)
        path = self.manifests.path(name)
        with self.lock:
            for digest in manifest.digests():
                if not self.blobs.exists(digest):
                    raise StoreError(f"refusing to write a manifest that points at a missing blob {digest}")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return manifest

    def delete(self, name: ModelName) -> None:
        with self.lock:
            entry = self.manifests.get(name)
            if entry is None:
                raise ModelNotFound(name.display_shortest())
            self.manifests.delete(entry.name)
            self.prune(entry.manifest.digests())

    def prune(self, candidates: set[str] | None = None, grace_seconds: float = 0.0) -> int:
        """Remove blobs no manifest references. `candidates` limits the sweep (after a delete)."""
        with self.lock:
            try:
                referenced = self._referenced()
            except StoreError as exc:
                log.warning("not pruning: %s", exc)
                return 0
            pool = candidates if candidates is not None else self.blobs.all_digests()
            now = time.time()
            removed = 0
            for digest in pool - referenced:
                path = self.blobs.path(digest)
                try:
                    if grace_seconds and now - path.stat().st_mtime < grace_seconds:
                        continue
                except FileNotFoundError:
                    continue
                self.blobs.remove(digest)
                removed += 1
            return removed

    def prune_unused(self, grace_seconds: float = 3600.0) -> int:
        """At server start, unless OLLAMA_NOPRUNE (spec §16): blobs no manifest references and
        older than the grace period go, and so do empty manifest directories."""
        removed = self.prune(grace_seconds=grace_seconds)
        root = self.manifests.dir
        if root.is_dir():
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()  # only succeeds when empty
                except OSError:
                    pass
        return removed

    def _referenced(self) -> set[str]:
        """Digests referenced by every manifest; a damaged manifest stops pruning (never guess)."""
        out: set[str] = set()
        root = self.manifests.dir
        if not root.is_dir():
            return out
        for p in root.glob("*/*/*/*"):
            if p.is_file() and not p.name.startswith("."):
                out |= Manifest.from_bytes(p.read_bytes()).digests()
        return out
