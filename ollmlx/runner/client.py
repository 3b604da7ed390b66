"""Server side of a runner: spawn `python -m ollmlx.runner`, talk to it over its Unix socket,
capture its stderr into the server log, and stop it. No engine imports."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from ollmlx import config
from ollmlx.errors import BadRequest, OllmlxError, PromptOverBudget, RunnerError
from ollmlx.runner import folders, launch
from ollmlx.runner.env import runner_env
from ollmlx.runner.protocol import (
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelSpec,
    RunnerInfo,
)

log = logging.getLogger("ollmlx.runner")


def _status_error(status: int, message: str) -> OllmlxError:
    if status == 400:
        return BadRequest(message)
    if status == PromptOverBudget.status:
        return PromptOverBudget(message)
    err = RunnerError(message)
    err.status = status if status >= 400 else 500
    return err


_PROC = os.path.exists("/proc/self/stat")


def _has_exited(proc: asyncio.subprocess.Process) -> bool:
    """True once the process has ended, even before asyncio's child watcher has reaped it and set
    returncode: a stream sees a killed runner's socket close first, and a request arriving in
    between must not be handed the dead runner. A zombie is dead; looking does not reap it, so
    the watcher still collects the exit code."""
    if proc.returncode is not None:
        return True
    if _PROC:  # Linux: the state letter, without psutil's per-Process set-up (every request asks)
        try:
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
        except FileNotFoundError:  # reaped
            return True
    import psutil

    try:
        return psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # already reaped by the watcher; returncode follows on the loop
        return True


class RunnerProcess:
    def __init__(self, engine: str, spec: ModelSpec, *, num_ctx: int, parallel: int,
                 hostfile: str | None = None) -> None:
        self.engine = engine
        self.spec = spec
        self.num_ctx = num_ctx
        self.parallel = parallel
        self.proc: asyncio.subprocess.Process | None = None  # rank 0 when the runner is a group
        # MLX models run as the ranks of a distributed group when the server has a hostfile
        self.hostfile = hostfile if hostfile is not None else (config.hostfile() if engine == "mlx" else None)
        self.peers: list[tuple[int, str, asyncio.subprocess.Process]] = []  # (rank, host, process), ranks > 0
        self.dead_rank = ""  # which rank ended the group, when one did
        self._dir = folders.make()
        self.socket = os.path.join(self._dir, folders.SOCKET)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._fatal: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.info: RunnerInfo | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        procs = [] if self.proc is None else [self.proc, *(p for _, _, p in self.peers)]
        return bool(procs) and not any(_has_exited(p) for p in procs)

    def stderr_tail(self) -> str:
        """The runner's last words: a fatal error (faulthandler's first line), else its last error
        line that is not a stack frame (frames name files like errors.py)."""
        if self._fatal:
            return self._fatal
        lines = [x for x in self._stderr_tail if x.strip()]
        errs = [x for x in lines if ("Error" in x or "error" in x) and not x.startswith((" ", "Thread ", "Current "))]
        return (errs[-1] if errs else lines[-1]) if lines else ""

    async def start(self, timeout: float) -> RunnerInfo:
        spec_path = Path(self._dir) / "spec.json"
        spec_path.write_text(self.spec.model_dump_json())
        args = [
            config.runner_python(), "-m", "ollmlx.runner",
            "--engine", self.engine, "--spec", str(spec_path), "--socket", self.socket,
            "--num-ctx", str(self.num_ctx), "--parallel", str(self.parallel),
        ]
        if config.debug_level() > 0:
            args.append("--debug")
        if self.hostfile:
            await self._start_group(args)
        else:
            self.proc = await asyncio.create_subprocess_exec(
                *args, "--parent-pid", str(os.getpid()), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=runner_env(self.engine),
                start_new_session=True,
            )
        assert self.proc is not None
        log.info("starting runner pid=%s engine=%s model=%s", self.proc.pid, self.engine, self.spec.name)
        self._tasks.append(asyncio.create_task(self._pump_stderr()))
        transport = httpx.AsyncHTTPTransport(uds=self.socket)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://runner", timeout=None)
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                await self._wait_exit()
                raise RunnerError(f"model runner failed to load the model: {self.stderr_tail() or 'exited'}")
            if time.monotonic() > deadline:
                await self.stop()
                raise RunnerError("timed out waiting for the model runner to load the model")
            if os.path.exists(self.socket):
                try:
                    r = await self._client.get("/health", timeout=2)
                    h = r.json()
                    if h.get("status") == "ok":
                        break
                    if h.get("status") == "error":
                        await self.stop()
                        raise RunnerError(f"model runner failed to load the model: {h.get('error')}")
                except (httpx.TransportError, ValueError):
                    pass
            await asyncio.sleep(0.05)
        self.info = RunnerInfo.model_validate((await self._client.get("/info")).json())
        return self.info

    async def _start_group(self, args: list[str]) -> None:
        """Rank 0 (self.proc) and the other ranks of the hostfile's group (launch.py)."""
        try:
            hf = launch.read_hostfile(str(self.hostfile))
        except ValueError as exc:
            raise RunnerError(f"cannot start the model runner on several hosts: {exc}") from exc
        commands = launch.rank_commands(hf, args, runner_env(self.engine), Path(self._dir),
                                        parent_pid=os.getpid(), base_port=config.distributed_port())
        for c in commands:
            for path, content in c.files.items():
                Path(path).write_text(content)
        for c in commands:
            proc = await asyncio.create_subprocess_exec(
                *c.argv, stdin=asyncio.subprocess.PIPE if c.remote else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if c.remote else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=c.env, start_new_session=True,
            )
            if c.rank == 0:
                self.proc = proc
                continue
            log.info("starting runner rank %d on %s pid=%s (%s)", c.rank, c.host, proc.pid, hf.backend)
            self.peers.append((c.rank, c.host, proc))
            for stream in (proc.stderr, proc.stdout):  # ssh -tt brings a remote rank's output on stdout
                if stream is not None:
                    self._tasks.append(asyncio.create_task(self._pump(stream, f"rank {c.rank}: ")))

    async def _pump(self, stream: asyncio.StreamReader, prefix: str) -> None:
        while line := await stream.readline():
            text = prefix + line.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(text)
            log.info("%s", text)

    async def _wait_exit(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)
            for t in self._tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(t), 1)

    async def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(text)
            if text.startswith("Fatal Python error"):  # kept: the stacks that follow can fill the tail
                self._fatal = text
            log.info("%s", text)

    def _dead_error(self) -> RunnerError:
        code = self.proc.returncode if self.proc else None
        detail = self.stderr_tail()
        msg = "model runner has unexpectedly stopped"
        if self.dead_rank:
            msg += f" ({self.dead_rank})"
        elif code is not None and code < 0:
            msg += f" (signal {-code})"
        if detail:
            msg += f": {detail}"
        return RunnerError(msg + ", this may be due to resource limitations or an internal error")

    async def _post(self, path: str, body: Any) -> Any:
        assert self._client is not None
        try:
            r = await self._client.post(path, content=body)
        except httpx.TransportError as exc:
            raise self._dead_error() from exc
        if r.status_code >= 400:
            raise _status_error(r.status_code, _error_text(r.content))
        return r.json()

    async def completion(self, req: CompletionRequest) -> AsyncIterator[dict[str, Any]]:
        assert self._client is not None
        try:
            async with self._client.stream("POST", "/completion", content=req.model_dump_json()) as r:
                if r.status_code >= 400:
                    raise _status_error(r.status_code, _error_text(await r.aread()))
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    chunk = json.loads(line)
                    if "error" in chunk:  # with the status the runner gives it (400: a bad request)
                        raise _status_error(int(chunk.get("status") or 500), str(chunk["error"]))
                    yield chunk
                    if chunk.get("done"):
                        return
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise self._dead_error() from exc
        raise self._dead_error()

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        out = await self._post("/tokenize", json.dumps({"content": text, "add_special": add_special}))
        return list(out["tokens"])

    async def detokenize(self, tokens: list[int]) -> str:
        return str((await self._post("/detokenize", json.dumps({"tokens": tokens})))["content"])

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        return EmbeddingResponse.model_validate(await self._post("/embedding", req.model_dump_json()))

    async def refresh_info(self) -> RunnerInfo | None:
        if self._client is None or not self.alive:
            return self.info
        with contextlib.suppress(httpx.TransportError, ValueError):
            self.info = RunnerInfo.model_validate((await self._client.get("/info", timeout=2)).json())
        return self.info

    async def wait(self) -> int:
        assert self.proc is not None
        if not self.peers:
            return await self.proc.wait()
        # a group lives and dies together: the first rank to end ends the others
        first = asyncio.create_task(self.proc.wait())
        ends = {asyncio.create_task(p.wait()): (rank, host) for rank, host, p in self.peers}
        done, _ = await asyncio.wait([first, *ends], return_when=asyncio.FIRST_COMPLETED)
        if first not in done and not self.stopping:
            ended = next(t for t in ends if t in done)
            rank, host = ends[ended]
            code = ended.result()
            self.dead_rank = f"rank {rank} on {host} " + (f"was killed by signal {-code}" if code < 0
                                                        else f"exited with code {code}")
            log.error("model runner %s", self.dead_rank)
            # rank 0 may notice first and fail its requests with its own error line; it may also
            # hang in a collective that never returns: then ending it fails them with dead_rank
            await asyncio.wait([first], timeout=1.5)
        if not self.stopping:  # stop() ends them itself
            await self._end_all(grace=0.5)
        code0 = await first
        for task in ends:
            task.cancel()
        return code0

    async def _end_all(self, grace: float) -> None:
        procs = [p for p in (self.proc, *(p for _, _, p in self.peers)) if p is not None and p.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        _, pending = await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=grace)
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        for task in pending:
            await task

    async def stop(self, grace: float = 5.0) -> None:
        self.stopping = True
        if self.peers:
            await self._end_all(grace)
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._client is not None:
            await self._client.aclose()
        for t in self._tasks:
            t.cancel()
        folders.remove(self._dir)


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
    except ValueError:
        pass
    return body.decode("utf-8", "replace")
