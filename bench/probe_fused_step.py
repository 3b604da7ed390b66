"""Where a lone stream's decode step goes on mlx-cuda, and the fused step against it (issue 7).

1. launch cost: a chain of tiny element-wise kernels in one evaluation;
2. one-row 4-bit products per layer shape: mlx's `quantized_matmul` against ollmlx's kernel
   (cuda_kernels.Qmv), each timed over many distinct weights in one evaluation (more bytes than
   the L2 cache), with the largest difference of their outputs;
3. the fused calls (norm folded in, residual, swiglu) against the same composition of mlx ops;
4. whole models: raw mlx-lm `generate_step` against the fused decode step (fused_step.py), tok/s
   in one process, alternating, with the time Python takes to build one step's graph.

    python bench/probe_fused_step.py [--model-dir /tmp/llama-3.2-1b ...] [--skip-kernels]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # (rows N, input K)
    "1b q": (2048, 2048), "1b kv": (512, 2048), "1b gate": (8192, 2048), "1b down": (2048, 8192),
    "1b head": (128256, 2048), "8b q": (4096, 4096), "8b kv": (1024, 4096), "8b gate": (14336, 4096),
    "8b down": (4096, 14336), "8b head": (128256, 4096),
}


def _timed(fn: Any, repeat: int = 3) -> float:
    """Best time to evaluate fn()'s graph, built beforehand (Python's part is not counted)."""
    import mlx.core as mx

    best = float("inf")
    for _ in range(repeat):
        outs = fn()
        mx.synchronize()
        t = time.perf_counter()
        mx.eval(outs)
        mx.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def launch_cost(report: dict[str, Any]) -> None:
    import mlx.core as mx

    x = mx.zeros((4096,), dtype=mx.bfloat16)
    mx.eval(x)
    for n in (100, 1000):
        def chain(n: int = n) -> mx.array:
            y = x
            for _ in range(n):
                y = y + 1
            return y
        chain()
        dt = _timed(chain)
        report.setdefault("launch", {})[f"{n} adds"] = {"ms": round(dt * 1e3, 3), "us_per_kernel": round(dt / n * 1e6, 2)}
    print("launch", report["launch"], flush=True)


class _Lin:
    """Just what cuda_kernels reads from a QuantizedLinear."""

    def __init__(self, w: Any, s: Any, b: Any, group: int) -> None:
        self.p = {"weight": w, "scales": s, "biases": b}
        self.group_size, self.bits, self.mode = group, 4, "affine"

    def __getitem__(self, k: str) -> Any:
        return self.p[k]

    def __contains__(self, k: str) -> bool:
        return k in self.p


def kernels(report: dict[str, Any]) -> None:
    import mlx.core as mx

    from ollmlx.runner.engines.mlx.cuda_kernels import Qmv, QmvSwiglu

    out = report.setdefault("qmv", {})
    for name, (n, k) in SHAPES.items():
        try:
            copies = max(2, min(16, int(200e6 // (n * k // 2))))
            ws = []
            for _ in range(copies):
                w = (mx.random.normal((n, k)) * 0.02).astype(mx.bfloat16)
                ws.append(mx.quantize(w, group_size=64, bits=4))
            mx.eval(ws)
            x = mx.random.normal((1, k)).astype(mx.bfloat16)
            lins = [_Lin(*q, 64) for q in ws]
            ours = [Qmv([lin], mx.bfloat16) for lin in lins]
            reps = 4

            def theirs_fn(x: Any = x, ws: Any = ws, reps: int = reps) -> list[Any]:
                return [mx.quantized_matmul(x, *q, transpose=True, group_size=64, bits=4) for _ in range(reps) for q in ws]

            def ours_fn(x: Any = x, ours: Any = ours, reps: int = reps) -> list[Any]:
                return [o(x) for _ in range(reps) for o in ours]

            ref = mx.quantized_matmul(x, *ws[0], transpose=True, group_size=64, bits=4).reshape(-1).astype(mx.float32)
            got = ours[0](x).astype(mx.float32)
            err = mx.abs(ref - got).max().item() / (mx.abs(ref).max().item() + 1e-9)
            bytes_per = n * k // 2 + 2 * n * (k // 64) * 2
            row = {}
            for label, fn in (("mlx", theirs_fn), ("ours", ours_fn)):
                fn()
                dt = _timed(fn) / (reps * copies)
                row[label] = {"us": round(dt * 1e6, 2), "GB/s": round(bytes_per / dt / 1e9, 1)}
            row["rel_err"] = round(err, 5)
            row["speedup"] = round(row["mlx"]["us"] / row["ours"]["us"], 2)
            out[name] = row
            print(name, row, flush=True)
        except Exception:
            out[name] = {"error": traceback.format_exc()[-2000:]}
            print(name, out[name], flush=True)

    # fused variants against compositions of mlx ops (8B-ish shapes)
    fused = report.setdefault("fused", {})
    try:
        import mlx.nn as nn

        k, n = 4096, 14336
        norm = nn.RMSNorm(k, eps=1e-5)
        norm.weight = (1 + 0.1 * mx.random.normal((k,))).astype(mx.bfloat16)
        qs = [mx.quantize((mx.random.normal((n, k)) * 0.02).astype(mx.bfloat16), group_size=64, bits=4) for _ in range(2)]
        qd = mx.quantize((mx.random.normal((k, n)) * 0.02).astype(mx.bfloat16), group_size=64, bits=4)
        x = mx.random.normal((k,)).astype(mx.bfloat16)
        res = mx.random.normal((k,)).astype(mx.bfloat16)

        def qm(v: Any, q: Any) -> Any:
            return mx.quantized_matmul(v.reshape(1, -1), *q, transpose=True, group_size=64, bits=4).reshape(-1)

        xn = mx.fast.rms_norm(x, norm.weight, 1e-5)
        g, u = qm(xn, qs[0]), qm(xn, qs[1])
        ref_sw = nn.silu(g) * u
        got_sw = QmvSwiglu(_Lin(*qs[0], 64), _Lin(*qs[1], 64), mx.bfloat16, norm=norm)(x)
        ref_nq = mx.concatenate([g, u])
        got_nq = Qmv([_Lin(*qs[0], 64), _Lin(*qs[1], 64)], mx.bfloat16, norm=norm)(x)
        ref_res = res + qm(ref_sw, qd)
        got_res = Qmv([_Lin(*qd, 64)], mx.bfloat16, residual=True)(ref_sw, residual=res)
        for label, a, b in (("norm+two products", ref_nq, got_nq), ("norm+swiglu", ref_sw, got_sw),
                            ("product+residual", ref_res, got_res)):
            a, b = a.astype(mx.float32), b.astype(mx.float32)
            fused[label] = {"max_abs": round(mx.abs(a - b).max().item(), 5), "max_ref": round(mx.abs(a).max().item(), 4)}
        print("fused", fused, flush=True)
    except Exception:
        fused["error"] = traceback.format_exc()[-3000:]
        print("fused", fused, flush=True)


def model_level(report: dict[str, Any], model_dir: str, tokens: int, rounds: int) -> None:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.models.cache import make_prompt_cache

    from bench.mlx_engine_setup import decoder_tps, raw_single_tps
    from ollmlx.runner.engines.mlx import fused_step

    row: dict[str, Any] = {}
    report.setdefault("models", {})[model_dir] = row
    model, _ = load(model_dir)
    prompt = [(13 * j) % 1000 + 10 for j in range(40)]
    row["matches"] = fused_step.matches(model)
    t = time.perf_counter()
    row["usable"] = fused_step.usable(model)
    row["check_s"] = round(time.perf_counter() - t, 2)

    def fused(n: int, compiled: bool = True) -> tuple[float, list[int]]:
        return decoder_tps(model, prompt, n, lambda cache: fused_step.FusedDecoder(model, cache, compiled=compiled))

    def build_ms(fn: Any) -> float:
        # Python time to build one step's graph (no evaluation)
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        return (time.perf_counter() - t0) / 20 * 1e3

    cache = make_prompt_cache(model)
    model(mx.array(prompt)[None], cache=cache)
    mx.eval([c.state for c in cache])
    tok = mx.array([7])
    # the cache grows by one per call; 20 calls are a small, harmless growth for a timing
    row["build_ms_raw"] = round(build_ms(lambda: model(tok[None], cache=cache)), 3)
    if row["matches"]:
        dec = fused_step.FusedDecoder(model, cache)
        dec.forward(tok)
        row["build_ms_fused"] = round(build_ms(lambda: dec.forward(tok)), 3)
        dec = fused_step.FusedDecoder(model, cache, compiled=False)
        row["build_ms_fused_not_compiled"] = round(build_ms(lambda: dec.forward(tok)), 3)
    mx.eval([c.state for c in cache])
    for _ in range(rounds):
        tps, ref = raw_single_tps(model, prompt, tokens)
        row.setdefault("raw generate_step", []).append(round(tps, 1))
        if row["matches"]:
            try:
                tps, _ = fused(tokens, compiled=False)
                row.setdefault("fused step, not compiled", []).append(round(tps, 1))
                tps, toks = fused(tokens)
                row.setdefault("fused step", []).append(round(tps, 1))
                same = next((i for i, (a, b) in enumerate(zip(ref, toks)) if a != b), None)
                row.setdefault("first differing token", []).append(same)
            except Exception:
                row["fused_error"] = traceback.format_exc()[-3000:]
                break
        print(model_dir, row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", action="append", default=[])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    import logging

    import mlx.core as mx

    logging.basicConfig(level=logging.INFO)
    report: dict[str, Any] = {"device": str(mx.default_device())}
    if not args.skip_kernels:
        launch_cost(report)
        kernels(report)
    for d in args.model_dir:
        try:
            model_level(report, d, args.tokens, args.rounds)
        except Exception:
            report.setdefault("models", {})[d] = {"error": traceback.format_exc()[-3000:]}
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
