"""Faults survived: processes killed at the worst moment, a full disk, a blob damaged on disk, two
servers on one store racing a create against a delete (ARCHITECTURE.md "Processes", "Store";
spec §0 streaming errors, §6 create/blobs, §16 layout, §18 scheduler).

After each fault: no zombie or orphan process, the store consistent (every manifest's blobs
present, no temp file or work directory left), and the server still serving. What was tried and
the figures are in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helpers import (
    Server,
    processes,
    runner_pids,
    running_server,
    smollm2_gguf,
    start_server,
    stop_server,
    wait_for,
)
from ollmlx.store.blobs import BlobStore
from ollmlx.store.verify import BlobVerifier, CorruptBlob

MODEL = "smollm2:135m"
LONG = {"model": MODEL, "prompt": "Tell me a very long story about dragons and castles.",
        "options": {"temperature": 0, "num_predict": 400}}


def zombies_of(pid: int) -> list[int]:
    return [p for p, ppid, state, _ in processes() if ppid == pid and state == "Z"]


def store_problems(models: Path) -> list[str]:
    """What makes a store inconsistent: a manifest naming a missing blob, temp files, work dirs."""
    problems = []
    blobs = models / "blobs"
    for m in (models / "manifests").glob("*/*/*/*"):
        if m.name.startswith("."):
            problems.append(f"manifest temp file {m}")
            continue
        doc = json.loads(m.read_bytes())
        for layer in [doc["config"], *doc["layers"]]:
            if not (blobs / layer["digest"].replace(":", "-")).is_file():
                problems.append(f"{m.relative_to(models)} names missing blob {layer['digest']}")
    problems += [f"temp file {p.name}" for p in blobs.glob("*-tmp")] if blobs.is_dir() else []
    work = models / ".tmp"
    problems += [f"work dir {p.name}" for p in work.iterdir()] if work.is_dir() else []
    return problems


def read_stream(url: str, body: dict, lines: list[dict], started: threading.Event) -> None:
    try:
        with httpx.stream("POST", url + "/api/generate", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line:
                    lines.append(json.loads(line))  # a truncated line would fail here
                    if len(lines) >= 2:
                        started.set()
    except httpx.HTTPError as exc:
        lines.append({"transport_error": repr(exc)})
    finally:
        started.set()


class SlowUpload:
    """A blob upload that trickles in and can be paused, so a server can be stopped mid-write."""

    def __init__(self, url: str, size: int = 8 << 20, chunk: int = 256 << 10) -> None:
        self.data = os.urandom(size)
        self.digest = "sha256:" + hashlib.sha256(self.data).hexdigest()
        self.chunk = chunk
        self.go = threading.Event()
        self.go.set()
        self.status: int | str | None = None
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)

    def _chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            self.go.wait()
            yield self.data[i:i + self.chunk]
            time.sleep(0.05)

    def _run(self, url: str) -> None:
        try:
            self.status = httpx.post(f"{url}/api/blobs/{self.digest}", content=self._chunks(), timeout=120).status_code
        except httpx.HTTPError as exc:
            self.status = repr(exc)


def temp_files(models: Path) -> list[Path]:
    return list((models / "blobs").glob("*-tmp"))


# -- runner and server processes -------------------------------------------------------------

def test_runner_sigkill_mid_stream_leaves_no_zombie_or_orphan(server: Server) -> None:
    """A runner killed mid-stream: the stream ends with an `{"error"}` line, the dead runner is
    reaped (no zombie), no other runner lingers, and the next request gets a fresh one."""
    lines: list[dict] = []
    with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=120) as r:
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
                if len(lines) == 2:
                    (pid,) = server.runners()
                    os.kill(pid, signal.SIGKILL)
    assert "error" in lines[-1] and "runner" in lines[-1]["error"], lines[-1]
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")), "killed runner not reaped (zombie)"
    assert zombies_of(server.proc.pid) == []
    assert runner_pids(server.proc.pid) == []
    r = httpx.post(server.url + "/api/generate", json={**LONG, "stream": False, "options": {"num_predict": 2}},
                   timeout=120)
    assert r.status_code == 200 and r.json()["done"]
    assert len(runner_pids(server.proc.pid)) == 1 and zombies_of(server.proc.pid) == []


@pytest.mark.slow
def test_sigterm_during_generation(server: Server, tmp_path: Path) -> None:
    """SIGTERM while two streams generate and a blob upload is half-way: each stream ends with an
    `{"error"}` line (no truncated line), the server exits promptly, every runner exits, and the
    store has nothing half-written (the upload's temp file is gone, no manifest was added)."""
    srv = start_server(tmp_path, models=server.models)  # a second server on the session's store
    try:
        manifests_before = sorted(p.name for p in (server.models / "manifests").rglob("*"))
        streams = []
        for i in range(2):
            lines: list[dict] = []
            started = threading.Event()
            body = {**LONG, "prompt": f"{LONG['prompt']} Part {i}."}
            threading.Thread(target=read_stream, args=(srv.url, body, lines, started), daemon=True).start()
            streams.append((lines, started))
        for _, started in streams:
            assert started.wait(120)
        upload = SlowUpload(srv.url, chunk=32 << 10)  # ~13 s: longer than the shutdown grace
        upload.thread.start()
        assert wait_for(lambda: bool(temp_files(server.models)), timeout=30)
        runners = srv.runners()
        assert len(runners) == 1
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        exit_seconds = time.monotonic() - t0
        def ended(lines: list[dict]) -> bool:
            return bool(lines) and ("error" in lines[-1] or bool(lines[-1].get("done")))

        for lines, _ in streams:
            assert wait_for(lambda lines=lines: ended(lines), 10)  # type: ignore[misc]
            last = lines[-1]
            assert "error" in last and "shutting down" in last["error"], last
            assert all("transport_error" not in x for x in lines), lines[-1]
        assert wait_for(lambda: runner_pids(srv.proc.pid) == [], timeout=10)
        upload.thread.join(30)
        assert upload.status != 201 and not BlobStore(server.models).exists(upload.digest)
        assert temp_files(server.models) == []
        assert store_problems(server.models) == []
        assert sorted(p.name for p in (server.models / "manifests").rglob("*")) == manifests_before
        print(f"SIGTERM to exit: {exit_seconds:.2f}s")
        assert exit_seconds < 8, f"server took {exit_seconds:.1f}s to stop"
        assert "shutting down" in srv.log()
    finally:
        stop_server(srv, signal.SIGKILL)


@pytest.mark.slow
def test_killed_server_leaves_a_temp_file_the_next_start_removes(server: Server, tmp_path: Path) -> None:
    """SIGKILL cannot clean up: the half-written blob stays until a server starts on the store and
    sweeps it. A temp file another live server is still writing is left alone (it holds a flock)."""
    victim = start_server(tmp_path / "victim", models=server.models)
    upload = SlowUpload(victim.url)
    upload.thread.start()
    assert wait_for(lambda: bool(temp_files(server.models)), timeout=30)
    victim.proc.kill()
    victim.proc.wait(10)
    (orphan,) = temp_files(server.models)
    old = time.time() - 600
    os.utime(orphan, (old, old))
    # meanwhile the session server writes a blob of its own, paused half-way
    live = SlowUpload(server.url)
    live.go.clear()
    live.thread.start()
    assert wait_for(lambda: len(temp_files(server.models)) == 2, timeout=30)
    (live_tmp,) = [p for p in temp_files(server.models) if p != orphan]
    os.utime(live_tmp, (old, old))
    with running_server(tmp_path / "next", models=server.models) as nxt:
        assert not orphan.exists()
        assert live_tmp.exists()
        assert "removed 1 temp files" in nxt.log()
    live.go.set()
    live.thread.join(60)
    assert live.status == 201
    BlobStore(server.models).remove(live.digest)
    assert temp_files(server.models) == [] and store_problems(server.models) == []


def test_a_killed_servers_runner_folders_are_swept_by_the_next_server(server: Server, tmp_path: Path) -> None:
    """A server killed with SIGKILL cannot remove its runners' socket folders; its runner exits on
    its own (its parent is gone), and the next server to start removes the folder."""
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-t-", dir="/tmp"))  # short: a socket path holds ~100 bytes
    try:
        _sweep_after_kill(server, tmp_path, tmp)
    finally:
        shutil.rmtree(tmp)


def _sweep_after_kill(server: Server, tmp_path: Path, tmp: Path) -> None:
    from ollmlx.runner import folders

    with running_server(tmp_path / "victim", {"TMPDIR": str(tmp)}, models=server.models) as victim:
        r = httpx.post(victim.url + "/api/generate", timeout=300,
                       json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}})
        assert r.status_code == 200, r.text
        (folder,) = tmp.glob(folders.PREFIX + "*")
        victim.proc.kill()
        victim.proc.wait(10)
        assert wait_for(lambda: not folders._answers(folder / folders.SOCKET), timeout=60), "the runner outlived its server"
        assert folder.is_dir()
        with running_server(tmp_path / "next", {"TMPDIR": str(tmp)}, models=server.models) as nxt:
            assert not folder.exists()
            assert "removed 1 runner folders left by servers that were killed" in nxt.log()


# -- a full disk -----------------------------------------------------------------------------

def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _blob_bytes(models: Path) -> int:
    return sum(p.stat().st_size for p in (models / "blobs").iterdir()) if (models / "blobs").is_dir() else 0


@pytest.mark.slow
def test_disk_full_during_create(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    """A create that runs out of space: a clear error, no manifest pointing at a partial blob, and
    the space it took given back. The models dir is a small tmpfs (root in the sandbox); where
    mounting is not permitted, RLIMIT_FSIZE on the server process stands in (EFBIG, same path)."""
    models = tmp_path / "models"
    models.mkdir()
    gguf_size = smollm2_gguf().stat().st_size
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(models)],
                             capture_output=True).returncode == 0
    record_property("disk_full_method", "tmpfs" if mounted else "RLIMIT_FSIZE")
    srv = start_server(tmp_path, models=models)
    try:
        def limit(nbytes: int) -> None:
            if mounted:
                subprocess.run(["mount", "-o", f"remount,size={nbytes}", str(models)], check=True)
            else:
                resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (nbytes, nbytes))

        def measure() -> int:
            return _used_bytes(models) if mounted else _blob_bytes(models)

        empty = measure()
        limit(20 << 20)
        modelfile = tmp_path / "Modelfile"
        modelfile.write_text(f"FROM {smollm2_gguf()}\n")
        r = srv.cli("create", "full", "-f", str(modelfile))
        assert r.returncode != 0 and "no space left on device" in r.stderr, r.stderr
        assert not list((models / "manifests").rglob("*")) or not any(p.is_file() for p in (models / "manifests").rglob("*"))
        assert store_problems(models) == [] and temp_files(models) == []
        assert measure() - empty < 256 << 10, "the partial upload's space was not given back"

        # room for the model, not for what the next create adds: its own layer writes fail
        limit(gguf_size + (24 << 20) if mounted else 1 << 40)
        r = srv.cli("create", "base", "-f", str(modelfile))
        assert r.returncode == 0, r.stderr
        after_base = measure()
        if mounted:
            limit(after_base + (1 << 20))
        else:
            limit(1 << 20)
        r = httpx.post(srv.url + "/api/create", json={"model": "licensed", "from": "base", "stream": False,
                                                      "license": "x" * (3 << 20), "system": "s" * (2 << 20)},
                       timeout=120)
        assert r.status_code == 500 and "no space left on device" in r.json()["error"], r.text
        assert httpx.post(srv.url + "/api/show", json={"model": "licensed"}).status_code == 404
        assert store_problems(models) == [] and temp_files(models) == []
        assert measure() - after_base < 256 << 10
        limit(gguf_size + (64 << 20) if mounted else resource.RLIM_INFINITY)
        r = httpx.post(srv.url + "/api/generate", json={"model": "base", "prompt": "hi", "stream": False,
                                                        "keep_alive": 0, "options": {"num_predict": 2}}, timeout=120)
        assert r.status_code == 200, r.text
    finally:
        stop_server(srv)
        if mounted:
            subprocess.run(["umount", "-l", str(models)], capture_output=True)


# -- a blob damaged on disk after import -----------------------------------------------------

def _model_blob(models: Path, name: str = "smollm2/135m") -> Path:
    manifest = json.loads((models / "manifests/registry.ollama.ai/library" / name).read_text())
    (layer,) = [x for x in manifest["layers"] if x["mediaType"] == "application/vnd.ollama.image.model"]
    return models / "blobs" / layer["digest"].replace(":", "-")


@pytest.mark.slow
def test_corrupt_blob_is_detected_at_load_and_never_served(server: Server, tmp_path: Path) -> None:
    """A byte flipped in the model's GGUF blob after import (same size): the load is refused with
    an error naming the blob, no runner starts, and it stays refused on the next request."""
    models = tmp_path / "models"
    shutil.copytree(server.models, models)
    blob = _model_blob(models)
    with open(blob, "r+b") as f:
        f.seek(blob.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with running_server(tmp_path, models=models) as srv:
        for _ in range(2):
            r = httpx.post(srv.url + "/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False},
                           timeout=120)
            assert r.status_code == 500, r.text
            err = r.json()["error"]
            assert "corrupt" in err and blob.name.replace("-", ":") in err, err
            assert srv.runners() == []
        assert "starting runner" not in srv.log()
        assert "is corrupt" in srv.log()
        assert httpx.get(srv.url + "/api/ps").json()["models"] == []
        # a truncated blob (a copy that stopped short) is refused the same way
        with open(blob, "r+b") as f:
            f.truncate(blob.stat().st_size - 4096)
        r = httpx.post(srv.url + "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                    "stream": False}, timeout=120)
        # (the server reads GGUF metadata for capabilities first, and that read already fails)
        assert r.status_code == 500 and any(w in r.json()["error"] for w in ("corrupt", "invalid GGUF")), r.text
        assert srv.runners() == []


def test_blob_verifier_hashes_once_per_identity(tmp_path: Path) -> None:
    """store/verify.py: a blob is re-hashed once per (path, size, mtime, inode) per process; a
    rewrite is hashed again; damage that keeps the identity is found by the next process."""
    blobs = BlobStore(tmp_path)
    digest = blobs.write_bytes(b"weights" * 1000)
    v = BlobVerifier(blobs)
    v.verify([digest])
    v.verify([digest])
    assert v.hashed_bytes == 7000
    path = blobs.path(digest)
    st = path.stat()
    path.write_bytes(b"Weights" * 1000)  # same size, new mtime: hashed again and refused
    with pytest.raises(CorruptBlob):
        v.verify([digest], "m")
    path.write_bytes(b"weights" * 1000)
    v.verify([digest])
    st = path.stat()
    with open(path, "r+b") as f:  # damage that keeps size and mtime (a bit flip on disk)
        f.write(b"W")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    v.verify([digest])  # same identity: this process trusts its earlier hash
    with pytest.raises(CorruptBlob):
        BlobVerifier(blobs).verify([digest])  # the next server process does not


# -- two servers, one store --------------------------------------------------------------------

@pytest.mark.slow
def test_two_servers_one_store_create_races_delete(server: Server, tmp_path: Path) -> None:
    """Server A creates models from a GGUF blob while server B deletes the only other model that
    references it (its delete prunes unreferenced blobs). Whatever the interleaving: every manifest's
    blobs exist, both servers list the same models, each create either succeeds or says why, and
    once everything is deleted no blob is left behind."""
    models = tmp_path / "models"
    shutil.copytree(server.models, models)
    gguf = _model_blob(models)
    digest = gguf.name.replace("-", ":")
    data = smollm2_gguf().read_bytes()
    referenced = {layer["digest"].replace(":", "-") for m in (models / "manifests").glob("*/*/*/*")
                  for layer in [json.loads(m.read_bytes())["config"], *json.loads(m.read_bytes())["layers"]]}
    strays = {p.name for p in (models / "blobs").iterdir()} - referenced  # left by earlier tests
    a = start_server(tmp_path / "a", models=models)
    b = start_server(tmp_path / "b", models=models)
    try:
        previous = MODEL
        outcomes: dict[str, int] = {}
        for i in range(6):
            if httpx.head(f"{a.url}/api/blobs/{digest}").status_code == 404:
                assert httpx.post(f"{a.url}/api/blobs/{digest}", content=data, timeout=120).status_code == 201
            results: dict[str, httpx.Response] = {}
            name = f"race{i}"
            body = ({"model": name, "files": {"model.gguf": digest}, "stream": False} if i % 2 == 0 else
                    {"model": name, "from": previous, "system": f"round {i}", "stream": False})

            def create(body: dict = body, results: dict = results) -> None:
                results["create"] = httpx.post(a.url + "/api/create", json=body, timeout=300)

            def delete(victim: str = previous, results: dict = results) -> None:
                results["delete"] = httpx.request("DELETE", b.url + "/api/delete", json={"model": victim}, timeout=300)

            threads = [threading.Thread(target=create), threading.Thread(target=delete)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            assert results["delete"].status_code == 200, results["delete"].text
            c = results["create"]
            key = f"{c.status_code} {c.json().get('error', '')}".strip()
            outcomes[key] = outcomes.get(key, 0) + 1
            if c.status_code != 200:
                # an error in Ollama's shape: the base or its blob went away meanwhile. Its text
                # depends on where the create was (a base not here is pulled first, as Ollama does,
                # and test servers have nothing to pull from; a blob pruned under a GGUF read
                # reads as not GGUF); what must hold is the store check below
                assert c.status_code in (400, 404, 500) and c.json()["error"], c.text
            assert store_problems(models) == [], f"round {i}"
            tags_a = sorted(m["name"] for m in httpx.get(a.url + "/api/tags", timeout=60).json()["models"])
            tags_b = sorted(m["name"] for m in httpx.get(b.url + "/api/tags", timeout=60).json()["models"])
            assert tags_a == tags_b
            previous = name if c.status_code == 200 else previous
            if c.status_code != 200:
                previous = MODEL
                r = httpx.post(a.url + "/api/create", json={"model": MODEL, "files": {"model.gguf": digest},
                                                             "stream": False}, timeout=300)
                if r.status_code != 200:  # the blob itself was pruned: upload it again
                    httpx.post(f"{a.url}/api/blobs/{digest}", content=data, timeout=120)
                    r = httpx.post(a.url + "/api/create", json={"model": MODEL, "files": {"model.gguf": digest},
                                                                 "stream": False}, timeout=300)
                assert r.status_code == 200, r.text
        for m in httpx.get(a.url + "/api/tags", timeout=60).json()["models"]:
            assert httpx.request("DELETE", b.url + "/api/delete", json={"model": m["name"]}).status_code == 200
        assert store_problems(models) == []
        assert {p.name for p in (models / "blobs").iterdir()} <= strays
        print("create outcomes while racing a delete:", outcomes)
    finally:
        stop_server(a)
        stop_server(b)
