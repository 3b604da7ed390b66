"""The services a request handler works with (one per server process)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ollmlx.sched.scheduler import Scheduler
from ollmlx.serve.inference import Inference
from ollmlx.store.store import Store


@dataclass
class Services:
    store: Store
    scheduler: Scheduler
    inference: Inference


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
