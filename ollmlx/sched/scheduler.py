"""The scheduler (spec §18): one runner per loaded model, loaded on demand, kept alive by
`keep_alive` timers, evicted to make room, reloaded when a load-time option changes, and
respawned by the next request after a crash. Memory comes back when a runner process exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ollmlx import config
from ollmlx.errors import RequestCanceled, ServerBusy
from ollmlx.runner.protocol import (
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelSpec,
    RunnerInfo,
)
from ollmlx.sched import memory

log = logging.getLogger("ollmlx.sched")


class Runner(Protocol):
    """What the scheduler needs of a runner (RunnerProcess, or a fake in unit tests)."""

    info: RunnerInfo | None
    stopping: bool

    @property
    def pid(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    async def start(self, timeout: float) -> RunnerInfo: ...

    async def wait(self) -> int: ...

    async def stop(self, grace: float = 5.0) -> None: ...

    # the work a loaded runner does for the services (RunnerProcess implements these)
    def completion(self, req: CompletionRequest) -> AsyncIterator[dict[str, Any]]: ...

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]: ...

    async def detokenize(self, tokens: list[int]) -> str: ...

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse: ...

    async def refresh_info(self) -> RunnerInfo | None: ...


RunnerFactory = Callable[[str, ModelSpec, int, int], Runner]


@dataclass(frozen=True)
class LoadRequest:
    key: str  # identity of the model's weights (manifest digest)
    name: str  # display name (for /api/ps)
    engine: str
    spec: ModelSpec
    num_ctx: int
    parallel: int
    load_options: tuple[tuple[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    memory: int = field(default=0, compare=False)  # estimated bytes once loaded (0: unknown)


@dataclass
class Loaded:
    req: LoadRequest
    runner: Runner
    keep_alive: float  # seconds; math.inf = forever
    refcount: int = 0
    expires_at: float | None = None  # wall-clock
    timer: asyncio.TimerHandle | None = None
    loaded_at: float = field(default_factory=time.time)
    watcher: asyncio.Task[Any] | None = None

    @property
    def info(self) -> RunnerInfo | None:
        return self.runner.info


class Scheduler:
    def __init__(self, factory: RunnerFactory) -> None:
        self.factory = factory
        self.loaded: dict[str, Loaded] = {}
        self._load_lock = asyncio.Lock()
        self._pending = 0
        self._changed = asyncio.Condition()
        self.restarts = 0
        # runs before a runner is started for a model (blob verification, store/verify.py)
        self.before_load: Callable[[LoadRequest], Awaitable[None]] | None = None
        self.closing = False  # set by drain(): the server is stopping
        self._stopping: set[asyncio.Future[None]] = set()  # runner stops in progress (_unload)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a model load (what OLLAMA_MAX_QUEUE bounds)."""
        return self._pending

    def _default_keep_alive(self) -> float:
        from ollmlx.durations import keep_alive_from_env

        return keep_alive_from_env(config.keep_alive_default())

    def _max_loaded(self) -> int:
        n = config.max_loaded_models()
        return n if n > 0 else 3

    async def acquire(self, req: LoadRequest, keep_alive: float | None) -> Loaded:
        """A running runner for `req` with its refcount taken; release() when done. A request
        cancelled while it waits (its client went away) raises RequestCanceled and frees its place."""
        if self.closing:
            raise ServerBusy("server is shutting down")
        current = self.loaded.get(req.key)
        if current is not None and current.runner.alive and not current.runner.stopping and current.req == req:
            self._take(current, keep_alive)
            return current
        if self._pending >= config.max_queue():
            raise ServerBusy()
        self._pending += 1
        try:
            async with self._load_lock:
                current = self.loaded.get(req.key)
                if current is not None and current.runner.alive and not current.runner.stopping:
                    if current.req == req:
                        self._take(current, keep_alive)
                        return current
                    # a load-time option changed: wait for its requests, then reload
                    await self._wait_idle(current)
                    await self._unload(current)
                await self._make_room(req)
                loaded = await self._load(req, keep_alive)
                self._take(loaded, keep_alive)
                return loaded
        except asyncio.CancelledError:
            raise RequestCanceled() from None
        finally:
            self._pending -= 1

    def _take(self, loaded: Loaded, keep_alive: float | None) -> None:
        loaded.refcount += 1
        if keep_alive is not None:
            loaded.keep_alive = keep_alive
        if loaded.timer is not None:
            loaded.timer.cancel()
            loaded.timer = None
        loaded.expires_at = self._expiry(loaded)

    def _expiry(self, loaded: Loaded) -> float:
        if math.isinf(loaded.keep_alive):
            return time.time() + 292 * 365 * 86400
        return time.time() + loaded.keep_alive

    def release(self, loaded: Loaded) -> None:
        loaded.refcount = max(0, loaded.refcount - 1)
        if loaded.refcount:
            return
        if self.loaded.get(loaded.req.key) is not loaded:
            return
        if loaded.keep_alive <= 0:
            asyncio.get_running_loop().create_task(self._unload(loaded))
            return
        loaded.expires_at = self._expiry(loaded)
        if not math.isinf(loaded.keep_alive):
            loaded.timer = asyncio.get_running_loop().call_later(
                loaded.keep_alive, lambda: asyncio.ensure_future(self._expire(loaded)))
        self._notify()

    async def _expire(self, loaded: Loaded) -> None:
        if loaded.refcount == 0 and self.loaded.get(loaded.req.key) is loaded:
            log.info("keep_alive expired, unloading %s", loaded.req.name)
            await self._unload(loaded)

    async def _load(self, req: LoadRequest, keep_alive: float | None) -> Loaded:
        if self.before_load is not None:
            await self.before_load(req)
        runner = self.factory(req.engine, req.spec, req.num_ctx, req.parallel)
        t0 = time.monotonic()
        try:
            await runner.start(config.load_timeout_seconds())
        except BaseException:
            await runner.stop()
            raise
        log.info("loaded %s on %s in %.2fs (pid %s)", req.name, req.engine, time.monotonic() - t0, runner.pid)
        loaded = Loaded(req, runner, keep_alive if keep_alive is not None else self._default_keep_alive())
        loaded.watcher = asyncio.get_running_loop().create_task(self._watch(loaded))
        self.loaded[req.key] = loaded
        return loaded

    async def _watch(self, loaded: Loaded) -> None:
        code = await loaded.runner.wait()
        if not loaded.runner.stopping:
            self.restarts += 1
            log.error("runner for %s (pid %s) exited unexpectedly with code %s",
                      loaded.req.name, loaded.runner.pid, code)
            # its peers, HTTP client and socket folder go too (stop() does not signal a process
            # that has exited)
            try:
                await loaded.runner.stop(grace=1.0)
            except Exception:
                log.exception("cleaning up after the runner for %s", loaded.req.name)
        if self.loaded.get(loaded.req.key) is loaded:
            del self.loaded[loaded.req.key]
        if loaded.timer:
            loaded.timer.cancel()
        self._notify()

    async def _wait_idle(self, loaded: Loaded) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: loaded.refcount == 0 or not loaded.runner.alive)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(notify())

    def _fits(self, req: LoadRequest, others: list[Loaded]) -> bool:
        if not req.memory:
            return True
        free = memory.room(x.req.memory for x in others)
        if free is None or req.memory <= free:
            return True
        log.info("%s needs ~%d MiB, %d MiB free for models: unloading another model",
                 req.name, req.memory >> 20, max(0, free) >> 20)
        return False

    async def _make_room(self, req: LoadRequest) -> None:
        """Unload models until this one may load: the max-loaded count, then the fit check (a
        model that does not fit even alone still loads, as Ollama's last resort does)."""
        while others := [x for k, x in self.loaded.items() if k != req.key]:
            if len(others) < self._max_loaded() and self._fits(req, others):
                return
            # Ollama's victim order: shortest keep_alive first (not LRU), idle ones preferred
            candidates = sorted(others, key=lambda x: (x.keep_alive, x.req.name))
            idle = [x for x in candidates if x.refcount == 0]
            victim = idle[0] if idle else candidates[0]
            if not idle:
                await self._wait_idle(victim)
            await self._unload(victim)

    async def _unload(self, loaded: Loaded, stop_grace: float = 5.0) -> None:
        if self.loaded.get(loaded.req.key) is loaded:
            del self.loaded[loaded.req.key]
        if loaded.timer:
            loaded.timer.cancel()
        stopped = asyncio.get_running_loop().create_future()
        self._stopping.add(stopped)
        try:
            await loaded.runner.stop(stop_grace)
            if loaded.watcher:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(loaded.watcher, 2)
        finally:
            self._stopping.discard(stopped)
            stopped.set_result(None)
        log.info("unloaded %s", loaded.req.name)
        self._notify()

    async def unload_key(self, key: str) -> bool:
        """keep_alive 0 with an empty prompt: expire the runner now (after in-flight work)."""
        loaded = self.loaded.get(key)
        if loaded is None:
            return False
        loaded.keep_alive = 0
        if loaded.refcount == 0:
            await self._unload(loaded)
        return True

    def ps(self) -> list[Loaded]:
        return sorted(self.loaded.values(), key=lambda x: x.expires_at or 0, reverse=True)

    async def drain(self, grace: float = 1.5) -> None:
        """The server is stopping (SIGTERM): refuse new work, give in-flight requests `grace`
        seconds, then stop every runner so open streams end with an error line at once."""
        self.closing = True
        deadline = time.monotonic() + grace
        while any(x.refcount for x in self.loaded.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.gather(*(self._unload(x, stop_grace=0.5) for x in list(self.loaded.values())),
                             return_exceptions=True)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._unload(x) for x in list(self.loaded.values())), return_exceptions=True)
        # runners already on their way out (SIGTERM's drain took them off `loaded`): the process
        # must not end before they have, or their socket folders stay behind
        await asyncio.gather(*list(self._stopping), return_exceptions=True)
