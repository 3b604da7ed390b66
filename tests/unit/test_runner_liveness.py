"""A runner that has died is not alive, even before asyncio has reaped it (CI saw a request
handed a killed runner in the few milliseconds between its socket closing and the reap)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from ollmlx.runner.client import RunnerProcess
from ollmlx.runner.protocol import ModelSpec


def test_killed_runner_is_dead_before_asyncio_reaps_it() -> None:
    async def scenario() -> tuple[bool, bool, int | None, bool, int]:
        runner = RunnerProcess("llamacpp", ModelSpec(format="gguf", name="x"), num_ctx=2048, parallel=1)
        runner.proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
        alive_before = runner.alive
        os.kill(runner.proc.pid, signal.SIGKILL)
        time.sleep(0.3)  # blocks the loop: the child watcher cannot set returncode meanwhile
        returncode_then, alive_then = runner.proc.returncode, runner.alive
        code = await runner.proc.wait()
        await runner.stop(0.1)  # removes its socket directory
        return alive_before, alive_then, returncode_then, runner.alive, code

    alive_before, alive_then, returncode_then, alive_after, code = asyncio.run(scenario())
    assert alive_before
    assert returncode_then is None, "the test needs the exit not yet seen by asyncio"
    assert not alive_then
    assert not alive_after and code == -signal.SIGKILL


def test_a_running_runner_stays_alive_and_its_exit_code_is_still_collected() -> None:
    async def scenario() -> tuple[list[bool], int]:
        runner = RunnerProcess("llamacpp", ModelSpec(format="gguf", name="x"), num_ctx=2048, parallel=1)
        runner.proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(0.5); raise SystemExit(3)")
        seen = [runner.alive for _ in range(20)]  # peeking must not reap it from under asyncio
        code = await runner.proc.wait()
        await runner.stop(0.1)
        return seen, code

    seen, code = asyncio.run(scenario())
    assert all(seen) and code == 3
