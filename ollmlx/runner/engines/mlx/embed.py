"""Embeddings on MLX (spec §4, §5): BERT-family encoders through mlx-embeddings, decoder models
through mlx-lm's backbone, pooled the way the model says (sentence-transformers `1_Pooling`, GGUF
`<arch>.pooling_type`, else mean).

One worker thread owns the forward passes: every input of every pending request joins one queue,
and the worker packs them into length-sorted padded batches, so concurrent requests share passes.
Inputs are cut to the context here, on tokens, keeping the tokenizer's special tokens (Ollama cuts
the text to `ctx` minus BOS/EOS and re-tokenizes; cutting the tokens gives the same ids).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engine_api import EngineError
from ollmlx.runner.engines.mlx.loader import LoadedModel, load_tensor_layers
from ollmlx.runner.protocol import EmbeddingRequest, EmbeddingResponse, ModelSpec
from ollmlx.serve.capabilities import is_embedding_config, is_embedding_gguf

log = logging.getLogger("ollmlx.runner.mlx")

TOO_LONG = "the input length exceeds the context length"
# llama.cpp's enum llama_pooling_type: 1 mean, 2 cls, 3 last (0 none and 4 rank fall back to mean)
GGUF_POOLING = {1: "mean", 2: "cls", 3: "lasttoken"}
# sentence-transformers Pooling config keys, in the order it concatenates them
ST_POOLING = (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
              ("pooling_mode_mean_tokens", "mean"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
              ("pooling_mode_lasttoken", "lasttoken"))
ST_MODULES = ("Transformer", "Pooling", "Normalize")
GENERATIVE_ARCHS = ("ForCausalLM", "ForConditionalGeneration")

Hidden = Callable[[mx.array, mx.array], mx.array]  # (ids, mask) -> (B, L, H) or already pooled (B, H)


@dataclass(frozen=True)
class Pooling:
    modes: tuple[str, ...] = ("mean",)
    normalize: bool = True


def _read_json(files: dict[str, str], name: str) -> Any:
    path = files.get(name)
    return json.loads(Path(path).read_text()) if path else None


def st_pooling(files: dict[str, str], default: str) -> Pooling:
    """What the sentence-transformers files say. Without them llama-server's default applies:
    the `default` pooling, L2-normalised (Ollama's runner returns normalised vectors)."""
    modules = _read_json(files, "modules.json")
    if not isinstance(modules, list):
        return Pooling((default,), True)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    unsupported = [k for k in kinds if k not in ST_MODULES]
    if unsupported:  # e.g. Dense projections: refuse rather than return vectors of the wrong space
        raise ValueError(f"unsupported sentence-transformers modules: {', '.join(unsupported)}")
    modes: tuple[str, ...] = (default,)
    for m in modules:
        if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling"):
            cfg = _read_json(files, f"{m.get('path') or ''}/config.json".lstrip("/")) or {}
            if isinstance(cfg.get("pooling_mode"), str):
                modes = ({"mean_tokens": "mean", "cls_token": "cls"}.get(cfg["pooling_mode"], cfg["pooling_mode"]),)
            else:
                modes = tuple(mode for key, mode in ST_POOLING if cfg.get(key)) or modes
    return Pooling(modes, "Normalize" in kinds)


def pool(hidden: mx.array, mask: mx.array, lengths: mx.array, pooling: Pooling) -> mx.array:
    if hidden.ndim == 2:  # the model pooled already (some mlx-embeddings heads do)
        out = hidden.astype(mx.float32)
    else:
        h = hidden.astype(mx.float32)
        m = mask.astype(mx.float32)[..., None]
        n = mx.maximum(lengths.astype(mx.float32)[:, None], 1.0)
        parts = []
        for mode in pooling.modes:
            if mode == "cls":
                parts.append(h[:, 0])
            elif mode == "lasttoken":
                parts.append(mx.take_along_axis(h, (lengths - 1)[:, None, None], axis=1)[:, 0])
            elif mode == "max":
                parts.append(mx.max(mx.where(m > 0, h, -mx.inf), axis=1))
            elif mode == "mean_sqrt_len":
                parts.append(mx.sum(h * m, axis=1) / mx.sqrt(n))
            elif mode == "mean":
                parts.append(mx.sum(h * m, axis=1) / n)
            else:
                raise ValueError(f"unsupported pooling mode {mode!r}")
        out = parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=-1)
    if pooling.normalize:
        out = out / mx.maximum(mx.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out


@dataclass
class _Job:
    seqs: list[list[int]]
    vectors: list[list[float]] = field(default_factory=list)
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


class EmbedEngine:
    """Tokenize + truncate on the caller's thread; forward passes on the worker thread."""

    def __init__(self, hidden: Hidden, tokenizer: Any, *, context_length: int, num_ctx: int, pooling: Pooling,
                 model: nn.Module, add_bos: bool = False, max_batch_tokens: int = 8192) -> None:
        self.hidden = hidden
        self.tok = tokenizer
        self.model = model
        self.context_length = context_length
        self.num_ctx = min(num_ctx, context_length) if num_ctx > 0 else context_length
        self.pooling = pooling
        self.add_bos = add_bos  # GGUF tokenizers carry add_bos_token as metadata, not a post-processor
        self.max_batch_tokens = max(max_batch_tokens, self.num_ctx)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlx-embed", daemon=True)
        self._thread.start()

    # -- any thread ----------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        ids = list(self.tok.encode(text, add_special_tokens=add_special))
        bos = getattr(self.tok, "bos_token_id", None)
        if add_special and self.add_bos and bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def detokenize(self, tokens: list[int]) -> str:
        return str(self.tok.decode(tokens))

    def fit(self, text: str, limit: int, truncate: bool) -> list[int]:
        """The input's tokens with special tokens, cut to `limit` when allowed."""
        full = self.tokenize(text, add_special=True)
        if len(full) <= limit:
            return full
        if not truncate:
            raise EngineError(TOO_LONG, 400)
        content = self.tokenize(text, add_special=False)
        start = next((p for p in range(len(full) - len(content) + 1) if full[p:p + len(content)] == content), None)
        if start is None:  # specials merged into the text's tokens: cut the whole sequence
            return full[:limit]
        prefix, suffix = full[:start], full[start + len(content):]
        room = limit - len(prefix) - len(suffix)
        if room <= 0:
            raise EngineError("input after truncation exceeds maximum context length", 400)
        return prefix + content[:room] + suffix

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        limit = min(n for n in (req.num_ctx, self.num_ctx, self.context_length) if n and n > 0)
        seqs = [self.fit(text, limit, req.truncate) for text in req.inputs]
        if any(not s for s in seqs):
            raise EngineError("cannot embed an empty input: it has no tokens", 400)
        job = _Job(seqs)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise EngineError(f"embedding failed: {job.error}", 500)
        return EmbeddingResponse(embeddings=job.vectors, prompt_eval_count=sum(len(s) for s in seqs))

    def stop(self) -> None:
        self._queue.put(None)

    # -- the worker thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while True:  # everything pending now shares the next passes
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        items = [(j, i, s) for j in jobs for i, s in enumerate(j.seqs)]
        for j in jobs:
            j.vectors = [[] for _ in j.seqs]
        items.sort(key=lambda x: len(x[2]), reverse=True)
        batch: list[tuple[_Job, int, list[int]]] = []
        for item in items:
            # sorted longest first, so the first item of a batch sets its padded width
            if batch and (len(batch) + 1) * len(batch[0][2]) > self.max_batch_tokens:
                self._forward(batch)
                batch = []
            batch.append(item)
        if batch:
            self._forward(batch)
        for j in jobs:
            j.done.set()

    def _forward(self, batch: list[tuple[_Job, int, list[int]]]) -> None:
        try:
            width = len(batch[0][2])
            ids = mx.array([s + [self.pad_id] * (width - len(s)) for _, _, s in batch], dtype=mx.int32)
            lengths = mx.array([len(s) for _, _, s in batch], dtype=mx.int32)
            mask = (mx.arange(width)[None, :] < lengths[:, None]).astype(mx.int32)
            out = pool(self.hidden(ids, mask), mask, lengths, self.pooling)
            mx.eval(out)
            rows = cast(list[list[float]], out.tolist())
            for (job, i, _), vec in zip(batch, rows, strict=True):
                job.vectors[i] = vec
        except Exception as exc:  # fail these requests, keep the worker
            log.exception("embedding forward pass failed")
            for job, _, _ in batch:
                job.error = exc


# -- loading ---------------------------------------------------------------------------------
def _config(spec: ModelSpec) -> dict[str, Any]:
    cfg = _read_json(spec.files, "config.json")
    return cfg if isinstance(cfg, dict) else {}


def is_embedding_spec(spec: ModelSpec) -> bool:
    """Whether the runner should load this model for embeddings only (same rule as /api/show)."""
    if spec.format == "gguf":
        from ollmlx.store.gguf_info import read_gguf

        return bool(spec.gguf_path) and is_embedding_gguf(read_gguf(Path(str(spec.gguf_path))))
    modules = _read_json(spec.files, "modules.json")
    return is_embedding_config(_config(spec), modules if isinstance(modules, list) else None)


def _is_generative(config: dict[str, Any]) -> bool:
    return any(str(a).endswith(GENERATIVE_ARCHS) for a in config.get("architectures") or [])


def load_embedding_model(spec: ModelSpec, num_ctx: int) -> EmbedEngine:
    """An embedding-only model: encoders through mlx-embeddings, decoders through mlx-lm."""
    if spec.format == "gguf":
        from ollmlx.runner.engines.mlx.loader import load
        from ollmlx.store.gguf_info import read_gguf

        info = read_gguf(Path(str(spec.gguf_path)))
        if info.architecture in ("bert", "nomic-bert", "nomic-bert-moe", "xlm-roberta", "jina-bert-v2"):
            raise ValueError(f"GGUF {info.architecture} embedding models are not supported by the mlx engine; "
                             "import the Hugging Face directory instead")
        return decoder_embedder(load(spec), spec, num_ctx)
    config = _config(spec)
    if _is_generative(config):
        from ollmlx.runner.engines.mlx.loader import load

        return decoder_embedder(load(spec), spec, num_ctx)
    return _encoder_embedder(spec, config, num_ctx)


def _encoder_embedder(spec: ModelSpec, config: dict[str, Any], num_ctx: int) -> EmbedEngine:
    from mlx_lm.utils import infer_quant_config
    from transformers import AutoTokenizer

    model_type = str(config.get("model_type", "")).replace("-", "_")
    try:
        arch = importlib.import_module(f"mlx_embeddings.models.{model_type}")
    except ImportError as exc:
        raise ValueError(f"embedding model type {model_type!r} is not supported by mlx-embeddings") from exc
    model = arch.Model(arch.ModelArgs.from_dict(config))
    weights, quant = load_tensor_layers(spec.tensors)
    if hasattr(model, "sanitize"):
        weights = model.sanitize(weights)
    weights = _match_names(model, weights)
    if quant:
        nn.quantize(model, class_predicate=lambda p, m: quant.get(p) or (
            hasattr(m, "to_quantized") and f"{p}.scales" in weights and infer_quant_config(p, m, weights)))
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    model.eval()
    with tempfile.TemporaryDirectory(prefix="ollmlx-tok-") as d:  # tokenizers load from a directory
        for fname, blob in spec.files.items():
            target = Path(d) / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(blob, target)
        tokenizer = AutoTokenizer.from_pretrained(d)
    tokenizer.model_max_length = 1 << 62  # inputs are cut to the context here, quietly

    def hidden(ids: mx.array, mask: mx.array) -> mx.array:
        out = model(ids, attention_mask=mask)
        return out.last_hidden_state if out.last_hidden_state is not None else out.text_embeds

    ctx = int(config.get("max_position_embeddings") or 512)
    if model_type in ("roberta", "xlm_roberta"):  # positions start after the padding index
        ctx -= int(config.get("pad_token_id") or 1) + 1
    return EmbedEngine(hidden, tokenizer, context_length=ctx, num_ctx=num_ctx,
                       pooling=st_pooling(spec.files, "mean"), model=model)


def _match_names(model: nn.Module, weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """Drop heads the encoder lacks and a leading `bert.`-style prefix that checkpoints of
    `*ForMaskedLM` carry, so strict loading still catches truly missing weights."""
    from mlx.utils import tree_flatten

    wanted = {str(k) for k, _ in cast(list[tuple[str, Any]], tree_flatten(model.parameters()))}
    prefixed = not any(name in wanted for name in weights)
    out: dict[str, mx.array] = {}
    for name, w in weights.items():
        key = name.split(".", 1)[-1] if prefixed else name
        if key in wanted or (key.endswith((".scales", ".biases")) and f"{key.rsplit('.', 1)[0]}.weight" in wanted):
            out[key] = w
    return out


def decoder_embedder(loaded: LoadedModel, spec: ModelSpec, num_ctx: int) -> EmbedEngine:
    """A decoder's final hidden states (after its last norm), pooled per the model's config."""
    backbone = getattr(loaded.model, "model", None) or getattr(loaded.model, "language_model", None)
    if backbone is None or not callable(backbone):
        raise ValueError(f"cannot take hidden states of {type(loaded.model).__name__}")
    default = "mean"
    if spec.format == "gguf" and spec.gguf_path:
        from ollmlx.store.gguf_info import read_gguf

        kind = read_gguf(Path(spec.gguf_path)).arch_value("pooling_type")
        default = GGUF_POOLING.get(int(kind), "mean") if kind is not None else "mean"
    pooling = st_pooling(spec.files, default)

    def hidden(ids: mx.array, mask: mx.array) -> mx.array:
        # causal attention: right padding never reaches the real tokens, so no mask is needed
        out: mx.array = backbone(ids)
        return out

    return EmbedEngine(hidden, loaded.tokenizer, context_length=loaded.context_length, num_ctx=num_ctx,
                       pooling=pooling, model=loaded.model, add_bos=bool(getattr(loaded.tokenizer, "add_bos_token", False)))
