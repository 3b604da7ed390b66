"""Whether a replacement for a model's one-token forward (compiled_step.py, fused_step.py) gives
the model's own logits, checked once per loaded model. A decoder that disagrees, or fails to
build here, leaves the model on mlx-lm's plain forward."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import mlx.core as mx

log = logging.getLogger(__name__)


def once(model: Any, attr: str, check: Callable[[], bool]) -> bool:
    """check()'s verdict, computed the first time and kept on the model object as `attr`."""
    verdict = getattr(model, attr, None)
    if verdict is None:
        verdict = bool(check())
        object.__setattr__(model, attr, verdict)
    return bool(verdict)


def close(got: mx.array, want: mx.array, name: str, within: float = 0.05) -> bool:
    """Logits within 5% (`within`) of the largest logit of the model's own (logged, per check step)."""
    got, want = got.astype(mx.float32), want.astype(mx.float32)
    scale = float(mx.abs(want).max().item()) + 1e-6  # type: ignore[arg-type]
    err = float(mx.abs(got - want).max().item())  # type: ignore[arg-type]
    log.info("%s check: max |diff| %.4g of max |logit| %.4g", name, err, scale)
    return err < within * scale


def agrees(model: Any, make_decoder: Callable[[list[Any]], Any], name: str, steps: int = 3) -> bool:
    """Step `make_decoder(cache)` (None: not applicable) and the model's own forward side by side
    after a 4-token prompt: every step's logits within 5% of the largest logit."""
    from mlx_lm.models.cache import make_prompt_cache

    try:
        ours, theirs = make_prompt_cache(model), make_prompt_cache(model)
        prompt = mx.array([[1, 2, 3, 4]])
        model(prompt, cache=ours)
        model(prompt, cache=theirs)
        decoder = make_decoder(ours)
        if decoder is None:
            return False
        for token in range(5, 5 + steps):
            want = model(mx.array([[token]]), cache=theirs)[:, -1, :]
            if not close(decoder.forward(mx.array([token])), want, name):
                return False
        return True
    except Exception:  # a primitive the backend lacks, a kernel that does not build
        log.exception("%s unavailable for this model", name)
        return False
