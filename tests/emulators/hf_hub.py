"""A Hugging Face Hub endpoint on 127.0.0.1 serving repositories the way `huggingface_hub` reads
them (point HF_ENDPOINT at it):

- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: id, sha, tags, siblings (with
  size, blobId and lfs {sha256, size} when `?blobs=true`);
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: X-Repo-Commit, ETag (git blob id, or the LFS sha256),
  X-Linked-Etag / X-Linked-Size for LFS files, Content-Length, Range;
- `GET /api/models?search=&filter=&limit=`: the model listing;
- errors with the X-Error-Code values huggingface_hub maps to its exceptions; private repositories
  need `Authorization: Bearer <token>` (HF_TOKEN).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from emulators.http import Body, EmulatorServer, Handler, body_len

LFS_SUFFIXES = (".safetensors", ".gguf", ".model", ".bin")


@dataclass
class Repo:
    repo_id: str
    files: dict[str, Body]
    tags: list[str] = field(default_factory=list)
    library: str | None = None
    token: str | None = None  # private: this token is required
    downloads: int = 0
    commit: str = ""
    revisions: dict[str, str] = field(default_factory=dict)  # branch → commit
    _meta: dict[str, dict[str, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()
        self.revisions.setdefault("main", self.commit)
        for name, body in self.files.items():
            data_hash = hashlib.sha256()
            git = hashlib.sha1(f"blob {body_len(body)}\0".encode())
            if isinstance(body, Path):
                with open(body, "rb") as f:
                    while chunk := f.read(1 << 20):
                        data_hash.update(chunk)
                        git.update(chunk)
            else:
                data_hash.update(body)
                git.update(body)
            lfs = name.endswith(LFS_SUFFIXES)
            self._meta[name] = {"size": body_len(body), "blobId": git.hexdigest(),
                                "sha256": data_hash.hexdigest() if lfs else None}

    def sibling(self, name: str, blobs: bool) -> dict[str, object]:
        out: dict[str, object] = {"rfilename": name}
        meta = self._meta[name]
        if blobs:
            out["size"] = meta["size"]
            out["blobId"] = meta["blobId"]
            if meta["sha256"]:
                out["lfs"] = {"sha256": meta["sha256"], "size": meta["size"], "pointerSize": 134}
        return out

    def info(self, blobs: bool) -> dict[str, object]:
        return {"id": self.repo_id, "modelId": self.repo_id, "_id": self.commit[:24], "sha": self.commit,
                "private": self.token is not None, "tags": self.tags, "library_name": self.library,
                "downloads": self.downloads, "likes": self.downloads // 10,
                "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2024-06-01T00:00:00.000Z",
                "siblings": [self.sibling(n, blobs) for n in sorted(self.files)]}


class HubHandler(Handler):
    app: HubEmulator

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self.reply(status, json.dumps({"error": message}).encode(), headers)

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.app.repos.get(repo_id)
        if repo is None or (repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}"):
            self._error(401 if repo else 404, "RepoNotFound", "Repository not found")
            return None
        return repo

    def do_GET(self) -> None:
        self.record()
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        if path == "/api/models":
            self._list(query)
            return
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):].split("/")
            repo = self._repo("/".join(rest[:2]))
            if repo is None:
                return
            if len(rest) >= 4 and rest[2] == "revision":
                rev = "/".join(rest[3:])
                if rev not in repo.revisions and rev != repo.commit:
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                    return
            blobs = (query.get("blobs") or ["false"])[0] == "true"
            self.reply(200, json.dumps(repo.info(blobs)).encode())
            return
        segs = path.lstrip("/").split("/")
        if len(segs) >= 5 and segs[2] == "resolve":
            self._resolve("/".join(segs[:2]), segs[3], "/".join(segs[4:]))
            return
        self.reply(404, b"Not Found", content_type="text/plain")

    do_HEAD = do_GET

    def _resolve(self, repo_id: str, rev: str, filename: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        commit = repo.revisions.get(rev, rev if rev == repo.commit else None)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return
        body = repo.files.get(filename)
        if body is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist", commit)
            return
        meta = repo._meta[filename]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{meta["blobId"]}"'}
        if meta["sha256"]:
            headers.update({"X-Linked-Etag": f'"{meta["sha256"]}"', "X-Linked-Size": str(meta["size"]),
                            "ETag": f'"{meta["sha256"]}"'})
        self.app.downloads.append(filename) if self.command == "GET" else None
        self.send_body(body, headers)

    def _list(self, query: dict[str, list[str]]) -> None:
        if self.app.listing_error:
            self._error(self.app.listing_error, "Forbidden", "listing unavailable")
            return
        search = (query.get("search") or [""])[0].lower()
        filters = {f.lower() for f in query.get("filter", [])}
        limit = int((query.get("limit") or ["1000"])[0])
        found = [r for r in sorted(self.app.repos.values(), key=lambda r: -r.downloads)
                 if r.token is None and search in r.repo_id.lower()
                 and filters <= {t.lower() for t in r.tags} | ({r.library} if r.library else set())]
        self.reply(200, json.dumps([{k: v for k, v in r.info(False).items() if k != "siblings"}
                                    for r in found[:limit]]).encode())


class HubEmulator(EmulatorServer):
    handler = HubHandler

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, Repo] = {}
        self.downloads: list[str] = []
        self.listing_error = 0  # answer the model listing with this status (an unavailable Hub)

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo_id] = repo
        return repo
