"""Load held (spec §18 scheduler, §0 streaming): many concurrent streaming clients against the tiny
packaged model; the queue limit and clients that give up while queued; memory given back when a
model's keep_alive expires.

CI runs the load for OLLMLX_LOAD_SECONDS (default 60); the issue's 5-minute run is
`OLLMLX_LOAD_SECONDS=300 OLLMLX_LOAD_REPORT=load.json pytest tests/e2e/test_load.py -k streaming`;
its figures are in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, running_server, wait_for

MODEL = "smollm2:135m"
BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}
CLIENTS = 32


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(server: Server, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and (m.group(2) or "") == want:
            return float(m.group(3))
    return 0.0


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.busy = 0
        self.failures: list[str] = []
        self.ttft: list[float] = []
        self.total: list[float] = []
        self.tokens = 0
        self.start = time.monotonic()
        self.done_at: list[float] = []  # seconds since start of each completed request


async def one_stream(client: httpx.AsyncClient, url: str, prompt: str, tally: Tally) -> None:
    body = {"model": MODEL, "prompt": prompt, "options": {"temperature": 0, "num_predict": 8}}
    t0 = time.perf_counter()
    first: float | None = None
    lines: list[dict[str, Any]] = []
    try:
        async with client.stream("POST", url + "/api/generate", json=body) as r:
            if r.status_code == 503:
                data = json.loads(await r.aread())
                if data == BUSY:
                    tally.busy += 1
                else:
                    tally.failures.append(f"503 {data}")
                return
            if r.status_code != 200:
                tally.failures.append(f"{r.status_code} {(await r.aread())[:200]!r}")
                return
            async for line in r.aiter_lines():
                if not line:
                    continue
                lines.append(json.loads(line))  # a truncated or malformed line raises here
                if first is None:
                    first = time.perf_counter() - t0
    except (httpx.HTTPError, ValueError) as exc:
        tally.failures.append(f"{type(exc).__name__}: {exc}")
        return
    last = lines[-1] if lines else {}
    if "error" in last or not last.get("done") or last.get("done_reason") not in ("stop", "length"):
        tally.failures.append(f"bad final line {last}")
        return
    if any(x.get("done") for x in lines[:-1]) or any("response" not in x for x in lines):
        tally.failures.append("malformed stream")
        return
    tally.ok += 1
    tally.tokens += int(last.get("eval_count", 0))
    tally.ttft.append(first or 0.0)
    tally.total.append(time.perf_counter() - t0)
    tally.done_at.append(time.monotonic() - tally.start)


def pct(xs: list[float], p: float) -> float:
    return round(sorted(xs)[min(len(xs) - 1, int(p * len(xs)))], 3) if xs else 0.0


@pytest.mark.slow
def test_streaming_clients_under_load(server: Server, tmp_path: Path) -> None:
    """32 concurrent streaming clients for OLLMLX_LOAD_SECONDS: zero malformed or truncated
    responses, zero errors (a 503 with Ollama's queue-full text is the only refusal allowed),
    server and runner memory flat after warm-up, never more than one runner."""
    seconds = float(os.environ.get("OLLMLX_LOAD_SECONDS", "60"))
    with running_server(tmp_path, models=server.models) as srv:
        tally = Tally()
        samples: list[tuple[float, float, float, int]] = []  # (t, server MB, runner MB, runners)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                runners = srv.runners()
                runner_mb = sum(rss_mb(p) for p in runners if Path(f"/proc/{p}").exists())
                samples.append((time.monotonic() - tally.start, rss_mb(srv.proc.pid), runner_mb, len(runners)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        async def client_loop(i: int, client: httpx.AsyncClient, deadline: float) -> None:
            rng = random.Random(i)
            while time.monotonic() < deadline:
                prompt = f"Client {i} asks: name a {rng.choice(['colour', 'fruit', 'city', 'animal'])}."
                await one_stream(client, srv.url, prompt, tally)

        async def run() -> None:
            limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS)
            async with httpx.AsyncClient(timeout=httpx.Timeout(300), limits=limits) as client:
                deadline = time.monotonic() + seconds
                await asyncio.gather(*(client_loop(i, client, deadline) for i in range(CLIENTS)))

        t_start = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - t_start
        stop.set()
        sampler.join(5)
        assert metric(srv, "ollmlx_queue_depth") == 0
        assert metric(srv, "ollmlx_model_requests_in_flight", model=MODEL) == 0
        # warm-up: the model loaded and the first wave of clients served (every KV slot used)
        assert len(tally.done_at) >= CLIENTS, f"only {len(tally.done_at)} requests completed"
        warmup = max(seconds / 4, sorted(tally.done_at)[CLIENTS - 1])
        after = [s for s in samples if s[0] >= warmup]
        at_warmup = after[0] if after else samples[-1]
        (loaded,) = httpx.get(srv.url + "/api/ps", timeout=30).json()["models"]
        report = {
            "engine": loaded.get("engine"), "host_load_avg_1m": round(os.getloadavg()[0], 1),
            "clients": CLIENTS, "seconds": round(elapsed, 1), "requests_ok": tally.ok, "busy_503": tally.busy,
            "failures": len(tally.failures), "tokens": tally.tokens,
            "requests_per_s": round(tally.ok / elapsed, 2), "tokens_per_s": round(tally.tokens / elapsed, 1),
            "ttft_p50_s": pct(tally.ttft, 0.5), "ttft_p99_s": pct(tally.ttft, 0.99),
            "latency_p50_s": pct(tally.total, 0.5), "latency_p99_s": pct(tally.total, 0.99),
            "server_rss_mb_at_warmup": round(at_warmup[1], 1), "server_rss_mb_max": round(max(s[1] for s in after or samples), 1),
            "runner_rss_mb_at_warmup": round(at_warmup[2], 1), "runner_rss_mb_max": round(max(s[2] for s in after or samples), 1),
            "max_runners": max(s[3] for s in samples), "warmup_s": round(warmup, 1),
            "ttft_mean_s": round(statistics.fmean(tally.ttft), 3) if tally.ttft else 0.0,
        }
        print("load report:", json.dumps(report))
        if os.environ.get("OLLMLX_LOAD_REPORT"):
            Path(os.environ["OLLMLX_LOAD_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
        assert tally.failures == [], tally.failures[:5]
        assert tally.ok > 0
        assert report["max_runners"] == 1
        assert report["server_rss_mb_max"] - report["server_rss_mb_at_warmup"] < 64, report
        assert report["runner_rss_mb_max"] - report["runner_rss_mb_at_warmup"] < 128, report
        assert "Traceback" not in srv.log()


@pytest.mark.slow
def test_queue_limit_and_clients_that_leave_the_queue(server: Server, tmp_path: Path) -> None:
    """§18: OLLAMA_MAX_QUEUE bounds the requests waiting for a model load; one more gets 503 with
    Ollama's exact text at once. A queued client that disconnects is dropped (499 in the log and
    /metrics) and its place is free for the next one; the others are served in the end."""
    env = {"OLLAMA_MAX_QUEUE": "2", "OLLAMA_MAX_LOADED_MODELS": "1", "OLLAMA_NUM_PARALLEL": "1"}
    with running_server(tmp_path, env, models=server.models) as srv:
        r = httpx.post(srv.url + "/api/create", json={"model": "queued-b", "from": MODEL, "system": "You are B.",
                                                      "stream": False}, timeout=120)
        assert r.status_code == 200, r.text
        try:
            asyncio.run(_queue_scenario(srv))
        finally:
            httpx.request("DELETE", srv.url + "/api/delete", json={"model": "queued-b"}, timeout=60)
        assert metric(srv, "ollmlx_http_requests_total", method="POST", route="/api/generate", status="499") == 1
        assert metric(srv, "ollmlx_http_requests_total", method="POST", route="/api/generate", status="503") == 1
        assert "request canceled: POST /api/generate" in srv.log()
        assert re.search(r"\w+ model=queued-b\S* engine=- runner_pid=- .* ended=canceled", srv.log())


async def _queue_scenario(srv: Server) -> None:
    depth = lambda: metric(srv, "ollmlx_queue_depth")  # noqa: E731
    b = {"model": "queued-b", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    async with httpx.AsyncClient(timeout=300) as client:
        # A occupies the only loaded-model place with a long generation
        a_lines: list[dict[str, Any]] = []
        a_started = asyncio.Event()

        async def hold_a() -> None:
            body = {"model": MODEL, "prompt": "Tell a long story.", "options": {"num_predict": 5000}}
            async with client.stream("POST", srv.url + "/api/generate", json=body) as r:
                async for line in r.aiter_lines():
                    a_lines.append(json.loads(line))
                    a_started.set()

        a = asyncio.create_task(hold_a())
        await asyncio.wait_for(a_started.wait(), 120)
        # B must wait for A: the first holds the load, the second waits behind it
        b1 = asyncio.create_task(client.post(srv.url + "/api/generate", json=b))
        assert await asyncio.to_thread(wait_for, lambda: depth() == 1)
        b2 = asyncio.create_task(client.post(srv.url + "/api/generate", json=b))
        assert await asyncio.to_thread(wait_for, lambda: depth() == 2)
        t0 = time.monotonic()
        r = await client.post(srv.url + "/api/generate", json=b)
        assert (r.status_code, r.json()) == (503, BUSY)
        assert time.monotonic() - t0 < 5
        b2.cancel()  # the client gives up: its connection closes
        assert await asyncio.to_thread(wait_for, lambda: depth() == 1), "a gone client kept its queue place"
        b4 = asyncio.create_task(client.post(srv.url + "/api/generate", json=b))
        assert await asyncio.to_thread(wait_for, lambda: depth() == 2)
        a.cancel()  # A's client leaves too: its runner slot frees, B loads
        for task in (b1, b4):
            r = await asyncio.wait_for(task, 300)
            assert r.status_code == 200 and r.json()["done"], r.text
        assert depth() == 0


@pytest.mark.slow
def test_keep_alive_expiry_returns_memory(server: Server, tmp_path: Path) -> None:
    """§18: when keep_alive expires the runner process is gone (reaped, no zombie) and the server's
    RSS is back within 50 MB of its idle figure (idle: started and listed its models once)."""
    with running_server(tmp_path, {"OLLAMA_KEEP_ALIVE": "3s"}, models=server.models) as srv:
        fresh = rss_mb(srv.proc.pid)
        assert httpx.get(srv.url + "/api/tags", timeout=60).status_code == 200
        idle = rss_mb(srv.proc.pid)
        for i in range(6):
            r = httpx.post(srv.url + "/api/generate", json={"model": MODEL, "prompt": f"Say {i}.", "stream": False,
                                                            "options": {"num_predict": 4}}, timeout=120)
            assert r.status_code == 200
        (runner,) = srv.runners()
        loaded = rss_mb(srv.proc.pid)
        assert wait_for(lambda: not Path(f"/proc/{runner}").exists(), timeout=30), "runner outlived keep_alive"
        assert httpx.get(srv.url + "/api/ps").json()["models"] == []
        after = rss_mb(srv.proc.pid)
        print(f"server RSS MB: fresh {fresh:.0f}, idle {idle:.0f}, loaded {loaded:.0f}, after expiry {after:.0f}")
        assert after - idle < 50
        assert "keep_alive expired, unloading smollm2:135m" in srv.log()
