"""The llama.cpp engine: one thread owns one llama context shared by `parallel` sequences.

The context holds `parallel` KV sequences of `num_ctx` tokens each (a non-unified cache: one
stream per sequence id). Every step builds one `llama_batch` with the next token of each
generating sequence and chunks of the prompts being read, so all live requests advance in the
same `llama_decode` call. A sequence id keeps the tokens of its last request; a new request takes
the free slot sharing its longest prefix and only the rest of its prompt is decoded.

A sequence that fills `num_ctx` is shifted in place as Ollama does: the first num_keep tokens
stay, half of the rest leaves the KV cache and the newer half moves down (`seq_add` re-rotates
its keys). A cache that cannot shift re-reads the shortened window instead.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from ollmlx.runner.context_window import fit_prompt, output_budget, shift_span
from ollmlx.runner.engine_api import Emit, Inbox, final_chunk
from ollmlx.runner.engines.llamacpp import host
from ollmlx.runner.engines.llamacpp.model import LlamaCppModel, free_context
from ollmlx.runner.engines.llamacpp.sampling import SequenceSampler, format_grammar
from ollmlx.runner.protocol import CompletionRequest
from ollmlx.runner.stops import StopMatcher

log = logging.getLogger("ollmlx.runner.llamacpp")


@dataclass
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # exactly what this sequence's KV cache holds
    last_used: float = 0.0
    busy: bool = False


@dataclass
class _Seq:
    rid: int
    req: CompletionRequest
    emit: Emit
    prompt: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # to decode next: prompt rest, then the last draw
    sampler: SequenceSampler | None = None
    slot: _Slot | None = None
    stops: StopMatcher = field(default_factory=lambda: StopMatcher([]))
    utf8: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    max_tokens: int = 0
    n_cached: int = 0
    out: list[int] = field(default_factory=list)
    t_insert: float = 0.0
    t_first: float = 0.0


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LlamaCppEngine:
    def __init__(self, model: LlamaCppModel, *, num_ctx: int, parallel: int, n_batch: int = 512) -> None:
        self.model = model
        self.num_ctx = num_ctx
        self.parallel = parallel
        self.n_batch = max(n_batch, parallel)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = num_ctx * parallel
        params.n_seq_max = parallel
        params.kv_unified = False  # one cache stream per sequence: num_ctx tokens each
        params.n_batch = self.n_batch
        params.n_ubatch = min(self.n_batch, 512)
        params.n_threads = params.n_threads_batch = host.threads()
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model.ptr, params)
        if not ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {num_ctx} x {parallel} tokens")
        self.ctx: Any = ctx
        self.memory: Any = llama_cpp.llama_get_memory(ctx)
        self.batch: Any = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.slots = [_Slot(i) for i in range(parallel)]
        self.cache_hits = 0
        self._inbox = Inbox()
        self._waiting: deque[_Seq] = deque()
        self._active: list[_Seq] = []
        self._by_rid: dict[int, _Seq] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="llamacpp-engine", daemon=True)

    # -- called from HTTP threads ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine thread and free the native context (the model stays loaded)."""
        self._stopping = True
        self._inbox.put("wake")
        if self._thread.is_alive():
            self._thread.join(30)
        free_context(self.ctx, self.batch)
        self.ctx = self.batch = None

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        rid = self._inbox.new_rid()
        self._inbox.put("submit", _Seq(rid, req, emit))
        return rid

    def cancel(self, rid: int) -> None:
        self._inbox.put("cancel", rid)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_special and self.model.add_bos)

    def detokenize(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens)

    @property
    def active(self) -> int:
        return len(self._by_rid)

    # -- the engine thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping:
            self._inbox.drain(self._apply, wait=0 if self._by_rid else None)
            self._assign_slots()
            if not self._active:
                continue
            try:
                self._step()
            except Exception as exc:  # an engine failure fails the live requests, not the runner
                log.exception("decode step failed")
                for seq in list(self._active):
                    assert seq.slot is not None
                    llama_cpp.llama_memory_seq_rm(self.memory, seq.slot.seq_id, -1, -1)
                    seq.slot.tokens = []
                    self._release(seq)
                    seq.emit({"error": f"generation failed: {exc}", "status": 500})

    def _apply(self, cmd: str, arg: Any) -> None:
        if cmd == "submit":
            try:
                self._prepare(arg)
            except Exception as exc:
                log.info("request refused: %s", exc)
                arg.emit({"error": str(exc), "status": 400 if isinstance(exc, ValueError) else 500})
        elif cmd == "cancel":
            seq = self._by_rid.get(arg)
            if seq is not None:
                if seq in self._waiting:
                    self._waiting.remove(seq)
                self._release(seq)

    def _prompt_tokens(self, req: CompletionRequest) -> list[int]:
        if req.tokens is not None:
            tokens = list(req.tokens)
        else:
            # a prompt rendered with its BOS written out must not get a second one
            has_bos = req.prompt.startswith(self.model.detokenize([self.model.bos])) if self.model.bos >= 0 else False
            tokens = self.tokenize(req.prompt, add_special=not has_bos)
        if not tokens:
            tokens = [self.model.bos if self.model.bos >= 0 else self.model.eos]
        if any(not 0 <= t < self.model.n_vocab for t in tokens):
            raise ValueError("prompt token outside the model's vocabulary")
        return fit_prompt(tokens, self.num_ctx, req.options.num_keep, truncate=req.truncate and req.shift)

    def _prepare(self, seq: _Seq) -> None:
        """Check and tokenize a request, build its sampler; it then waits for a free slot."""
        req = seq.req
        seq.t_insert = time.perf_counter()
        seq.prompt = self._prompt_tokens(req)
        seq.max_tokens = output_budget(req.options.num_predict, self.num_ctx)
        if seq.max_tokens <= 0:
            seq.emit(self._final(seq, "length"))
            return
        seq.sampler = SequenceSampler(self.model, req.options, self.num_ctx, format_grammar(req.format))
        seq.sampler.accept_prompt(seq.prompt)
        seq.stops = StopMatcher(req.options.stop)
        self._waiting.append(seq)
        self._by_rid[seq.rid] = seq

    def _assign_slots(self) -> None:
        while self._waiting:
            free = [s for s in self.slots if not s.busy]
            if not free:
                return
            seq = self._waiting.popleft()
            # the slot sharing the longest prefix; among equals the one idle the longest
            slot = max(free, key=lambda s: (_common_prefix(s.tokens, seq.prompt), -s.last_used))
            reuse = min(_common_prefix(slot.tokens, seq.prompt), len(seq.prompt) - 1)
            if not llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, reuse, -1):
                # this cache cannot drop a partial sequence (recurrent models): start over
                llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
                reuse = 0
            del slot.tokens[reuse:]
            slot.busy = True
            seq.slot = slot
            seq.n_cached = reuse
            seq.pending = seq.prompt[reuse:]
            if reuse:
                self.cache_hits += 1
            self._active.append(seq)

    def _step(self) -> None:
        batch = self.batch
        batch.n_tokens = 0
        budget = self.n_batch
        fed: list[tuple[_Seq, int]] = []
        outputs: list[tuple[_Seq, int]] = []
        # generating sequences first, one token each, so streams keep pace while prompts are read
        for seq in sorted(self._active, key=lambda s: not s.t_first):
            if budget <= 0:
                break
            assert seq.slot is not None
            take = min(len(seq.pending), budget)
            pos0 = len(seq.slot.tokens)
            for k in range(take):
                j = batch.n_tokens
                batch.token[j] = seq.pending[k]
                batch.pos[j] = pos0 + k
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq.slot.seq_id
                batch.logits[j] = False
                batch.n_tokens = j + 1
            if take == len(seq.pending):  # the prompt is read: this step yields the next token
                batch.logits[batch.n_tokens - 1] = True
                outputs.append((seq, batch.n_tokens - 1))
            fed.append((seq, take))
            budget -= take
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for seq, take in fed:
            assert seq.slot is not None
            seq.slot.tokens.extend(seq.pending[:take])
            del seq.pending[:take]
        for seq, index in outputs:
            self._next_token(seq, index)

    def _next_token(self, seq: _Seq, index: int) -> None:
        assert seq.sampler is not None
        if not seq.t_first:
            seq.t_first = time.perf_counter()
        token = seq.sampler.sample(self.ctx, index)
        if self.model.is_eog(token):  # end of generation: not part of the output
            self._finish(seq, "stop", flush=True)
            return
        seq.out.append(token)
        assert seq.slot is not None
        full = len(seq.slot.tokens) + 1 > self.num_ctx  # no room to decode this token
        last = len(seq.out) >= seq.max_tokens or (full and not seq.req.shift)
        text = seq.utf8.decode(self.model.piece(token), final=last)
        piece, matched = seq.stops.feed(text)
        chunk: dict[str, Any] = {}
        if piece:
            chunk["content"] = piece
        if seq.req.logprobs or seq.req.top_logprobs:
            chunk["logprobs"] = [self._logprobs(index, token, seq.req.top_logprobs)]
        if chunk:
            seq.emit(chunk)
        if matched:
            self._finish(seq, "stop", flush=False)  # the stop string and what follows are dropped
        elif last:
            self._finish(seq, "length", flush=True)
        else:
            seq.pending = [token]
            if full:
                self._shift(seq)

    def _shift(self, seq: _Seq) -> None:
        slot = seq.slot
        assert slot is not None
        keep, discard = shift_span(len(slot.tokens), self.num_ctx, seq.req.options.num_keep)
        end = keep + discard
        if (llama_cpp.llama_memory_can_shift(self.memory)
                and llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, end)):
            llama_cpp.llama_memory_seq_add(self.memory, slot.seq_id, end, -1, -discard)
            del slot.tokens[keep:end]
        else:  # re-read the newer half at its new positions
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1)
            seq.pending = slot.tokens[end:] + seq.pending
            del slot.tokens[keep:]

    def _logprobs(self, index: int, token: int, top: int) -> dict[str, Any]:
        """Log-probabilities from the model's raw logits (before penalties/temperature)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, index)
        logits = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).astype(np.float64)
        m = logits.max()
        logprobs = logits - (m + np.log(np.exp(logits - m).sum()))

        def entry(t: int) -> dict[str, Any]:
            raw = self.model.piece(t)
            return {"token": raw.decode(errors="replace"), "logprob": float(logprobs[t]), "bytes": list(raw)}

        out = entry(token)
        if top > 0:
            k = min(top, self.model.n_vocab)
            idx = np.argpartition(-logprobs, k - 1)[:k]
            out["top_logprobs"] = [entry(int(t)) for t in idx[np.argsort(-logprobs[idx])]]
        return out

    def _final(self, seq: _Seq, reason: str) -> dict[str, Any]:
        return final_chunk(seq.req, reason, seq.prompt, seq.out, seq.n_cached, seq.t_insert, seq.t_first)

    def _finish(self, seq: _Seq, reason: str, *, flush: bool) -> None:
        if flush:
            tail = seq.utf8.decode(b"", final=True)
            piece, matched = seq.stops.feed(tail) if tail else ("", False)
            rest = piece + ("" if matched else seq.stops.flush())
            if rest:
                seq.emit({"content": rest})
        seq.emit(self._final(seq, reason))
        self._release(seq)

    def _release(self, seq: _Seq) -> None:
        """Free the sequence's slot; its KV cache stays for the next request's prefix."""
        self._by_rid.pop(seq.rid, None)
        if seq in self._active:
            self._active.remove(seq)
        if seq.slot is not None:
            seq.slot.busy = False
            seq.slot.last_used = time.monotonic()
            seq.slot = None
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
