"""Where a warm turn 2's time to first token goes outside the engine.

A warm turn 2 on a ~1,900-token conversation reads ~20 new tokens; on a GPU that forward takes
5-30 ms, and the rest of the first token's wait is the server's: HTTP, the chat template over the
whole conversation, the num_ctx check, IPC to the runner, the runner's tokenization and prefix
lookup. This probe serves a tiny random model (the engine's share is then ~nothing) and prints,
per warm turn 2, the client's time to first token and the runner's prompt-eval time; with
`--py-spy` it also records the server and runner under py-spy (flame graphs in --out).

    python bench/make_random_model.py --shape tiny --bits 0 --out /tmp/tiny-rand
    python bench/probe_server_path.py --model-dir /tmp/tiny-rand [--py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_mlx_serving import REPO, Proc, free_port, long_history, wait_http
from clients import ollama_chat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--py-spy", action="store_true")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT", "/tmp"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-probe-"))
    port = free_port()
    env = {**os.environ, "OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(tmp / "models"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, tmp / "ollmlx.log")
    url = f"http://127.0.0.1:{port}"
    spies: list[subprocess.Popen[bytes]] = []
    try:
        wait_http(url, log=tmp / "ollmlx.log")
        (tmp / "Modelfile").write_text(f"FROM {args.model_dir}\n")
        subprocess.run([sys.executable, "-m", "ollmlx", "create", "tiny", "-f", str(tmp / "Modelfile")], env=env,
                       check=True, capture_output=True)

        async def conversation(c: httpx.AsyncClient, i: int) -> dict[str, float]:
            hist = long_history(conversation=i)
            await ollama_chat(c, url, "tiny", hist[:1], 4)
            warm = await ollama_chat(c, url, "tiny", [*hist, {"role": "user", "content": "How many in box 3?"}], 4)
            return {"ttft_ms": warm.ttft_s * 1e3, "prompt_eval_ms": warm.final["prompt_eval_duration"] / 1e6,
                    "prompt_eval_count": warm.final["prompt_eval_count"]}

        async def go() -> list[dict[str, float]]:
            async with httpx.AsyncClient(timeout=None) as c:
                await conversation(c, 999)  # loads the runner
                if args.py_spy:
                    for pid in _pids(srv.p.pid):
                        spies.append(subprocess.Popen(
                            [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-r", "500", "-f", "raw",
                             "-o", f"{args.out}/pyspy-{pid}.txt"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL))
                    await asyncio.sleep(1)
                return [await conversation(c, i) for i in range(args.turns)]

        rows = asyncio.run(go())
    finally:
        for s in spies:
            s.send_signal(2)
            s.wait(30)
        srv.stop()
    for r in rows:
        print(json.dumps({k: round(v, 2) for k, v in r.items()}))
    outside = [r["ttft_ms"] - r["prompt_eval_ms"] for r in rows]
    print(json.dumps({"median_ttft_ms": round(statistics.median(r["ttft_ms"] for r in rows), 2),
                      "median_outside_prompt_eval_ms": round(statistics.median(outside), 2)}))


def _pids(root: int) -> list[int]:
    import psutil

    return [root, *[p.pid for p in psutil.Process(root).children(recursive=True)]]


if __name__ == "__main__":
    main()
