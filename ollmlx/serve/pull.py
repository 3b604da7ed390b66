"""Pull and push, end to end, with Ollama's progress statuses (spec §6 /api/pull, /api/push).

Where a name is pulled from:
- `hf.co/<org>/<repo>[:<tag>]` (or `huggingface.co/...`): Hugging Face;
- a name in the catalogue (`qwen3:0.6b`): the MLX repository the catalogue names;
- anything else: the Ollama registry named by the name's host (OCI distribution protocol).
A request's `source` ("ollama" or "hf") forces one side.

The manifest is written last, after every blob it names is in the store and verified, so an
interrupted or failed pull never leaves a model that points at missing or wrong bytes.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ollmlx import config
from ollmlx.errors import BadRequest, OllmlxError
from ollmlx.registry import catalogue
from ollmlx.registry import huggingface as hf
from ollmlx.registry.download import Downloader, Transfer, adopt_file, check_free_space, short
from ollmlx.registry.ollama import RegistryClient, RegistryError, parse_manifest
from ollmlx.store import manifests as mf
from ollmlx.store.blobs import normalize_digest
from ollmlx.store.create import CreateSpec, Creator
from ollmlx.store.manifests import Layer
from ollmlx.store.names import ModelName
from ollmlx.store.store import Store

Emit = Callable[[dict[str, Any]], None]
SOURCES = {"ollama": "ollama", "hf": "hf", "huggingface": "hf"}
TICK = 0.06
TENSOR_CONCURRENCY = 8


@dataclass
class Source:
    kind: str  # "ollama" | "hf"
    repo: str | None = None  # hf: org/repo
    selector: str | None = None  # hf: quantization (GGUF) or revision (MLX); None: the default


def resolve_source(name: ModelName, source: str | None) -> Source:
    if source and source.lower() not in SOURCES:
        raise BadRequest(f'invalid source "{source}": use "ollama" or "hf"')
    forced = SOURCES.get((source or "").lower())
    if forced == "ollama":
        return Source("ollama")
    if name.host.lower() in hf.HF_HOSTS:
        return Source("hf", f"{name.namespace}/{name.model}", name.tag)
    entry = catalogue.lookup(name)
    if entry:
        repo, _, quant = entry.partition(":")
        return Source("hf", repo, quant or None)
    if forced == "hf":
        if name.namespace.lower() != "library":
            return Source("hf", f"{name.namespace}/{name.model}", name.tag)
        raise BadRequest(f'no Hugging Face repository is known for "{name.display_shortest()}": '
                         "add it to the catalogue or pull hf.co/<org>/<repo>")
    return Source("ollama")


def progress(status: str, digest: str, total: int, completed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "digest": digest}
    if total:
        out["total"] = total
    if completed:  # Go's omitempty
        out["completed"] = completed
    return out


def require_mlx() -> None:
    if importlib.util.find_spec("mlx") is None:  # find_spec does not import it
        raise OllmlxError("this model requires MLX support, but the MLX runtime is not available")


# -- the Ollama registry ---------------------------------------------------------------------
async def pull_ollama(store: Store, name: ModelName, emit: Emit, insecure: bool) -> None:
    try:
        old = store.entry(name)
    except OllmlxError:
        old = None  # a damaged manifest is simply replaced
    async with RegistryClient(name, insecure) as reg:
        emit({"status": "pulling manifest"})
        try:
            data = await reg.manifest()
        except RegistryError as exc:
            raise RegistryError(f"pull model manifest: {exc.message}") from exc
        manifest = parse_manifest(data)
        layers = list({normalize_digest(x.digest): x for x in [*manifest.layers, manifest.config]}.values())
        missing = sum(x.size for x in layers if not store.blobs.exists(x.digest))
        check_free_space(store.blobs.dir, missing)
        dl = Downloader(store.blobs)
        if manifest.layers_of(mf.MT_TENSOR):
            require_mlx()
            await _fetch_all(dl, reg, layers, emit)
        else:
            for layer in layers:
                d = normalize_digest(layer.digest)
                await dl.fetch(d, layer.size, functools.partial(reg.open_blob, d),
                               lambda t: emit(progress(f"pulling {short(t.digest)}", t.digest, t.total, t.completed)))
            # every blob was hashed before it got its name (download.py); cached ones when written
            emit({"status": "verifying sha256 digest"})
    emit({"status": "writing manifest"})
    await asyncio.to_thread(store.write_manifest_bytes, name, data)
    unused = (old.manifest.digests() - manifest.digests()) if old else set()
    if unused and not config.noprune():
        if not manifest.layers_of(mf.MT_TENSOR):
            emit({"status": "removing unused layers"})
        await asyncio.to_thread(store.prune, {normalize_digest(d) for d in unused})
    emit({"status": "success"})


async def _fetch_all(dl: Downloader, reg: RegistryClient, layers: list[Layer], emit: Emit) -> None:
    """Tensor-layer models are many small blobs: fetched concurrently, reported as one
    `pulling model` (Ollama's x/transfer)."""
    total = sum(x.size for x in layers)
    seen: dict[str, Transfer] = {}
    sem = asyncio.Semaphore(TENSOR_CONCURRENCY)

    async def one(layer: Layer) -> None:
        d = normalize_digest(layer.digest)
        async with sem:
            await dl.fetch(d, layer.size, functools.partial(reg.open_blob, d),
                           lambda t: seen.__setitem__(d, t))

    def report() -> None:
        emit(progress("pulling model", "sha256:model", total, sum(t.completed for t in seen.values())))

    work = asyncio.gather(*(one(x) for x in layers))
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=TICK)
            report()
            if done:
                work.result()
                return
    finally:
        work.cancel()


# -- Hugging Face ----------------------------------------------------------------------------
class _Ticker:
    """Byte counts from huggingface_hub's threads, emitted at most every 60 ms."""

    def __init__(self, emit: Emit, status: str, digest: str, total: int) -> None:
        self.emit, self.status, self.digest, self.total = emit, status, digest, total
        self.completed = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.completed = min(self.total, self.completed + n)
            now = time.monotonic()
            if now - self.last >= TICK or self.completed == self.total:
                self.last = now
                self.emit(progress(self.status, self.digest, self.total, self.completed))


def pull_hf(store: Store, name: ModelName, src: Source, emit: Emit, cancel: threading.Event) -> None:
    """Runs in a worker thread (huggingface_hub is synchronous)."""
    assert src.repo is not None
    emit({"status": "pulling manifest"})
    repo = hf.listing(src.repo)
    selector = src.selector if src.selector and src.selector.lower() != "latest" else None
    quant_tag = selector is not None and bool(repo.ggufs) and hf.quant_of(f"x-{selector}.gguf") != ""
    if repo.is_model_dir and not quant_tag:
        if selector:
            repo = hf.listing(src.repo, revision=selector)
        require_mlx()
        files = hf.model_dir_files(repo)
        check_free_space(store.blobs.dir, sum(f.size for f in files))
        ticker = _Ticker(emit, "pulling model", "sha256:model", sum(f.size for f in files))
        paths = {f.name: (hf.download(repo, f, ticker.add, cancel), f) for f in files}
    elif repo.ggufs:
        f = hf.choose_gguf(repo, selector)
        check_free_space(store.blobs.dir, f.size)
        digest = f.digest or "sha256:" + "0" * 64
        ticker = _Ticker(emit, f"pulling {short(digest)}", digest, f.size)
        paths = {f.name: (hf.download(repo, f, ticker.add, cancel), f)}
    else:
        raise hf.HFError(f"{src.repo} has neither GGUF files nor config.json + safetensors")
    # files already in the Hugging Face cache report nothing while "downloading": say they are all here
    emit(progress(ticker.status, ticker.digest, ticker.total, ticker.total))
    emit({"status": "verifying sha256 digest"})
    digests = {fname: adopt_file(store.blobs, path, f.digest) for fname, (path, f) in paths.items()}

    def forward(obj: dict[str, Any]) -> None:
        if obj.get("status") in ("writing manifest", "success"):
            emit(obj)

    Creator(store, forward).run(CreateSpec(name=name, files=digests))
    # the whole-file safetensors blobs were split into tensor layers: drop what no manifest uses
    store.prune(set(digests.values()))


# -- entry points ----------------------------------------------------------------------------
async def pull(store: Store, name: ModelName, emit: Emit, insecure: bool = False, source: str | None = None) -> None:
    src = resolve_source(name, source)
    if src.kind == "ollama":
        await pull_ollama(store, name, emit, insecure)
        return
    cancel = threading.Event()
    try:
        await asyncio.to_thread(pull_hf, store, name, src, emit, cancel)
    finally:
        cancel.set()  # the thread stops at its next progress update if we were cancelled


def pull_blocking(store: Store, name: ModelName, emit: Emit) -> None:
    """A pull from synchronous code in a worker thread (create's `from` of a model not here)."""
    asyncio.run(pull(store, name, emit))


async def push(store: Store, name: ModelName, emit: Emit, insecure: bool = False) -> None:
    emit({"status": "retrieving manifest"})
    entry = store.entry(name)
    if entry is None:
        emit({"status": "couldn't retrieve manifest"})
        raise OllmlxError(f"open {store.manifests.path(name)}: no such file or directory")
    raw = entry.path.read_bytes()
    manifest = entry.manifest
    layers = list({normalize_digest(x.digest): x for x in [*manifest.layers, manifest.config]}.values())
    async with RegistryClient(name, insecure) as reg:
        for layer in layers:
            d = normalize_digest(layer.digest)
            status = f"pushing {short(d)}"
            if await reg.blob_exists(d):
                emit(progress(status, d, layer.size, layer.size))
                continue
            emit(progress("starting upload", d, layer.size, 0))
            sent = [0]

            def add(n: int, sent: list[int] = sent) -> None:
                sent[0] += n

            upload = asyncio.create_task(reg.upload(d, store.blobs.path(d), layer.size, layer.from_, add))
            try:
                while True:
                    done, _ = await asyncio.wait({upload}, timeout=TICK)
                    emit(progress(status, d, layer.size, layer.size if done and not upload.exception() else sent[0]))
                    if done:
                        upload.result()
                        break
            finally:
                upload.cancel()
        emit({"status": "pushing manifest"})
        await reg.put_manifest(raw, manifest.media_type)
    emit({"status": "success"})


async def events(work: Callable[[Emit], Awaitable[None]]) -> AsyncIterator[dict[str, Any]]:
    """Run `work` as a task and yield what it emits (from any thread); its error is raised after
    the events before it; abandoning the iterator cancels the work."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def emit(obj: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(q.put_nowait, ("event", obj))

    async def run() -> None:
        try:
            await work(emit)
            loop.call_soon(q.put_nowait, ("done", None))
        except Exception as exc:
            loop.call_soon(q.put_nowait, ("error", exc))

    task = asyncio.create_task(run())
    try:
        while True:
            kind, value = await q.get()
            if kind == "event":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        task.cancel()
