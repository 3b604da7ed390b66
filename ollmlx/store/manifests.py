"""Manifests: `<models>/manifests/<host>/<namespace>/<model>/<tag>`, Ollama's JSON, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollmlx.errors import StoreError
from ollmlx.store.names import ModelName

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MT = "application/vnd.ollama.image."
MT_MODEL = MT + "model"
MT_ADAPTER = MT + "adapter"
MT_PROJECTOR = MT + "projector"
MT_TEMPLATE = MT + "template"
MT_PROMPT = MT + "prompt"  # legacy alias of template
MT_SYSTEM = MT + "system"
MT_PARAMS = MT + "params"
MT_MESSAGES = MT + "messages"
MT_LICENSE = MT + "license"
MT_TENSOR = MT + "tensor"
MT_JSON = MT + "json"


@dataclass
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Layer:
        return cls(str(d["mediaType"]), str(d["digest"]), int(d.get("size", 0)), d.get("from"), d.get("name"))


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    def to_bytes(self) -> bytes:
        doc = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            return cls(
                config=Layer.from_json(doc["config"]),
                layers=[Layer.from_json(x) for x in doc.get("layers") or []],
                schema_version=int(doc.get("schemaVersion", 2)),
                media_type=str(doc.get("mediaType", MANIFEST_MEDIA_TYPE)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"invalid manifest: {exc}") from exc

    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}

    def total_size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]


@dataclass
class ManifestEntry:
    name: ModelName
    manifest: Manifest
    digest: str  # hex sha256 of the manifest file's bytes
    mtime: float
    path: Path


class ManifestStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "manifests"
        # the last entry read from each manifest file, by its stat: every request reads its model's
        # manifest, and a write replaces the file (a new inode), so an unchanged stat means
        # unchanged bytes
        self._read: dict[Path, tuple[tuple[int, int, int], ManifestEntry]] = {}

    def path(self, name: ModelName) -> Path:
        return self.dir / name.manifest_relpath()

    def resolve(self, name: ModelName) -> ModelName | None:
        """The stored name matching `name` case-insensitively (Ollama's getExistingName)."""
        if self.path(name).is_file():
            return name
        want = name.fold_key()
        for entry_name in self._walk():
            if entry_name.fold_key() == want:
                return entry_name
        return None

    def _walk(self) -> list[ModelName]:
        out: list[ModelName] = []
        if not self.dir.is_dir():
            return out
        for p in self.dir.glob("*/*/*/*"):
            if p.is_file() and not p.name.startswith("."):
                name = ModelName.from_manifest_relpath(p.relative_to(self.dir))
                if name is not None:
                    out.append(name)
        return out

    def get(self, name: ModelName) -> ManifestEntry | None:
        found = self.resolve(name)
        if found is None:
            return None
        path = self.path(found)
        try:
            st = path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            seen = self._read.get(path)
            if seen is not None and seen[0] == key and seen[1].name == found:
                return seen[1]
            data = path.read_bytes()
            st = path.stat()
        except FileNotFoundError:
            return None
        entry = ManifestEntry(found, Manifest.from_bytes(data), hashlib.sha256(data).hexdigest(), st.st_mtime, path)
        if (st.st_ino, st.st_mtime_ns, st.st_size) == key:  # not replaced while being read
            self._read[path] = (key, entry)
        return entry

    def list(self) -> list[ManifestEntry]:
        out = []
        for name in self._walk():
            try:
                entry = self.get(name)
            except StoreError:
                continue  # a damaged manifest is skipped from listings, never fatal
            if entry is not None:
                out.append(entry)
        return out

    def write(self, name: ModelName, manifest: Manifest) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(manifest.to_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def copy(self, src: ModelName, dst: ModelName) -> None:
        entry = self.get(src)
        if entry is None:
            raise StoreError(f"model {src.display_shortest()} not found")
        self.write(dst, entry.manifest)

    def delete(self, name: ModelName) -> None:
        found = self.resolve(name) or name
        path = self.path(found)
        path.unlink(missing_ok=True)
        self._read.pop(path, None)
        # prune now-empty directories up to manifests/
        parent = path.parent
        while parent != self.dir and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def referenced_digests(self) -> set[str]:
        out: set[str] = set()
        for entry in self.list():
            out |= entry.manifest.digests()
        return out
