"""A runner split over the ranks of an `mx.distributed` group (ring, MPI, NCCL), mlx_lm.server's way.

Every rank loads the model, keeps its part (sharding.py) and runs the same engine loop
(lockstep.py); rank 0 alone speaks the runner protocol. Rank 0 decides and the others follow:
the model to load, the context and batch sizes, and at every step which requests join or leave
the batch (`RankGroup.share`, the `_share_object` of mlx_lm/server.py, with JSON instead of
pickle). So every rank runs the same forward passes and its collectives meet the others'.

A rank that dies breaks the collectives: the others get an error within about a second, rank 0
fails its requests with that error and exits, the followers exit, and the server's next request
starts a new group.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import numpy as np

from ollmlx.runner.protocol import ModelSpec

log = logging.getLogger("ollmlx.runner.mlx.distributed")
BACKENDS = ("ring", "mpi", "nccl", "jaccl", "any")


class RankLost(RuntimeError):
    """A collective failed: another rank of the group is gone."""


class RankGroup:
    """This process's place in the group, and the two exchanges the runner needs."""

    def __init__(self, group: mx.distributed.Group, backend: str) -> None:
        self.group = group
        self.backend = backend
        self.rank = group.rank()
        self.size = group.size()

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def _bytes(self, payload: bytes | None) -> mx.array:
        return mx.array(np.frombuffer(payload or b"", dtype=np.uint8))

    def share(self, obj: Any = None) -> Any:
        """Rank 0's JSON value on every rank (the others pass nothing). An empty or None value
        costs one collective (its size, 0); anything else two."""
        try:
            payload = json.dumps(obj).encode() if self.leader and obj else b""
            total = mx.distributed.all_sum(mx.array([len(payload)], dtype=mx.int32), group=self.group)
            size = int(np.array(total)[0])
            if size == 0:
                return obj if self.leader else None
            data = self._bytes(payload) if self.leader else mx.zeros((size,), dtype=mx.uint8)
            data = mx.distributed.all_sum(data, group=self.group)
            mx.eval(data)
        except RuntimeError as exc:
            raise RankLost(str(exc)) from exc
        return obj if self.leader else json.loads(bytes(np.array(data, copy=False)))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's JSON value, in rank order, on every rank."""
        payload = json.dumps(obj).encode()
        try:
            sizes = mx.distributed.all_gather(mx.array([len(payload)], dtype=mx.int32), group=self.group)
            counts = [int(x) for x in np.array(sizes)]
            padded = payload + b"\0" * (max(counts) - len(payload))
            rows = mx.distributed.all_gather(self._bytes(padded)[None], group=self.group)
            mx.eval(rows)
        except RuntimeError as exc:
            raise RankLost(str(exc)) from exc
        table = np.array(rows, copy=False)
        return [json.loads(bytes(table[i, :n])) for i, n in enumerate(counts)]


def join(backend: str) -> RankGroup:
    """Join the group the launcher described in the environment (MLX_RANK, MLX_HOSTFILE,
    NCCL_*, or mpirun's); blocks until every rank is there."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown distributed backend {backend!r}")
    group = mx.distributed.init(strict=True, backend=backend)
    log.info("rank %d of %d joined (%s)", group.rank(), group.size(), backend)
    return RankGroup(group, backend)


@dataclass
class Plan:
    """What rank 0 tells every rank before loading."""

    spec: ModelSpec
    num_ctx: int
    parallel: int  # 0: rank 0 picks after loading
    mode: str  # auto | tensor | pipeline
    split: bool  # False: an embedding or vision model, served by rank 0 alone

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.model_dump(), "num_ctx": self.num_ctx, "parallel": self.parallel,
                "mode": self.mode, "split": self.split}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        return cls(ModelSpec.model_validate(d["spec"]), int(d["num_ctx"]), int(d["parallel"]), str(d["mode"]),
                   bool(d["split"]))


@dataclass
class Sharded:
    """A model split over the group, ready to serve on this rank."""

    loaded: Any  # LoadedModel
    details: dict[str, Any]
    num_ctx: int
    parallel: int
    ranks: list[dict[str, Any]] = field(default_factory=list)


def _load_part(plan: Plan, group: RankGroup) -> tuple[Any, dict[str, Any], str, str]:
    from ollmlx.runner.engines.mlx import host
    from ollmlx.runner.engines.mlx.loader import load
    from ollmlx.runner.engines.mlx.sharding import choose_mode, shard_model

    if plan.spec.adapters:
        raise ValueError("adapters are not supported on a model split across ranks")
    loaded = load(plan.spec)
    mode = choose_mode(loaded.model, group.size, plan.mode)
    if mode == "pipeline":  # drop the other stages' layers before converting the weights
        role = shard_model(loaded.model, group.group, mode)
        details = host.tune_for_host(loaded.model)
    else:  # tensor: mlx's sharded layers are not dequantized for BLAS, so convert first
        details = host.tune_for_host(loaded.model)
        role = shard_model(loaded.model, group.group, mode)
    return loaded, details, mode, role


def load_split(plan: Plan, group: RankGroup) -> Sharded:
    """Every rank: load and keep this rank's part. A rank that fails tells the others, so the
    whole group fails the load with that rank's error instead of hanging in a collective."""
    from ollmlx.runner.engines.mlx import host

    status: dict[str, Any] = {"rank": group.rank, "host": socket.gethostname(), "pid": os.getpid()}
    loaded: Any = None
    details: dict[str, Any] = {}
    try:
        loaded, details, mode, role = _load_part(plan, group)
        status.update(role=role, mode=mode, memory_bytes=host.memory_bytes(), device=host.device_name())
    except Exception as exc:
        log.exception("rank %d could not load the model", group.rank)
        status["error"] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
    ranks = group.gather(status)
    failed = [r for r in ranks if "error" in r]
    if failed:
        r = failed[0]
        raise RuntimeError(f"rank {r['rank']} ({r['host']}) could not load the model: {r['error']}")
    # rank 0 settles the sizes that depend on the host (free memory, GPU or CPU), as one process
    # would for the whole model (each rank holds only part of the KV cache: a safe default)
    ctx = min(plan.num_ctx, loaded.context_length) if plan.num_ctx > 0 else loaded.context_length
    parallel = plan.parallel if plan.parallel > 0 else host.default_parallel(loaded.config, ctx)
    sizes = group.share({"num_ctx": ctx, "parallel": parallel} if group.leader else None)
    details = {**details, "distributed": {"backend": group.backend, "size": group.size, "mode": ranks[0]["mode"]}}
    return Sharded(loaded, details, int(sizes["num_ctx"]), int(sizes["parallel"]), ranks)


def _hello(group: RankGroup) -> list[dict[str, Any]]:
    """The first exchange: every rank is there and the collectives work."""
    return group.gather({"rank": group.rank, "host": socket.gethostname(), "pid": os.getpid()})


def lead(group: RankGroup, spec: ModelSpec, num_ctx: int, parallel: int, mode: str) -> Sharded | None:
    """Rank 0: tell the followers what to load and load this rank's part with them. None when
    the model is not split (embedding and vision models run on rank 0 alone; the followers idle)."""
    from ollmlx.runner.engines.mlx.embed import is_embedding_spec
    from ollmlx.runner.engines.mlx.vision import is_vision_spec

    _hello(group)
    plan = Plan(spec, num_ctx, parallel, mode, split=not (is_embedding_spec(spec) or is_vision_spec(spec)))
    group.share(plan.to_json())
    if not plan.split:
        log.info("%s is not split across ranks: rank 0 serves it alone", spec.name)
        return None
    return load_split(plan, group)


def hold_forever() -> None:
    """A follower with nothing to run (rank 0 serves an embedding or vision model alone): wait
    until the server stops the group."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Event().wait()


def run_follower(group: RankGroup) -> None:
    """Rank > 0: do what rank 0 says until the group ends; never returns."""
    from ollmlx.runner.engines.mlx.lockstep import LockstepEngine

    code = 1
    try:
        _hello(group)
        plan = Plan.from_json(group.share())
        if not plan.split:
            log.info("rank 0 serves %s alone; rank %d idles", plan.spec.name, group.rank)
            hold_forever()
        sharded = load_split(plan, group)
        log.info("rank %d ready: %s", group.rank, sharded.ranks[group.rank]["role"])
        engine = LockstepEngine(sharded.loaded, group, num_ctx=sharded.num_ctx, parallel=sharded.parallel)
        code = engine.follow()
    except RankLost as exc:
        log.error("rank %d lost the group: %s", group.rank, exc)
    except Exception:
        log.exception("rank %d failed", group.rank)
    finally:
        logging.shutdown()
        os._exit(code)


def exit_soon(message: str, delay: float = 1.0) -> Callable[[], None]:
    """Rank 0 after a lost rank: the failed requests' error lines go out, then the process ends
    (the followers are ending too) and the server starts a new group on the next request."""

    def run() -> None:
        log.error("%s; runner exits", message)
        time.sleep(delay)
        logging.shutdown()
        os._exit(70)

    return lambda: threading.Thread(target=run, name="group-exit", daemon=True).start()
