"""The MLX engine: one thread owns the model and runs mlx-lm's BatchGenerator.

Every live request is a sequence in the batch; new ones join between decode steps, prefill is
chunked (`prefill_step_size`) so a long prompt does not stall running streams, and finished
sequences leave their KV cache in an LRU prefix cache bounded in bytes. A sequence alone in the
batch decodes outside it, on a plain KV cache (solo.py says why), until another request comes.

A sequence that fills `num_ctx` is shifted as Ollama does (the first num_keep tokens stay, half
of the rest goes) and re-enters the batch with the shortened window, which prefill reads again:
moving RoPE'd keys in place would be model-specific surgery on mlx-lm's caches, and a re-read
of half a window costs one prefill per half window generated.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import mlx.core as mx
from mlx_lm.generate import BatchGenerator, generation_stream
from mlx_lm.models.cache import (
    KVCache,
    can_trim_prompt_cache,
    make_prompt_cache,
    trim_prompt_cache,
)

from ollmlx.runner.context_window import fit_prompt, output_budget, shift_span
from ollmlx.runner.engine_api import Emit, Inbox, final_chunk
from ollmlx.runner.engines.mlx import batch_step, compiled_step, prefill_buckets
from ollmlx.runner.engines.mlx.constrained import GrammarProcessor, Grammars
from ollmlx.runner.engines.mlx.loader import LoadedModel
from ollmlx.runner.engines.mlx.prefix_cache import PrefixCache
from ollmlx.runner.engines.mlx.sampling import make_processors, make_sampler
from ollmlx.runner.engines.mlx.solo import SoloStream
from ollmlx.runner.engines.mlx.solo import compile_enabled as solo_compile_enabled
from ollmlx.runner.protocol import CompletionRequest
from ollmlx.runner.recent_encodings import RecentEncodings
from ollmlx.runner.segment_encoding import SegmentEncoder, special_tokens
from ollmlx.runner.stops import StopMatcher

log = logging.getLogger("ollmlx.runner.mlx")


@dataclass
class _Seq:
    rid: int
    req: CompletionRequest
    emit: Emit
    tokens: list[int] = field(default_factory=list)
    uid: int = -1
    detok: Any = None
    stops: StopMatcher | None = None
    t_insert: float = 0.0
    t_first: float = 0.0
    n_cached: int = 0
    out: list[int] = field(default_factory=list)
    budget: int = 0  # tokens it may generate in all (num_predict, bounded)
    sampler: Any = None  # kept across context shifts: the seed's key stream goes on
    processors: list[Any] = field(default_factory=list)


class MLXEngine:
    def __init__(self, loaded: LoadedModel, *, num_ctx: int, parallel: int,
                 prefill_step: int = 512, cache_bytes: int = 1 << 30) -> None:
        self.loaded = loaded
        self.tok = loaded.tokenizer
        self.encode = RecentEncodings(SegmentEncoder(lambda text: list(self.tok.encode(text, add_special_tokens=False)),
                                                     special_tokens(self.tok)))
        self.num_ctx = num_ctx
        self.parallel = parallel
        self.prefill_step = prefill_step
        self.prompt_cache = PrefixCache(max_size=max(4, 2 * parallel), max_bytes=cache_bytes)
        self.cache_hits = 0
        self._inbox = Inbox()
        self._by_uid: dict[int, _Seq] = {}
        self._by_rid: dict[int, _Seq] = {}
        self._gen: BatchGenerator | None = None
        self._solo: SoloStream | None = None
        self._solo_seq: _Seq | None = None
        self._batch_step: batch_step.BatchStep | None = None
        self.solo_tokens = 0  # tokens decoded on the solo path (tests, /info)
        # the solo path trims caches by a token: plain KV caches only (not sliding-window or SSM)
        self.solo_enabled = os.environ.get("OLLMLX_MLX_SOLO", "1") != "0" and all(
            type(c) is KVCache for c in make_prompt_cache(loaded.model))
        self._thread = threading.Thread(target=self._loop, name="mlx-engine", daemon=True)
        self._stopping = False
        vocab = int(loaded.config.get("vocab_size") or len(self.tok.vocab))
        self.grammars = Grammars(self.tok._tokenizer, vocab, sorted(self.tok.eos_token_ids))

    # -- called from HTTP threads ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        # building the grammar tokenizer takes ~1s: do it off the engine thread, ahead of need
        threading.Thread(target=self._warm_grammars, name="grammar-warmup", daemon=True).start()

    def _warm_grammars(self) -> None:
        try:
            _ = self.grammars.tokenizer
        except Exception as exc:  # a tokenizer llguidance cannot read: `format` requests say so then
            log.warning("structured output unavailable for this tokenizer: %s", exc)

    def stop(self) -> None:
        self._stopping = True
        self._inbox.put("wake")

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        rid = self._inbox.new_rid()
        self._inbox.put("submit", _Seq(rid, req, emit))
        return rid

    def cancel(self, rid: int) -> None:
        self._inbox.put("cancel", rid)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        ids = self.encode(text)
        bos = self.tok.bos_token_id
        if add_special and getattr(self.tok, "add_bos_token", False) and bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def detokenize(self, tokens: list[int]) -> str:
        return str(self.tok.decode(tokens))

    @property
    def active(self) -> int:
        return len(self._by_rid)

    # -- the engine thread -------------------------------------------------------------------
    def _new_generator(self) -> BatchGenerator:
        stop_tokens = [[e] for e in sorted(self.tok.eos_token_ids)]
        model: Any = self.loaded.model
        if batch_step.usable(model):  # CUDA: the batch's decode steps as one compiled call
            if self._batch_step is None:  # made in the engine thread, which runs its compiled step
                self._batch_step = batch_step.BatchStep(model)
            self._batch_step.release()
            model = batch_step.BatchedModel(model, self._batch_step)
        return BatchGenerator(
            model,
            stop_tokens=stop_tokens,
            completion_batch_size=self.parallel,
            prefill_batch_size=min(self.parallel, 8),
            prefill_step_size=self.prefill_step,
        )

    def _loop(self) -> None:
        self._gen = self._new_generator()
        if self.solo_enabled and solo_compile_enabled():
            # the once-per-model check (and the first trace) at load, not in the first request
            compiled_step.usable(self.loaded.model)
        if self.solo_enabled and prefill_buckets.wanted() and prefill_buckets.usable(self.loaded.model):
            with mx.stream(generation_stream):  # the stream a lone stream's prefill runs on (graphs are per stream)
                prefill_buckets.warm(self.loaded.model, self.num_ctx, self.prefill_step)
        while not self._stopping:
            self._inbox.drain(self._apply, wait=0 if self._by_uid else None)
            if not self._by_uid:
                continue
            try:
                if self._solo is not None:
                    self._solo_step()
                else:
                    _, responses = self._gen.next()
                    for r in responses:
                        self._on_token(r)
                    self._maybe_go_solo(responses)
            except Exception as exc:  # an engine failure fails the live requests, not the runner
                log.exception("generation step failed")
                self._solo = self._solo_seq = None
                for seq in list(self._by_rid.values()):
                    self._fail(seq, f"generation failed: {exc}")
                self._gen = self._new_generator()

    def _maybe_go_solo(self, responses: list[Any]) -> None:
        """One sequence left, decoding: take it out of the batch with its cache."""
        if not self.solo_enabled or len(self._by_uid) != 1:
            return
        (seq,) = self._by_uid.values()
        if not any(r.uid == seq.uid and r.finish_reason is None for r in responses):
            return  # still reading its prompt
        assert self._gen is not None
        cache, tokens = self._gen.remove([seq.uid], return_prompt_caches=True)[seq.uid]
        self._solo = SoloStream.from_batch(self.loaded.model, cache, list(tokens), seq.sampler, seq.processors)
        self._solo_seq = seq

    def _leave_solo(self) -> None:
        """Another request came: the solo sequence goes back into the batch with its cache."""
        assert self._solo is not None and self._solo_seq is not None
        seq = self._solo_seq
        cache, cached, rest = self._solo.leave()
        self._solo = self._solo_seq = None
        self._insert(seq, rest, cache, cached)

    def _solo_step(self) -> None:
        assert self._solo is not None and self._solo_seq is not None
        solo, seq = self._solo, self._solo_seq
        if not solo.ready:
            solo.prefill()
            return
        token, logprobs = solo.step()
        self.solo_tokens += 1
        finish = None
        if token in self.tok.eos_token_ids:
            finish = "stop"
        elif len(seq.out) + 1 >= seq.budget or len(solo.tokens) >= self.num_ctx:
            finish = "length"
        if finish is not None:  # the sequence leaves the solo path (finished, or shifted into the batch)
            solo.settle()  # its cache then holds every token
            self._solo = self._solo_seq = None
        self._on_token(SimpleNamespace(uid=seq.uid, token=token, logprobs=logprobs, finish_reason=finish,
                                       all_tokens=solo.tokens, prompt_cache=solo.cache if finish else None))

    def _apply(self, cmd: str, arg: Any) -> None:
        if cmd == "submit":
            if self._solo is not None:
                self._leave_solo()
            try:
                self._admit(arg)
            except Exception as exc:
                log.exception("could not start a sequence")
                arg.emit({"error": str(exc), "status": 400 if isinstance(exc, ValueError) else 500})
        elif cmd == "cancel":
            seq = self._by_rid.get(arg)
            if seq is not None:
                self._remove(seq, keep_cache=False)

    def _prompt_tokens(self, req: CompletionRequest) -> list[int]:
        if req.tokens is not None:
            tokens = list(req.tokens)
        else:
            bos_text = self.tok.bos_token
            has_bos = bool(bos_text) and req.prompt.startswith(bos_text)
            tokens = self.tokenize(req.prompt, add_special=not has_bos)
        if not tokens:
            bos = self.tok.bos_token_id
            tokens = [bos if bos is not None else next(iter(self.tok.eos_token_ids), 0)]
        return fit_prompt(tokens, self.num_ctx, req.options.num_keep, truncate=req.truncate and req.shift)

    def _admit(self, seq: _Seq) -> None:
        assert self._gen is not None
        req = seq.req
        seq.tokens = self._prompt_tokens(req)
        matcher = self.grammars.matcher(req.format)
        seq.budget = output_budget(req.options.num_predict, self.num_ctx)
        if seq.budget <= 0:
            seq.emit(self._final(seq, "length"))
            return
        cache, rest = self.prompt_cache.fetch_nearest_cache("m", seq.tokens)
        if cache is not None and not rest:
            if can_trim_prompt_cache(cache):
                trim_prompt_cache(cache, 1)
                rest = seq.tokens[-1:]
            else:
                cache, rest = None, seq.tokens
        seq.n_cached = len(seq.tokens) - len(rest)
        if seq.n_cached:
            self.cache_hits += 1
        seq.detok = self.tok.detokenizer
        seq.stops = StopMatcher(req.options.stop)
        seq.t_insert = time.perf_counter()
        seq.sampler = make_sampler(req.options)
        seq.processors = make_processors(req.options, self.num_ctx) + (
            [GrammarProcessor(matcher, self.grammars.vocab_size)] if matcher else [])
        self._by_rid[seq.rid] = seq
        if self.solo_enabled and not self._by_uid:  # the engine is idle: this one starts alone
            seq.uid = -1 - seq.rid  # not a BatchGenerator uid
            self._solo = SoloStream(self.loaded.model, cache if cache is not None else make_prompt_cache(
                self.loaded.model), seq.tokens[: seq.n_cached], rest, seq.sampler, seq.processors, self.prefill_step)
            self._solo_seq = seq
            self._by_uid[seq.uid] = seq
            return
        self._insert(seq, rest, cache, seq.tokens[: seq.n_cached])

    def _insert(self, seq: _Seq, rest: list[int], cache: Any, cached: list[int]) -> None:
        """Put the sequence in the batch, under a new uid; it stops with "length" at its budget or
        a full window."""
        assert self._gen is not None
        if self._by_uid.get(seq.uid) is seq:  # re-entering (from solo, or shifted): drop the old uid
            del self._by_uid[seq.uid]
        room = self.num_ctx - len(cached) - len(rest)
        (seq.uid,) = self._gen.insert(
            [rest],
            max_tokens=[min(seq.budget - len(seq.out), room)],
            caches=[cache] if cache is not None else None,
            all_tokens=[cached],
            samplers=[seq.sampler],
            logits_processors=[seq.processors],
        )
        self._by_uid[seq.uid] = seq

    def _shift(self, seq: _Seq, window: list[int]) -> None:
        """Context shift: the sequence (already out of the batch) goes on from a shortened window."""
        keep, discard = shift_span(len(window), self.num_ctx, seq.req.options.num_keep)
        for p in seq.processors:
            if isinstance(p, GrammarProcessor):
                p.restart()
        self._insert(seq, window[:keep] + window[keep + discard:], None, [])

    def _logprobs(self, token: int, logprobs: mx.array, top: int) -> dict[str, Any]:
        def entry(t: int, lp: float) -> dict[str, Any]:
            text = self.tok.decode([t])
            return {"token": text, "logprob": lp, "bytes": list(text.encode())}

        out = entry(token, cast(float, logprobs[token].item()))
        if top > 0:
            idx = mx.argpartition(-logprobs, kth=top - 1)[:top]
            ids = cast(list[int], idx.tolist())
            vals = cast(list[float], logprobs[idx].tolist())
            pairs = sorted(zip(ids, vals), key=lambda p: -p[1])
            out["top_logprobs"] = [entry(t, v) for t, v in pairs]
        return out

    def _on_token(self, r: Any) -> None:
        seq = self._by_uid.get(r.uid)
        if seq is None:
            return
        if not seq.t_first:
            seq.t_first = time.perf_counter()
        finish = r.finish_reason
        assert seq.stops is not None
        if finish == "stop":  # an end-of-generation token: not part of the output
            self._finish(seq, "stop", r)
            return
        seq.out.append(r.token)
        seq.detok.add_token(r.token)
        # "length" before the budget is spent means the window is full: shift unless forbidden
        shift = finish == "length" and seq.req.shift and len(seq.out) < seq.budget
        if finish == "length" and not shift:
            seq.detok.finalize()
        piece, matched = seq.stops.feed(seq.detok.last_segment)
        chunk: dict[str, Any] = {}
        if piece:
            chunk["content"] = piece
        if seq.req.logprobs or seq.req.top_logprobs:
            chunk["logprobs"] = [self._logprobs(r.token, r.logprobs, seq.req.top_logprobs)]
        if chunk:
            seq.emit(chunk)
        if matched:
            self._finish(seq, "stop", None)
        elif shift:
            self._shift(seq, list(r.all_tokens))
        elif finish == "length":
            self._finish(seq, "length", r)

    def _final(self, seq: _Seq, reason: str) -> dict[str, Any]:
        return final_chunk(seq.req, reason, seq.tokens, seq.out, seq.n_cached, seq.t_insert, seq.t_first)

    def _finish(self, seq: _Seq, reason: str, r: Any) -> None:
        assert seq.stops is not None
        if reason != "stop" or r is not None:
            seq.detok.finalize()
            tail = seq.detok.last_segment
            piece, _ = seq.stops.feed(tail) if tail else ("", False)
            rest = piece + seq.stops.flush()
            if rest:
                seq.emit({"content": rest})
        seq.emit(self._final(seq, reason))
        if r is not None and r.prompt_cache is not None:
            self.prompt_cache.insert_cache("m", list(r.all_tokens), r.prompt_cache)
            self._by_uid.pop(seq.uid, None)
            self._by_rid.pop(seq.rid, None)
        else:
            self._remove(seq, keep_cache=True)

    def _remove(self, seq: _Seq, keep_cache: bool) -> None:
        assert self._gen is not None
        self._by_uid.pop(seq.uid, None)
        self._by_rid.pop(seq.rid, None)
        if self._solo is not None and self._solo_seq is seq:
            if keep_cache and self._solo.ready:  # a cache half-way through a prompt is not kept
                self._solo.settle()
                self.prompt_cache.insert_cache("m", list(self._solo.tokens), self._solo.cache)
            self._solo = self._solo_seq = None
            return
        caches = self._gen.remove([seq.uid], return_prompt_caches=keep_cache)
        if keep_cache and seq.uid in caches:
            cache, tokens = caches[seq.uid]
            if cache:
                self.prompt_cache.insert_cache("m", list(tokens), cache)

    def _fail(self, seq: _Seq, message: str) -> None:
        self._by_uid.pop(seq.uid, None)
        self._by_rid.pop(seq.rid, None)
        seq.emit({"error": message, "status": 500})
