"""Served single stream, A/B in one run: two ollmlx servers that differ only in their environment
(say OLLMLX_MLX_FUSED=1 and =0) and raw mlx-lm in a third process, all loaded at once and measured
in alternating rounds, so a host whose speed drifts between runs (the lent GPU machines: up to
1.8x) moves all three alike. Each round reads the client's decode tok/s and the runner's own
(eval_count / eval_duration): a gap between them is the streaming path's, not the engine's. With
--py-spy, each server's runner is recorded for a few seconds of its first measured stream.

    python bench/probe_served_ab.py --model-dir /tmp/m8b --a OLLMLX_MLX_FUSED=1 --b OLLMLX_MLX_FUSED=0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_mlx_serving import PROMPT, REPO, Proc, free_port, wait_http
from clients import ollama_chat


def raw_worker(model_dir: str) -> None:
    """Loads the model once; each line on stdin runs `generate_step` for that many tokens and
    prints its decode tok/s."""
    from bench.mlx_engine_setup import load_model, raw_single_tps

    model, _, _ = load_model(model_dir)
    prompt = [(13 * j) % 1000 + 10 for j in range(40)]
    raw_single_tps(model, prompt, 8)
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps({"tps": raw_single_tps(model, prompt, int(line))[0]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir")
    ap.add_argument("--a", action="append", default=[], metavar="VAR=VALUE", help="server A's environment")
    ap.add_argument("--b", action="append", default=[], metavar="VAR=VALUE", help="server B's environment")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--py-spy", action="store_true")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT", "/tmp"))
    ap.add_argument("--raw-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_worker:
        raw_worker(args.raw_worker)
        return
    if not args.model_dir:
        ap.error("--model-dir is required")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-ab-"))
    pypath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    servers: dict[str, tuple[Proc, str]] = {}
    raw = subprocess.Popen([sys.executable, __file__, "--raw-worker", args.model_dir], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": pypath})
    spies: list[subprocess.Popen[bytes]] = []
    rows: dict[str, list[float]] = {}
    try:
        for name, extra in (("A", args.a), ("B", args.b)):
            port = free_port()
            env = {**os.environ, "OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(tmp / "models"),
                   "PYTHONPATH": pypath, **dict(kv.split("=", 1) for kv in extra)}
            srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, tmp / f"ollmlx-{name}.log")
            url = f"http://127.0.0.1:{port}"
            servers[name] = (srv, url)
            wait_http(url, log=tmp / f"ollmlx-{name}.log")
            if name == "B":  # the two servers share one store
                continue
            (tmp / "Modelfile").write_text(f"FROM {args.model_dir}\n")
            subprocess.run([sys.executable, "-m", "ollmlx", "create", "m", "-f", str(tmp / "Modelfile")], env=env,
                           check=True, capture_output=True)
        assert raw.stdout is not None and raw.stdin is not None
        assert raw.stdout.readline().strip() == "ready"

        async def stream(url: str) -> Any:
            async with httpx.AsyncClient(timeout=None) as c:
                return await ollama_chat(c, url, "m", [{"role": "user", "content": PROMPT}], args.tokens)

        for name, (_srv, url) in servers.items():  # loads the runner, builds kernels, warms caches
            for _ in range(2):
                asyncio.run(stream(url))
            info = httpx.get(url + "/api/ps", timeout=30).json()
            print(name, json.dumps(info)[:600], flush=True)
        for r in range(args.rounds):
            for name, (srv, url) in servers.items():
                if args.py_spy and r == 0:
                    spies += _spy(srv.p.pid, f"{args.out}/pyspy-{name}")
                t0 = time.perf_counter()
                res = asyncio.run(stream(url))
                f = res.final
                rows.setdefault(f"{name} client tok/s", []).append(round(res.decode_tps, 1))
                rows.setdefault(f"{name} runner tok/s", []).append(
                    round((f["eval_count"] - 1) / (f["eval_duration"] / 1e9), 1))
                rows.setdefault(f"{name} wall s", []).append(round(time.perf_counter() - t0, 3))
            raw.stdin.write(f"{args.tokens}\n")
            raw.stdin.flush()
            rows.setdefault("raw generate_step tok/s", []).append(round(json.loads(raw.stdout.readline())["tps"], 1))
            print(json.dumps(rows), flush=True)
    finally:
        for s in spies:
            s.wait(60)
        for srv, _ in servers.values():
            srv.stop()
        raw.kill()
    print(json.dumps({"a": args.a, "b": args.b, "rows": rows}))
    for name in servers:
        log = (tmp / f"ollmlx-{name}.log").read_text(errors="replace")
        print(f"--- {name} log (fused/compiled lines)")
        print("\n".join(ln for ln in log.splitlines() if "check" in ln or "fell back" in ln or "ready" in ln)[-2000:])


def _spy(server_pid: int, prefix: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on the server's runner processes for 3 s, every thread, idle samples included (an
    engine thread waiting on the GPU shows as idle)."""
    import psutil

    spy = str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        spy = "py-spy"
    procs = []
    for p in psutil.Process(server_pid).children(recursive=True):
        procs.append(subprocess.Popen([spy, "record", "-p", str(p.pid), "-r", "1000", "-d", "3", "-f", "raw",
                                       "--threads", "--idle", "--nonblocking", "-o", f"{prefix}-{p.pid}.txt"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


if __name__ == "__main__":
    main()
