"""Split a loaded mlx-lm model over the ranks of an `mx.distributed` group.

Two ways, both mlx-lm's:
- tensor parallel: the model's own `shard(group)` (llama, qwen3, ... in mlx-lm) splits every
  attention and MLP projection; it needs the head counts to divide by the group size.
- pipeline: each rank runs a contiguous run of layers. Models with mlx-lm's `PipelineMixin`
  (`model.model.pipeline`) use it; plain decoder stacks without it (llama, qwen3: embed → layers →
  norm, masks from the first cache) get the same split here: the local layers are kept, the first
  one receives the hidden state from the previous stage and the last one sends it on. As in
  mlx-lm, the last rank runs the first layers and rank 0 the last ones, and every rank ends with
  rank 0's final hidden state (all_gather), so every rank computes the same logits.

A pipeline stage runs exactly the layers a single process runs, so its output is bit-identical
to one process; tensor parallel sums partial products across ranks (all_sum), which can differ in
the last bits.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

MODES = ("auto", "tensor", "pipeline")
# decoder stacks whose forward is "embed, mask from the first (or fa/swa) cache, zip(layers,
# cache), norm": slicing their layer list is all a pipeline stage needs
_STACK_MODEL_TYPES = ("llama", "qwen3", "mistral")


class ShardingError(ValueError):
    pass


def _args(model: nn.Module) -> Any:
    return getattr(model, "args", None)


def tensor_parallel_fits(model: nn.Module, n: int) -> bool:
    """Whether mlx-lm's `shard()` can split this model n ways: it divides heads and MLP rows evenly."""
    if not hasattr(model, "shard"):
        return False
    args = _args(model)
    for name in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
        value = getattr(args, name, None)
        if isinstance(value, int) and value % n:
            return False
    return True


def pipeline_fits(model: nn.Module, n: int) -> bool:
    inner = getattr(model, "model", None)
    if inner is None or len(getattr(inner, "layers", []) or []) < n:
        return False
    return hasattr(inner, "pipeline") or getattr(model, "model_type", None) in _STACK_MODEL_TYPES


def choose_mode(model: nn.Module, n: int, wanted: str = "auto") -> str:
    """`wanted` if this model supports it, for auto tensor parallel first (it splits the work of
    every step, where a pipeline runs its stages one after another), then pipeline."""
    if wanted not in MODES:
        raise ShardingError(f"unknown distributed mode {wanted!r} (one of {', '.join(MODES)})")
    kind = getattr(model, "model_type", type(model).__module__)
    if wanted in ("auto", "tensor") and tensor_parallel_fits(model, n):
        return "tensor"
    if wanted in ("auto", "pipeline") and pipeline_fits(model, n):
        return "pipeline"
    raise ShardingError(f"a {kind} model cannot be split over {n} ranks"
                        + ("" if wanted == "auto" else f" in {wanted} mode"))


def shard_model(model: nn.Module, group: mx.distributed.Group, mode: str) -> str:
    """Split `model` in place for this rank; returns what this rank holds, for /api/ps."""
    n, rank = group.size(), group.rank()
    if mode == "tensor":
        model.shard(group)
        mx.eval(model.parameters())
        return f"tensor shard {rank + 1} of {n}"
    inner: Any = model.model
    total = len(inner.layers)
    if hasattr(inner, "pipeline"):
        inner.pipeline(group)  # mlx-lm's own split (other stages' layers become None)
        start, end = inner.start_idx, inner.end_idx
    else:
        start, end = _pipeline_stack(inner, group)
    mx.eval(model.parameters())
    return f"layers {start}-{end - 1} of {total}"


def _split(total: int, n: int, rank: int) -> tuple[int, int]:
    """mlx-lm's split: even, the low ranks take the extra layers, rank n-1 runs the first ones."""
    base, extra = divmod(total, n)
    sizes = [base + (1 if r < extra else 0) for r in range(n)]
    start = sum(sizes[rank + 1:])
    return start, start + sizes[rank]


def _pipeline_stack(inner: Any, group: mx.distributed.Group) -> tuple[int, int]:
    n, rank = group.size(), group.rank()
    start, end = _split(len(inner.layers), n, rank)
    layers = list(inner.layers[start:end])
    if rank < n - 1:  # an earlier stage feeds this one
        layers[0] = _ReceiveFirst(layers[0], rank + 1, group)
    layers[-1] = _SendLast(layers[-1], rank - 1 if rank > 0 else None, group)
    inner.layers = layers
    # llama picks the caches its masks come from by layer index: index the local layers
    if hasattr(inner, "fa_idx"):
        sliding = [bool(getattr(layer, "use_sliding", False)) for layer in layers]
        inner.fa_idx = next((i for i, s in enumerate(sliding) if not s), 0)
        inner.swa_idx = next((i for i, s in enumerate(sliding) if s), None)
    return start, end


class _StageLayer(nn.Module):
    """A transformer block with a pipeline hop before or after it; attributes read through."""

    def __init__(self, layer: nn.Module, peer: int | None, group: mx.distributed.Group) -> None:
        super().__init__()
        self.layer = layer
        self._peer = peer
        self._group = group

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "layer" or "layer" not in self:
                raise
            return getattr(self["layer"], name)


class _ReceiveFirst(_StageLayer):
    def __call__(self, x: mx.array, mask: Any = None, cache: Any = None) -> mx.array:
        assert self._peer is not None
        x = mx.distributed.recv_like(x, self._peer, group=self._group)
        return self.layer(x, mask, cache)


class _SendLast(_StageLayer):
    def __call__(self, x: mx.array, mask: Any = None, cache: Any = None) -> mx.array:
        h = self.layer(x, mask, cache)
        if self._peer is not None:
            h = mx.distributed.send(h, self._peer, group=self._group)
            # prefill evaluates only the caches: make this stage's cache depend on the send
            if cache is not None and getattr(cache, "keys", None) is not None:
                cache.keys = mx.depends(cache.keys, h)
        # every rank continues with rank 0's output, the last stage's (norm and head run everywhere)
        return mx.distributed.all_gather(h, group=self._group)[: h.shape[0]]
