"""The MLX engine on every rank of a group, stepping together.

MLXEngine's loop with one change: what enters the loop comes from rank 0. Before every step
rank 0 shares the commands its HTTP threads queued (requests to start, with the seed settled, and
cancels); each rank applies the same commands, then runs the same BatchGenerator step, whose
collectives (tensor-parallel sums, pipeline sends) meet the other ranks'. Everything after that
is decided by the tokens, which are the same on every rank (the logits are, and so are the
samplers' keys), so sequences finish on the same step everywhere. Idle, rank 0 shares an empty
list every `IDLE_PING` seconds, which is also how a dead rank is noticed between requests.

The shares run on mlx-lm's generation stream, the one BatchGenerator computes on, so a share and
the step computed ahead by `async_eval` reach the communication layer in the same order on every
rank.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import mlx.core as mx
from mlx_lm.generate import generation_stream

from ollmlx.runner.engines.mlx.distributed import RankGroup, RankLost
from ollmlx.runner.engines.mlx.engine import MLXEngine, _Seq
from ollmlx.runner.engines.mlx.loader import LoadedModel
from ollmlx.runner.protocol import CompletionRequest

log = logging.getLogger("ollmlx.runner.mlx.distributed")
IDLE_PING = 0.1  # seconds rank 0 waits for work before sharing an empty step
# The prefix cache must pick the same entries on every rank; pipeline stages hold different
# byte counts, so it is bounded by entry count alone (MLXEngine's max(4, 2 * parallel)).
_NO_BYTE_BOUND = 1 << 62


def _drop(_: dict[str, Any]) -> None:
    """A follower's emit: only rank 0 answers clients."""


class LockstepEngine(MLXEngine):
    def __init__(self, loaded: LoadedModel, group: RankGroup, *, num_ctx: int, parallel: int,
                 on_lost: Any = None) -> None:
        super().__init__(loaded, num_ctx=num_ctx, parallel=parallel, cache_bytes=_NO_BYTE_BOUND)
        self.group = group
        self.lost: str | None = None  # set when the group broke; later requests fail at once
        self._on_lost = on_lost
        self._waiting: dict[int, _Seq] = {}  # rank 0: submitted, shared, not yet admitted
        self.solo_enabled = False  # every rank steps the same batch

    # -- rank 0, HTTP threads ----------------------------------------------------------------
    def submit(self, req: CompletionRequest, emit: Any) -> int:
        if self.lost:
            emit({"error": self.lost, "status": 500})
            return -1
        return super().submit(req, emit)

    # -- every rank, engine thread -------------------------------------------------------------
    def _loop(self) -> None:  # rank 0 (MLXEngine.start runs it on the engine thread)
        self._gen = self._new_generator()
        try:
            while not self._stopping:
                self._step()
        except RankLost as exc:
            self._lose(f"the model runner lost a rank of its group ({exc})")
        except Exception as exc:  # the ranks may now disagree: the group cannot go on
            log.exception("distributed generation step failed")
            self._lose(f"distributed generation failed: {exc}")

    def follow(self) -> int:
        """A follower's loop, on the calling thread, until rank 0 stops the group (0) or the
        group breaks (raises RankLost)."""
        self._gen = self._new_generator()
        while not self._stopping:
            self._step()
        return 0

    def stop(self) -> None:
        # not MLXEngine's flag: the quit must reach the followers through a share first
        self._inbox.put("quit")

    def _step(self) -> None:
        assert self._gen is not None
        with mx.stream(generation_stream):
            commands = self.group.share(self._collect() if self.group.leader else None) or []
        for command in commands:
            self._apply_shared(command)
        if self._by_uid:
            _, responses = self._gen.next()
            for r in responses:
                self._on_token(r)

    def _collect(self) -> list[list[Any]]:
        """Rank 0: the queued commands, as JSON every rank can apply."""
        out: list[list[Any]] = []

        def collect(cmd: str, arg: Any) -> None:
            if cmd == "submit":
                seq: _Seq = arg
                opts = seq.req.options
                if opts.temperature > 0 and opts.seed < 0:  # every rank must draw the same tokens
                    seq.req = seq.req.model_copy(update={"options": opts.model_copy(
                        update={"seed": random.getrandbits(63)})})
                self._waiting[seq.rid] = seq
                out.append(["submit", seq.rid, seq.req.model_dump(mode="json")])
            elif cmd == "cancel":
                out.append(["cancel", arg])
            elif cmd == "quit":
                out.append(["quit"])

        self._inbox.drain(collect, wait=0 if self._by_uid else IDLE_PING)
        return out

    def _apply_shared(self, command: list[Any]) -> None:
        kind = command[0]
        if kind == "quit":
            self._stopping = True
        elif kind == "cancel":
            self._apply("cancel", int(command[1]))
        elif kind == "submit":
            rid = int(command[1])
            seq = self._waiting.pop(rid, None)
            if seq is None:  # a follower
                seq = _Seq(rid, CompletionRequest.model_validate(command[2]), _drop)
            self._apply("submit", seq)

    def _lose(self, message: str) -> None:
        """Rank 0: fail every request in flight or queued with `message`, then let the runner end."""
        self.lost = message
        log.error("%s", message)
        for seq in [*self._by_rid.values(), *self._waiting.values()]:
            self._fail(seq, message)
        self._waiting.clear()

        def refuse(cmd: str, arg: Any) -> None:
            if cmd == "submit":
                arg.emit({"error": message, "status": 500})

        self._inbox.drain(refuse)
        if self._on_lost is not None:
            self._on_lost()
