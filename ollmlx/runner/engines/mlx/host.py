"""Make MLX as fast as it can be on this host, and say what was chosen.

On Linux CPUs the mlx wheel's bundled reference BLAS is ~50x slower than OpenBLAS; the server
preloads OpenBLAS into the runner's environment when present (see runner/env.py), and here we
pick the weight layout: 4/8-bit codes read by ollmlx's CPU kernels (cpu_kernels/) where they build
and agree with mlx, else dense float32 through BLAS, which beats MLX's scalar quantized CPU kernels.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ollmlx.runner.engines.mlx import batch_step, cuda_rows, fused_step, prefill_buckets
from ollmlx.runner.engines.mlx.build import dequantize_for_cpu
from ollmlx.runner.engines.mlx.flat_rows import (
    flatten_quantized_rows,
    keep_dense_copies,
    set_dequant_rows,
    set_rows_kernel,
)
from ollmlx.runner.engines.mlx.solo import compile_enabled

log = logging.getLogger("ollmlx.runner")


def device_name() -> str:
    return "gpu" if mx.default_device() == mx.gpu else "cpu"


def settle_constants(model: nn.Module) -> int:
    """Compute, and wait for, the arrays a model keeps outside its parameters (mlx-lm's RoPE
    modules keep `_freqs`, which loading leaves lazy). Computed inside the first request instead,
    on that request's stream, they can leave mlx-cuda an event from another stream to wait on at
    every later step. Returns how many there were."""
    arrays = [v for _, m in model.named_modules() for k, v in m.items()
              if k.startswith("_") and isinstance(v, mx.array)]
    mx.eval(arrays)
    return len(arrays)


def tune_for_host(model: nn.Module, generates: bool = True) -> dict[str, Any]:
    details: dict[str, Any] = {"device": device_name()}
    settle_constants(model)
    blas = os.environ.get("OLLMLX_BLAS", "")
    details["blas"] = blas or "bundled"
    if device_name() == "cpu":
        layout = os.environ.get("OLLMLX_CPU_WEIGHTS", "auto")
        if layout in ("auto", "kernels"):
            layout = "kernels" if _cpu_kernels_layout(model, details) else "float32" if blas else "quantized"
        if layout == "float32":
            n = dequantize_for_cpu(model, mx.float32)
            details["weights"] = f"float32 (dequantized {n} layers for BLAS)" if n else "float32"
        elif layout != "kernels":  # with the kernels, layers.apply said what it did in details
            details["weights"] = "as stored"
    else:
        details["weights"] = "as stored"
    # batched decoding: one quantized product per layer instead of one per sequence (flat_rows.py);
    # a large gain on CUDA, neutral on a CPU, a no-op once the weights are dense
    if os.environ.get("OLLMLX_MLX_FLAT_ROWS", "1") != "0":
        n = flatten_quantized_rows(model)
        if n:
            details["batched_matmul"] = f"one product per layer ({n} quantized layers)"
        window = set_dequant_rows(os.environ.get("OLLMLX_MLX_DEQUANT_ROWS", "128-" if _cuda() else ""))
        if n and window:
            upper = "" if window[1] >= 1 << 62 else str(window[1])
            details["dequantized_products"] = f"{window[0]}-{upper} rows"
        if n and _cuda() and os.environ.get("OLLMLX_MLX_ROWS_KERNEL", "1") != "0":
            ok = cuda_rows.agrees(model)
            set_rows_kernel(ok)
            details["few_row_products"] = ("ollmlx's 4-bit tensor-core kernel (2-32 rows)" if ok
                                           else "mlx qmm (ollmlx's kernel does not take this model, or failed its check)")
        if n and os.environ.get("OLLMLX_MLX_DENSE_COPY", "0") == "1":
            details["dense_copies"] = f"{keep_dense_copies(model) / 1e9:.2f} GB (products of 2+ rows)"
    if generates:
        details["compiled_steps"] = "on (a lone stream's decode steps)" if compile_enabled() else "off"
        if fused_step.enabled():
            # the once-per-model check (and the kernels' first build) at load, not in the first request
            details["fused_steps"] = ("on (a lone stream's decode steps)" if fused_step.usable(model)
                                      else "off (not a 4-bit Llama-family model)" if not fused_step.matches(model)
                                      else "off (its check against the model's forward failed: see the log)")
        if prefill_buckets.wanted():
            details["prefill_shapes"] = ("a prompt's last chunk padded to a few shapes (CUDA graphs repeat)"
                                         if prefill_buckets.usable(model)
                                         else "as they come (the bucketed forward failed its check: see the log)")
        if batch_step.enabled():
            details["batch_steps"] = ("on (the batch's decode steps, one compiled call)" if batch_step.usable(model)
                                      else "off (not a Llama-family model with 16-bit activations)"
                                      if not batch_step.matches(model)
                                      else "off (its check against the model's forward failed: see the log)")
    return details


def _cpu_kernels_layout(model: nn.Module, details: dict[str, Any]) -> bool:
    """Lay the model out for ollmlx's CPU kernels; False (with the reason in details) if not."""
    from ollmlx.runner.engines.mlx import cpu_kernels
    from ollmlx.runner.engines.mlx.cpu_kernels import layers

    kernels, why = cpu_kernels.load()
    if kernels is None:
        details["cpu_kernels"] = why
        return False
    if layers.product_layer(model) is None:
        details["cpu_kernels"] = "off (no 4- or 8-bit affine layers)"
        return False
    try:
        differs = layers.agrees(model, kernels)
    except (TypeError, ValueError, RuntimeError) as e:  # e.g. an mlx whose array type the module no longer shares
        differs = f"its check failed: {e}"
    if differs:
        log.warning("ollmlx CPU kernels disagree with mlx on this model: %s", differs)
        details["cpu_kernels"] = f"off ({differs})"
        return False
    details.update(layers.apply(model, kernels))
    return True


def _cuda() -> bool:
    """A GPU that is not Metal: mlx-cuda, whose few-row qmm reads prompts slowly
    (bench/probe_dequant.py: an 8B model's 512-token chunk in 79 ms quantized, 42 ms dense)."""
    return device_name() == "gpu" and not mx.metal.is_available()


def memory_bytes() -> int:
    try:
        return int(mx.get_active_memory())
    except AttributeError:  # older mlx
        return int(mx.metal.get_active_memory())


def _available_bytes() -> int:
    if device_name() == "gpu":
        info = mx.device_info()
        total = int(info.get("max_recommended_working_set_size") or info.get("memory_size") or 0)
        return max(0, total - memory_bytes())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def default_parallel(config: dict[str, Any], num_ctx: int) -> int:
    """How many sequences to batch when OLLAMA_NUM_PARALLEL is unset: as many full-context KV
    caches as half the free memory holds, capped (a CPU gains little past a few streams; a GPU
    batches many for nearly free)."""
    cap = 4 if device_name() == "cpu" else int(os.environ.get("OLLMLX_GPU_PARALLEL", "32"))
    text = config.get("text_config") or config
    layers = int(text.get("num_hidden_layers") or 0)
    heads = int(text.get("num_attention_heads") or 1)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or (int(text.get("hidden_size") or 0) // max(1, heads)))
    elem = 4 if device_name() == "cpu" else 2
    per_seq = 2 * layers * kv_heads * head_dim * elem * max(1, num_ctx)
    if per_seq <= 0:
        return cap
    return max(1, min(cap, int(_available_bytes() * 0.5 // per_seq)))
