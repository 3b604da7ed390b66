"""Scheduler semantics (spec §8 keep_alive, §18) with a fake runner at the designed seam."""

from __future__ import annotations

import asyncio
import math

import pytest

from ollmlx.errors import ServerBusy
from ollmlx.runner.protocol import ModelSpec, RunnerInfo
from ollmlx.sched.scheduler import LoadRequest, Scheduler


class FakeRunner:
    started: list[FakeRunner] = []

    def __init__(self, engine: str, spec: ModelSpec, num_ctx: int, parallel: int) -> None:
        self.spec, self.num_ctx = spec, num_ctx
        self.info: RunnerInfo | None = None
        self.stopping = False
        self._exit: asyncio.Future[int] | None = None
        self.load_delay = 0.0
        FakeRunner.started.append(self)

    @property
    def pid(self) -> int | None:
        return 1000 + FakeRunner.started.index(self)

    @property
    def alive(self) -> bool:
        return self._exit is not None and not self._exit.done()

    async def start(self, timeout: float) -> RunnerInfo:
        self._exit = asyncio.get_running_loop().create_future()
        await asyncio.sleep(self.load_delay)
        self.info = RunnerInfo(engine="fake", device="cpu", model=self.spec.name, context_length=8192,
                               num_ctx=self.num_ctx, parallel=1)
        return self.info

    async def wait(self) -> int:
        assert self._exit is not None
        return await self._exit

    def crash(self) -> None:
        assert self._exit is not None
        self._exit.set_result(-9)

    async def stop(self, grace: float = 5.0) -> None:
        self.stopping = True
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(0)


def req(key: str = "a", num_ctx: int = 4096, memory: int = 0) -> LoadRequest:
    return LoadRequest(key=key, name=f"{key}:latest", engine="mlx",
                       spec=ModelSpec(format="gguf", gguf_path="/x", name=key), num_ctx=num_ctx, parallel=1,
                       memory=memory)


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeRunner.started = []
    for var in ("OLLAMA_KEEP_ALIVE", "OLLMLX_KEEP_ALIVE", "OLLAMA_MAX_LOADED_MODELS", "OLLMLX_MAX_LOADED_MODELS",
                "OLLAMA_MAX_QUEUE", "OLLMLX_MAX_QUEUE", "OLLMLX_MAX_MEMORY"):
        monkeypatch.delenv(var, raising=False)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_loads_on_first_use_and_reuses() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a1 = await s.acquire(req(), None)
        a2 = await s.acquire(req(), None)
        assert a1 is a2 and len(FakeRunner.started) == 1 and a1.refcount == 2
        s.release(a1)
        s.release(a2)
        assert a1.keep_alive == 300  # OLLAMA_KEEP_ALIVE default 5m (spec §8)
        await s.shutdown()

    run(go())


def test_keep_alive_expiry_unloads_after_last_release() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req(), 0.2)
        await asyncio.sleep(0.3)
        assert s.loaded, "timer must not run while a request holds the runner"
        s.release(a)
        await asyncio.sleep(0.5)
        assert not s.loaded and FakeRunner.started[0].stopping

    run(go())


def test_keep_alive_zero_unloads_when_done_and_none_keeps_duration() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req(), 60)
        s.release(a)
        b = await s.acquire(req(), None)  # absent keep_alive leaves the runner's duration (spec §8)
        assert b.keep_alive == 60
        s.release(b)
        c = await s.acquire(req(), 0)
        s.release(c)
        await asyncio.sleep(0.05)
        assert not s.loaded

    run(go())


def test_negative_keep_alive_is_forever() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req(), math.inf)
        s.release(a)
        assert a.timer is None and a.expires_at is not None
        await s.shutdown()

    run(go())


def test_load_time_option_change_reloads() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req(num_ctx=2048), None)
        s.release(a)
        b = await s.acquire(req(num_ctx=4096), None)
        assert len(FakeRunner.started) == 2 and b.req.num_ctx == 4096
        assert FakeRunner.started[0].stopping
        s.release(b)
        await s.shutdown()

    run(go())


def test_max_loaded_models_evicts_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_MAX_LOADED_MODELS", "2")

    async def go() -> None:
        s = Scheduler(FakeRunner)
        for key, ka in (("a", 600), ("b", 60)):
            s.release(await s.acquire(req(key), ka))
        c = await s.acquire(req("c"), None)
        # the victim is the idle runner with the shortest keep_alive (not LRU)
        assert sorted(s.loaded) == ["a", "c"]
        s.release(c)
        await s.shutdown()

    run(go())


def test_crashed_runner_is_forgotten_and_respawned() -> None:
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req(), None)
        s.release(a)
        FakeRunner.started[0].crash()
        await asyncio.sleep(0.05)
        assert not s.loaded and s.restarts == 1
        b = await s.acquire(req(), None)
        assert b.runner is FakeRunner.started[1]
        s.release(b)
        await s.shutdown()

    run(go())


def test_queue_limit_answers_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "1")

    async def go() -> None:
        slow = type("Slow", (FakeRunner,), {})

        def factory(*args: object) -> FakeRunner:
            r = slow(*args)  # type: ignore[arg-type]
            r.load_delay = 0.3
            return r

        s = Scheduler(factory)  # type: ignore[arg-type]
        first = asyncio.create_task(s.acquire(req("a"), None))
        await asyncio.sleep(0.05)
        with pytest.raises(ServerBusy) as exc:
            await s.acquire(req("b"), None)
        assert exc.value.status == 503
        assert exc.value.message == "server busy, please try again.  maximum pending requests exceeded"
        s.release(await first)
        await s.shutdown()

    run(go())


def test_fit_check_unloads_shortest_keep_alive_until_the_new_model_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """§18 fit check: a model predicted not to fit makes room, victims in Ollama's order."""
    monkeypatch.setenv("OLLMLX_MAX_MEMORY", "1000")
    async def go() -> None:
        s = Scheduler(FakeRunner)
        for key, keep in (("a", 60.0), ("b", 30.0)):
            s.release(await s.acquire(req(key, memory=400), keep))
        assert sorted(s.loaded) == ["a", "b"]
        c = await s.acquire(req("c", memory=300), None)  # 400 + 400 + 300 > 1000: b (30 s) goes
        assert sorted(s.loaded) == ["a", "c"] and FakeRunner.started[1].stopping
        s.release(c)
        d = await s.acquire(req("d", memory=900), None)  # needs everything else gone
        assert sorted(s.loaded) == ["d"]
        s.release(d)
        e = await s.acquire(req("e", memory=5000), None)  # too big even alone: loads anyway
        assert sorted(s.loaded) == ["e"]
        s.release(e)
        f = await s.acquire(req("f"), None)  # unknown size: only the count limit applies
        assert sorted(s.loaded) == ["e", "f"]
        s.release(f)
        await s.shutdown()

    run(go())


def test_fit_check_waits_for_a_busy_victim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLMLX_MAX_MEMORY", "1000")
    async def go() -> None:
        s = Scheduler(FakeRunner)
        a = await s.acquire(req("a", memory=600), None)
        task = asyncio.create_task(s.acquire(req("b", memory=600), None))
        await asyncio.sleep(0.1)
        assert not task.done() and "a" in s.loaded, "a's request is still running"
        s.release(a)
        b = await asyncio.wait_for(task, 5)
        assert sorted(s.loaded) == ["b"]
        s.release(b)
        await s.shutdown()

    run(go())
