"""Embeddings end to end (spec §4 /api/embed, §5 /api/embeddings, §19 errors): resolve the model,
merge options, load it (an empty input only loads, or unloads with keep_alive 0), embed every input
in one runner call (the runner batches them and cuts them to the context), then normalise and
shorten to `dimensions` the way Ollama's EmbedHandler does. The legacy route returns the runner's
vector as is."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from ollmlx.api.schemas import EmbeddingsRequest, EmbedRequest
from ollmlx.errors import BadRequest, InvalidModelName, ModelNotFound, ModelRequired, NotFound, OllmlxError
from ollmlx.options import OptionTypeError, default_options, merge_options
from ollmlx.runner.protocol import EmbeddingRequest, EmbeddingResponse
from ollmlx.sched.scheduler import Scheduler
from ollmlx.serve.capabilities import is_embedding_model
from ollmlx.serve.inference import OptionError, keep_alive_of
from ollmlx.serve.loading import load_request
from ollmlx.store.names import ModelName, parse_name
from ollmlx.store.store import Model, Store

NAN_OR_INF = "embedding contains NaN or Inf values"


class RunnerFailed(OllmlxError):
    """The legacy route answers every runner error with 500 (EmbeddingsHandler)."""

    status = 500


def embed_inputs(raw: Any) -> list[str]:
    """`input`: a string (empty means none) or a list of strings; anything else is refused."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw else []
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise BadRequest("invalid input type")


def normalize(vec: np.ndarray) -> np.ndarray:
    """L2 normalisation in float32, as Ollama's `normalize`; NaN or Inf is an error."""
    if not np.all(np.isfinite(vec)):
        raise BadRequest(NAN_OR_INF)
    norm = max(math.sqrt(float(np.dot(vec, vec))), 1e-12)
    return (vec * np.float32(1.0 / norm)).astype(np.float32)


def float32_json(vec: np.ndarray) -> list[float]:
    """Each value as its shortest float32 text, the way Go encodes a []float32."""
    return [float(str(x)) for x in vec]


class Embeddings:
    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler

    def _name(self, name: str, *, legacy: bool) -> ModelName:
        if not name:
            if legacy:
                raise ModelRequired()
            raise ModelNotFound("")
        parsed = parse_name(name)
        if not parsed.is_valid():
            raise InvalidModelName()
        return parsed

    def _model(self, parsed: ModelName, name: str) -> Model:
        try:
            return self.store.load(parsed, display=name)
        except ModelNotFound as exc:
            raise NotFound(f"model {json.dumps(name, ensure_ascii=False)} not found, try pulling it first") from exc

    async def _run(self, model: Model, request_options: dict[str, Any] | None, keep_alive_raw: Any,
                   inputs: list[str], truncate: bool, legacy: bool = False) -> tuple[EmbeddingResponse | None, float]:
        """Load the model (and embed `inputs` when there are some); returns the load seconds too."""
        t0 = time.perf_counter()
        keep_alive = keep_alive_of(keep_alive_raw)
        try:
            opts = merge_options(default_options(), model.params, request_options)
        except OptionTypeError as exc:
            raise OptionError(str(exc)) from exc
        # embedding-only models load with one sequence; a generation model keeps its usual load
        # so that generate and embed share one runner
        loaded = await self.scheduler.acquire(load_request(model, opts, embedding=is_embedding_model(model)),
                                              keep_alive)
        load_seconds = time.perf_counter() - t0
        try:
            if not inputs:
                return None, load_seconds
            req = EmbeddingRequest(inputs=inputs, truncate=truncate, num_ctx=int(opts.get("num_ctx") or 0) or None)
            try:
                return await loaded.runner.embed(req), load_seconds
            except OllmlxError as exc:
                if legacy:
                    raise RunnerFailed(exc.message) from exc
                raise
        finally:
            self.scheduler.release(loaded)

    # -- /api/embed ----------------------------------------------------------------------------
    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        t0 = time.perf_counter()
        name = self._name(req.model, legacy=False)
        inputs = embed_inputs(req.input)  # Ollama checks the input before looking the model up
        model = self._model(name, req.model)
        result, load_seconds = await self._run(model, req.options, req.keep_alive, inputs, req.truncate is not False)
        if result is None:
            return {"model": req.model, "embeddings": []}
        vectors = []
        for raw in result.embeddings:
            vec = normalize(np.asarray(raw, dtype=np.float32))
            if 0 < req.dimensions < len(vec):
                vec = normalize(vec[: req.dimensions])
            vectors.append(float32_json(vec))
        out: dict[str, Any] = {"model": req.model, "embeddings": vectors,
                               "total_duration": int((time.perf_counter() - t0) * 1e9),
                               "load_duration": int(load_seconds * 1e9)}
        if result.prompt_eval_count:
            out["prompt_eval_count"] = result.prompt_eval_count
        return out

    # -- /api/embeddings (legacy) --------------------------------------------------------------
    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        model = self._model(self._name(req.model, legacy=True), req.model)
        inputs = [req.prompt] if req.prompt else []
        # no truncation here: an over-long prompt is the runner's error, answered with 500
        result, _ = await self._run(model, req.options, req.keep_alive, inputs, truncate=False, legacy=True)
        if result is None:
            return {"embedding": []}
        # float64 values of the runner's float32 vector, not normalised (Go's []float64)
        return {"embedding": [float(x) for x in result.embeddings[0]]}
