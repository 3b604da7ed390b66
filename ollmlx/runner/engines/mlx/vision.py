"""Vision-language models on MLX through mlx-vlm (spec §12).

A safetensors model whose config.json has a `vision_config` loads with `mlx_vlm.utils.load` from
a directory made of its Ollama layers (json layers under their file names, tensor blobs as
safetensors shards). Requests run one at a time on an engine thread with `mlx_vlm`'s
`stream_generate`, with Ollama's sampling options, stop strings and `format` constraints.

Where images go in the prompt: a prompt rendered from the model's own chat template already holds
the model's image tokens (the server renders image parts); a Go TEMPLATE prompt holds Ollama's
`[img-N]` tags, which are replaced here by the image text the model's chat template writes.
A prompt with neither (raw mode) gets no images, as Ollama's runners ignore unreferenced ones.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import queue
import re
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engine_api import Emit, EngineError
from ollmlx.runner.engines.mlx.constrained import GrammarProcessor, Grammars
from ollmlx.runner.engines.mlx.sampling import make_processors, make_sampler
from ollmlx.runner.protocol import CompletionRequest, ModelSpec
from ollmlx.runner.stops import StopMatcher

log = logging.getLogger("ollmlx.runner.mlx")
IMAGE_TAG = re.compile(r"\[img-(\d+)\]")


def spec_config(spec: ModelSpec) -> dict[str, Any]:
    path = spec.files.get("config.json")
    if spec.format != "safetensors" or not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_vision_spec(spec: ModelSpec) -> bool:
    return isinstance(spec_config(spec).get("vision_config"), dict)


def _tensor_names(path: str) -> list[str]:
    """Tensor names from a safetensors header, without loading the data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def _model_dir(spec: ModelSpec, into: Path) -> None:
    """Lay the model's layers out as the Hugging Face directory mlx-vlm reads."""
    for fname, blob in spec.files.items():
        target = into / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(blob, target)
    if not any(name.endswith(".weight.scale") for p in spec.tensors for name in _tensor_names(p)):
        for i, blob in enumerate(spec.tensors):  # tensors keep their Hugging Face names: link them
            os.symlink(blob, into / f"model-{i:05d}.safetensors")
        return
    # Ollama stores quantized parts as `<w>.scale` / `<w>.bias`; mlx names them `.scales` / `.biases`
    from ollmlx.runner.engines.mlx.loader import load_tensor_layers

    weights, _ = load_tensor_layers(spec.tensors)
    mx.save_safetensors(str(into / "model.safetensors"), weights)


def _image_text(processor: Any, config: dict[str, Any]) -> str:
    """The text the model's chat template writes for one image (what replaces an [img-N] tag):
    the tokens by which a user turn rendered with one image differs from one without (compared
    as tokens, so that the difference starts and ends on token boundaries)."""
    from mlx_vlm.prompt_utils import apply_chat_template

    tok = getattr(processor, "tokenizer", processor)
    try:
        one = tok.encode(str(apply_chat_template(processor, config, "?", num_images=1)), add_special_tokens=False)
        none = tok.encode(str(apply_chat_template(processor, config, "?", num_images=0)), add_special_tokens=False)
        start = 0
        while start < min(len(one), len(none)) and one[start] == none[start]:
            start += 1
        end = 0
        while end < min(len(one), len(none)) - start and one[-1 - end] == none[-1 - end]:
            end += 1
        found = str(tok.decode(one[start: len(one) - end])).strip()
        if found:
            return found
    except Exception:  # a template that cannot render images: fall back to the processor's token
        log.debug("could not render the image text from the chat template", exc_info=True)
    return str(getattr(processor, "image_token", "") or "<image>")


@dataclass
class VisionModel:
    model: nn.Module
    processor: Any
    config: dict[str, Any]
    context_length: int
    image_text: str
    workdir: tempfile.TemporaryDirectory[str]

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)


def load_vision(spec: ModelSpec) -> VisionModel:
    from mlx_vlm.utils import load as vlm_load

    workdir = tempfile.TemporaryDirectory(prefix="ollmlx-vlm-")
    _model_dir(spec, Path(workdir.name))
    model, processor = vlm_load(workdir.name)
    config = spec_config(spec)
    text = config.get("text_config") or {}
    ctx = int(text.get("max_position_embeddings") or config.get("max_position_embeddings") or 4096)
    return VisionModel(model, processor, config, ctx, _image_text(processor, config), workdir)


def decode_image(data: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
        return Image.open(io.BytesIO(raw)).convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise EngineError(f"invalid image input: {exc}", 400) from exc


def place_images(prompt: str, images: list[str], image_text: str) -> tuple[str, list[str]]:
    """The prompt with [img-N] tags replaced by the model's image text, and the images in the
    order the prompt refers to them."""
    tags = [int(m) for m in IMAGE_TAG.findall(prompt)]
    if tags:
        order = [n for n in tags if n < len(images)]
        text = IMAGE_TAG.sub(lambda m: image_text if int(m.group(1)) < len(images) else m.group(0), prompt)
        return text, [images[n] for n in order]
    if images and image_text and image_text in prompt:
        return prompt, images
    return prompt, []


@dataclass
class _Job:
    rid: int
    req: CompletionRequest
    emit: Emit
    cancelled: threading.Event = field(default_factory=threading.Event)


class VisionEngine:
    """One request at a time (mlx-vlm generates a single sequence with its images)."""

    def __init__(self, loaded: VisionModel, *, num_ctx: int) -> None:
        self.loaded = loaded
        self.num_ctx = num_ctx
        self.cache_hits = 0
        tok = loaded.tokenizer
        vocab = int((loaded.config.get("text_config") or {}).get("vocab_size") or loaded.config.get("vocab_size")
                    or len(tok))
        eos = getattr(tok, "eos_token_id", None)
        self.grammars = Grammars(tok, vocab, [eos] if isinstance(eos, int) else [])
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._live: dict[int, _Job] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="mlx-vlm-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)

    def submit(self, req: CompletionRequest, emit: Emit) -> int:
        with self._lock:
            rid, self._next = self._next, self._next + 1
            job = _Job(rid, req, emit)
            self._live[rid] = job
        self._jobs.put(job)
        return rid

    def cancel(self, rid: int) -> None:
        job = self._live.get(rid)
        if job is not None:
            job.cancelled.set()

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return list(self.loaded.tokenizer.encode(text, add_special_tokens=add_special))

    def detokenize(self, tokens: list[int]) -> str:
        return str(self.loaded.tokenizer.decode(tokens))

    # -- the engine thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if not job.cancelled.is_set():
                    self._run(job)
            except EngineError as exc:
                job.emit({"error": str(exc), "status": exc.status})
            except Exception as exc:  # a failed request fails alone, not the runner
                log.exception("vision generation failed")
                job.emit({"error": f"generation failed: {exc}", "status": 500})
            finally:
                self._live.pop(job.rid, None)

    def _run(self, job: _Job) -> None:
        from mlx_vlm.generate import stream_generate

        req, opts = job.req, job.req.options
        prompt, images = place_images(req.prompt, req.images, self.loaded.image_text)
        pictures = [decode_image(b) for b in images]
        matcher = self.grammars.matcher(req.format)
        processors = make_processors(opts, self.num_ctx) + (
            [GrammarProcessor(matcher, self.grammars.vocab_size)] if matcher else [])
        stops = StopMatcher(opts.stop)
        t0 = time.perf_counter()
        t_first = 0.0
        out: list[int] = []
        reason, prompt_tokens, matched = "length", 0, False
        for r in stream_generate(self.loaded.model, self.loaded.processor, prompt, image=pictures or None,
                                 max_tokens=opts.num_predict if opts.num_predict >= 0 else self.num_ctx,
                                 sampler=make_sampler(opts), logits_processors=processors):
            t_first = t_first or time.perf_counter()
            prompt_tokens = r.prompt_tokens or prompt_tokens
            if job.cancelled.is_set():
                return
            if r.finish_reason is None and r.token is not None:
                out.append(int(r.token))
            piece, matched = stops.feed(r.text or "")
            chunk: dict[str, Any] = {"content": piece} if piece else {}
            if (req.logprobs or req.top_logprobs) and r.finish_reason is None and r.token is not None \
                    and r.logprobs is not None:
                chunk["logprobs"] = [self._logprobs(int(r.token), cast(mx.array, r.logprobs), req.top_logprobs)]
            if chunk:
                job.emit(chunk)
            if matched:
                reason = "stop"
                break
            if r.finish_reason is not None:
                reason = "stop" if r.finish_reason == "stop" else "length"
        rest = "" if matched else stops.flush()
        if rest:
            job.emit({"content": rest})
        now = time.perf_counter()
        final: dict[str, Any] = {
            "done": True, "done_reason": reason, "prompt_eval_count": max(1, prompt_tokens),
            "prompt_eval_duration": int(((t_first or now) - t0) * 1e9), "eval_count": len(out),
            "eval_duration": int((now - (t_first or now)) * 1e9), "cached_tokens": 0,
        }
        if req.return_tokens:
            final["tokens"] = self.tokenize(prompt) + out
        job.emit(final)

    def _logprobs(self, token: int, logprobs: mx.array, top: int) -> dict[str, Any]:
        def entry(t: int, lp: float) -> dict[str, Any]:
            text = self.detokenize([t])
            return {"token": text, "logprob": lp, "bytes": list(text.encode())}

        flat = logprobs.reshape(-1)
        out = entry(token, cast(float, flat[token].item()))
        if top > 0:
            idx = mx.argpartition(-flat, kth=top - 1)[:top]
            pairs = sorted(zip(cast(list[int], idx.tolist()), cast(list[float], flat[idx].tolist())),
                           key=lambda p: -p[1])
            out["top_logprobs"] = [entry(t, v) for t, v in pairs]
        return out
