"""The HTTP application: routes, the one error → status mapping, 404/405 as gin answers them,
CORS and the DNS-rebinding Host guard (spec §0, §1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from ollmlx import OLLAMA_API_VERSION, __version__, config
from ollmlx.api import anthropic as anthropic_api
from ollmlx.api import create, embed, generate, models, transfer
from ollmlx.api import openai as openai_api
from ollmlx.api.context import Services
from ollmlx.api.limits import RequestGuard
from ollmlx.api.metrics import install_metrics
from ollmlx.api.security import install_security
from ollmlx.api.streaming import JSONResponse
from ollmlx.errors import OllmlxError, message_of
from ollmlx.runner import folders as runner_folders
from ollmlx.runner.client import RunnerProcess
from ollmlx.runner.protocol import ModelSpec
from ollmlx.sched.scheduler import LoadRequest, RunnerFactory, Scheduler
from ollmlx.serve.inference import Inference
from ollmlx.store.blobs import discard_in_progress
from ollmlx.store.store import Store
from ollmlx.store.verify import BlobVerifier

log = logging.getLogger("ollmlx.api")


def default_runner_factory(engine: str, spec: ModelSpec, num_ctx: int, parallel: int) -> RunnerProcess:
    return RunnerProcess(engine, spec, num_ctx=num_ctx, parallel=parallel)


def _drain_on_signals(scheduler: Scheduler) -> Callable[[], None]:
    """SIGTERM/SIGINT: besides uvicorn's own handler (which stops accepting and waits a few seconds
    for open responses), drain the scheduler so generating streams end with an error line in that
    time instead of being cut. Returns the undo; a no-op off the main thread (in-process tests)."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(lambda: loop.create_task(scheduler.drain()))
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)

    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, on_signal)
    except ValueError:
        return lambda: None

    def undo() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)

    return undo


def create_app(models_dir: Path, factory: RunnerFactory | None = None) -> FastAPI:
    store = Store(models_dir)
    scheduler = Scheduler(factory or default_runner_factory)
    svc = Services(store, scheduler, Inference(store, scheduler))
    verifier = BlobVerifier(store.blobs)

    async def verify_before_load(req: LoadRequest) -> None:
        model = req.extra.get("model")
        if model is not None:  # a blob damaged on disk since import is reported, never served
            await verifier.verify_async(model.manifest.digests(), req.name)

    scheduler.before_load = verify_before_load

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        removed = await asyncio.to_thread(store.blobs.sweep_abandoned)
        if removed:
            log.info("removed %d temp files left by an interrupted create or pull", removed)
        if swept := await asyncio.to_thread(runner_folders.sweep):
            log.info("removed %d runner folders left by servers that were killed", swept)
        if not config.noprune():  # blobs no model uses (spec §16)
            pruned = await asyncio.to_thread(store.prune_unused)
            if pruned:
                log.info("pruned %d unused blobs", pruned)
        undo = _drain_on_signals(scheduler)
        yield
        undo()
        await scheduler.shutdown()
        if discarded := discard_in_progress():  # creates cut short by the shutdown leave nothing behind
            log.info("discarded %d unfinished blob writes", discarded)

    app = FastAPI(title="ollmlx", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.services = svc

    @app.exception_handler(OllmlxError)
    async def on_error(_: Request, exc: OllmlxError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return JSONResponse({"error": message_of(exc)}, status_code=500)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @app.api_route("/api/version", methods=["GET", "HEAD"])
    async def version() -> Response:
        return JSONResponse({"version": OLLAMA_API_VERSION, "ollmlx": __version__})

    @app.get("/api/status")
    async def status() -> Response:
        """StatusHandler (spec §1): whether cloud models are turned off, and by what. ollmlx has
        no cloud passthrough; OLLAMA_NO_CLOUD is reported as Ollama reports it."""
        disabled = config.no_cloud()
        return JSONResponse({"cloud": {"disabled": disabled, "source": "env" if disabled else "none"}})

    app.include_router(generate.router)
    app.include_router(embed.router)
    app.include_router(models.router)
    app.include_router(create.router)
    app.include_router(transfer.router)
    app.include_router(openai_api.router)  # /v1/*: OpenAI translators (spec §20)
    app.include_router(anthropic_api.router)  # /v1/messages (spec §21)
    app.add_middleware(RequestGuard)  # body limit, 499 for clients gone while queued (inside the Host guard)
    install_security(app)
    svc.inference.observer = install_metrics(app, scheduler)  # outermost: counts every response
    return app
