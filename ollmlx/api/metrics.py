"""GET /metrics: Prometheus text exposition (prometheus-client).

What is measured, and where:
- HTTP requests by method, route template and status, and their durations (an ASGI middleware:
  one counter increment and one observe per request; unmatched paths share one label so probes
  and fuzzers cannot grow the series without bound);
- time to first token, the gap between streamed tokens, prompt and generated tokens, per model
  (`Inference` calls the `RunObserver` methods below: one observe per streamed chunk, nothing more);
- read at scrape time, never on a request's path: the scheduler's queue depth, loaded models with
  their memory, in-flight requests, runner restarts, and each runner's prefix-cache hits (the
  runners' `/info`, refreshed when /metrics is read).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ollmlx.sched.scheduler import Scheduler

log = logging.getLogger("ollmlx.http")
UNMATCHED = "unmatched"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class SchedulerCollector(Collector):
    """Scheduler and runner state, read when /metrics is scraped."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        sched = self.scheduler
        yield GaugeMetricFamily("ollmlx_queue_depth", "Requests waiting for a model load (bounded by OLLAMA_MAX_QUEUE)",
                                value=sched.queue_depth)
        loaded = list(sched.loaded.values())
        yield GaugeMetricFamily("ollmlx_loaded_models", "Models with a running runner", value=len(loaded))
        yield CounterMetricFamily("ollmlx_runner_restarts", "Runners that exited unexpectedly",
                                  value=sched.restarts)
        memory = GaugeMetricFamily("ollmlx_model_memory_bytes", "Memory a loaded model's runner reports",
                                   labels=["model", "engine", "kind"])
        in_flight = GaugeMetricFamily("ollmlx_model_requests_in_flight", "Requests a loaded model is serving",
                                      labels=["model"])
        pid = GaugeMetricFamily("ollmlx_runner_pid", "Process id of a loaded model's runner", labels=["model"])
        hits = CounterMetricFamily("ollmlx_prefix_cache_hits", "Prompts that reused a cached prefix",
                                   labels=["model"])
        for x in loaded:
            name = x.req.name
            in_flight.add_metric([name], x.refcount)
            if x.runner.pid is not None:
                pid.add_metric([name], x.runner.pid)
            info = x.info
            if info is None:
                continue
            memory.add_metric([name, info.engine, "total"], info.memory_bytes)
            memory.add_metric([name, info.engine, "gpu"], info.vram_bytes)
            cache_hits = info.details.get("prefix_cache_hits")
            if isinstance(cache_hits, int | float):
                hits.add_metric([name], cache_hits)
        yield from (memory, in_flight, pid, hits)


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("ollmlx_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("ollmlx_http_request_duration_seconds",
                                         "Time from request to the end of its response",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("ollmlx_time_to_first_token_seconds",
                              "Time from a generate/chat request to its first generated chunk",
                              ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.token_gap = Histogram("ollmlx_inter_token_seconds", "Time between streamed chunks of a generation",
                                   ["model"], buckets=TOKEN_BUCKETS, registry=r)
        self.tokens = Counter("ollmlx_tokens_generated", "Tokens generated", ["model"], registry=r)
        self.prompt_tokens = Counter("ollmlx_prompt_tokens", "Prompt tokens evaluated", ["model"], registry=r)
        r.register(SchedulerCollector(scheduler))

    # -- RunObserver (ollmlx/serve/inference.py) -----------------------------------------------
    def first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def token_gap_observer(self, model: str) -> Callable[[float], None]:
        return self.token_gap.labels(model).observe

    def finished(self, model: str, prompt_tokens: int, eval_tokens: int) -> None:
        if prompt_tokens:
            self.prompt_tokens.labels(model).inc(prompt_tokens)
        if eval_tokens:
            self.tokens.labels(model).inc(eval_tokens)

    # -- exposition ------------------------------------------------------------------------------
    async def render(self) -> bytes:
        # refresh what runners report (memory, prefix-cache hits): a scrape's cost, not a request's
        runners = [x.runner for x in list(self.scheduler.loaded.values())]
        await asyncio.gather(*(r.refresh_info() for r in runners), return_exceptions=True)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route template and status (the outermost middleware, so 403s
    from the Host guard and 413s from the body limit are counted too), and logs one INFO line per
    request, like Ollama's gin log: status, duration, client, method, path."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            seconds = time.perf_counter() - t0
            route = self._route_of(scope)
            self.metrics.requests.labels(scope["method"], route, str(status or 499)).inc()
            self.metrics.request_seconds.labels(route).observe(seconds)
            client = scope.get("client") or ("-", 0)
            # the path is JSON-quoted: a %0A in a URL cannot forge a log line
            log.info("%d | %.3fs | %s | %s %s", status or 499, seconds, client[0], scope["method"],
                     json.dumps(scope["path"]))


    def _route_of(self, scope: Scope) -> str:
        route: Any = scope.get("route")
        if route is None:  # answered before routing (403 Host guard, 413 body limit): match it here
            route = next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else UNMATCHED


def install_metrics(app: FastAPI, scheduler: Scheduler) -> Metrics:
    disable_created_metrics()  # no `*_created` series: they double the exposition for nothing
    metrics = Metrics(scheduler)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(_: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return metrics
