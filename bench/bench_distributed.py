"""One model on N ranks (MLX distributed, docs/distributed.md) vs one process, through `ollmlx serve`.

    # the lent 2-GPU machine (NCCL), random-weight Llama-3.1-8B shape, 4-bit:
    python bench/bench_distributed.py --backend nccl --shape llama-3.1-8b --bits 4
    # a CPU host (ring over TCP on 127.0.0.1), a small shape:
    .venv/bin/python bench/bench_distributed.py --backend ring --shape smollm2-135m --bits 4 --tokens 32

For each of 1 rank (no hostfile) and N ranks (a hostfile of N ranks on 127.0.0.1): start a
server, create the model from a random-weight directory (bench/make_random_model.py, or
--model-dir), then measure single-stream decode tok/s and time to first token (best of 3, after a
warm-up), and aggregate output tok/s of --concurrency simultaneous streaming clients. Greedy
decoding; /api/ps's `ranks` says how the model was split. Writes JSON (BENCH_OUT or
bench/results/) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mlx_serving import PROMPTS, Proc, free_port, machine, single, wait_http
from clients import concurrent, ollama_chat

REPO = Path(__file__).resolve().parents[1]


def hostfile(path: Path, backend: str, ranks: int) -> Path:
    local = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}
    path.write_text(json.dumps({"backend": backend, "hosts": [local] * ranks}))
    return path


def measure(model_dir: Path, models: Path, tmp: Path, ranks: int, args: argparse.Namespace,
            levels: list[int]) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(models),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
           "OLLAMA_NUM_PARALLEL": str(max(levels)), "OLLMLX_DISTRIBUTED_MODE": args.mode,
           "OLLAMA_LOAD_TIMEOUT": "20m"}
    if args.backend == "nccl":
        env["OLLMLX_MLX_DEVICE"] = "gpu"
    if ranks > 1:
        env["OLLMLX_HOSTFILE"] = str(hostfile(tmp / f"hosts-{ranks}.json", args.backend, ranks))
    log = tmp / f"serve-{ranks}.log"
    srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, log)
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"ranks": ranks}
    try:
        wait_http(url, log=log)
        if not (models / "manifests").exists() or not any((models / "manifests").rglob("bench")):
            (tmp / "Modelfile").write_text(f"FROM {model_dir}\n")
            made = subprocess.run([sys.executable, "-m", "ollmlx", "create", "bench", "-f", str(tmp / "Modelfile")],
                                  env=env, capture_output=True, text=True)
            if made.returncode != 0:
                raise RuntimeError(f"create failed: {made.stderr[-2000:]}")
        print(f"{ranks} rank(s): single stream ...", flush=True)
        out["single"] = single(ollama_chat, url, "bench", args.tokens)
        ps = httpx.get(url + "/api/ps", timeout=30).json()["models"]
        out["split"] = [{k: r.get(k) for k in ("rank", "role", "device")} for r in ps[0].get("ranks", [])]
        out["concurrency"] = []
        for n in levels:
            print(f"{ranks} rank(s): x{n} ...", flush=True)
            prompts = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(n)]
            asyncio.run(concurrent(ollama_chat, url, "bench", prompts[:2], 4))  # warm this batch path
            out["concurrency"].append(asyncio.run(concurrent(ollama_chat, url, "bench", prompts, args.conc_tokens)))
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        print(f"{ranks} rank(s) failed: {exc}\n" + log.read_text(errors="replace")[-3000:], flush=True)
    finally:
        srv.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["ring", "nccl"], default="ring")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--shape", default="smollm2-135m", help="a shape of bench/make_random_model.py")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--model-dir", help="an MLX model directory instead of a random-weight one")
    ap.add_argument("--mode", default="auto", choices=["auto", "tensor", "pipeline"])
    ap.add_argument("--tokens", type=int, default=128, help="single-stream tokens")
    ap.add_argument("--conc-tokens", type=int, default=64, help="tokens per stream under concurrency")
    ap.add_argument("--concurrency", default="32")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-bench-dist-"))
    if args.model_dir:
        model_dir, label = Path(args.model_dir), Path(args.model_dir).name
    else:
        model_dir, label = tmp / args.shape, f"random-weight {args.shape}, {args.bits}-bit" if args.bits else args.shape
        subprocess.run([sys.executable, str(REPO / "bench/make_random_model.py"), "--shape", args.shape,
                        "--bits", str(args.bits), "--out", str(model_dir)], check=True)
    results: dict[str, Any] = {
        "machine": machine(), "date": datetime.date.today().isoformat(), "model": label, "backend": args.backend,
        "mode": args.mode, "tokens": args.tokens, "conc_tokens": args.conc_tokens,
        "command": "python bench/bench_distributed.py " + " ".join(sys.argv[1:]),
        "runs": [measure(model_dir, tmp / "models", tmp, n, args, levels) for n in (1, args.ranks)],
    }
    report = markdown(results)
    print(report)
    out = Path(os.environ.get("BENCH_OUT") or REPO / "bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"distributed-{args.backend}-{results['date']}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


def markdown(r: dict[str, Any]) -> str:
    lines = [f"## MLX distributed — {r['date']} — {r['machine']}", "",
             f"Model: {r['model']}; backend {r['backend']}, mode {r['mode']}; greedy; single stream {r['tokens']} "
             f"tokens, {r['conc_tokens']} per stream under concurrency; command: `{r['command']}`", "",
             "| ranks | split | single-stream decode tok/s | TTFT s | " + " | ".join(
                 f"x{c['clients']} aggregate tok/s" for c in r["runs"][0].get("concurrency", [])) + " |",
             "|---|---|---|---|" + "---|" * len(r["runs"][0].get("concurrency", []))]
    base = r["runs"][0]
    for run in r["runs"]:
        if "error" in run and "single" not in run:
            lines.append(f"| {run['ranks']} | failed: {run['error'][:120]} | | |")
            continue
        split = ", ".join(f"{s['rank']}: {s['role']}" for s in run.get("split", [])) or "one process"
        s = run["single"]
        rel = f" ({s['decode_tps'] / base['single']['decode_tps']:.2f}x)" if run is not base else ""
        cells = []
        for c, b in zip(run.get("concurrency", []), base.get("concurrency", [])):
            cells.append(f"{c['aggregate_tps']:.1f}" + (f" ({c['aggregate_tps'] / b['aggregate_tps']:.2f}x)"
                                                         if run is not base else ""))
        lines.append(f"| {run['ranks']} | {split} | {s['decode_tps']:.1f}{rel} | {s['ttft_s']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
