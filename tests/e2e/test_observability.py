"""Everything visible: /metrics (Prometheus), one INFO line per request saying what became of it,
everything the runner did at OLLAMA_DEBUG=1, and runner stderr captured so a crash explains itself
(ARCHITECTURE.md "Processes"; spec §22 OLLAMA_DEBUG)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx

from helpers import Server, running_server

MODEL = "smollm2:135m"


def scrape(server: Server) -> tuple[str, dict[str, float]]:
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 200
    samples = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return r.headers["content-type"], samples


def generate(server: Server, n: int = 3, **extra: object) -> dict:
    r = httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "Name a colour.", "stream": False,
                                                       "options": {"temperature": 0, "num_predict": n}, **extra},
                   timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_metrics_cover_requests_tokens_queue_models_and_restarts(server: Server) -> None:
    generate(server)  # a runner is up before the baseline
    _, before = scrape(server)
    out = generate(server, 4)
    httpx.get(server.url + "/api/nothing-here")
    ctype, after = scrape(server)
    assert ctype.startswith("text/plain; version=")

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta('ollmlx_http_requests_total{method="POST",route="/api/generate",status="200"}') == 1
    assert delta('ollmlx_http_requests_total{method="GET",route="unmatched",status="404"}') == 1
    assert delta(f'ollmlx_time_to_first_token_seconds_count{{model="{MODEL}"}}') == 1
    assert delta(f'ollmlx_tokens_generated_total{{model="{MODEL}"}}') == out["eval_count"] == 4
    assert delta(f'ollmlx_prompt_tokens_total{{model="{MODEL}"}}') == out["prompt_eval_count"]
    assert delta(f'ollmlx_inter_token_seconds_count{{model="{MODEL}"}}') >= 3
    assert after["ollmlx_queue_depth"] == 0
    assert after["ollmlx_loaded_models"] >= 1
    engine = httpx.get(server.url + "/api/ps").json()["models"][0]["engine"]
    assert after[f'ollmlx_model_memory_bytes{{engine="{engine}",kind="total",model="{MODEL}"}}'] > 50e6
    assert after[f'ollmlx_runner_pid{{model="{MODEL}"}}'] == server.runners()[0]
    assert after[f'ollmlx_model_requests_in_flight{{model="{MODEL}"}}'] == 0
    assert after[f'ollmlx_prefix_cache_hits_total{{model="{MODEL}"}}'] >= 1  # the same prompt twice
    assert "ollmlx_runner_restarts_total" in after
    assert not any(k.endswith("_created") or "_created{" in k for k in after)


def test_probes_cannot_grow_the_metric_series(server: Server) -> None:
    """Unknown paths share one label: a scanner or fuzzer cannot add a series per path."""
    for i in range(30):
        httpx.get(server.url + f"/probe/{i}/../x{i}")
    _, samples = scrape(server)
    routes = {re.search(r'route="([^"]*)"', k).group(1) for k in samples if 'route="' in k}  # type: ignore[union-attr]
    assert not any(r.startswith("/probe") for r in routes)
    assert len(routes) < 40


def test_one_info_line_per_request(server: Server) -> None:
    """Each generation logs model, engine, runner pid, tokens, durations and why it ended; every
    HTTP request logs status, duration, client, method and path (quoted: no forged lines)."""
    out = generate(server, 3)
    r = httpx.post(server.url + "/api/chat", json={"model": MODEL, "stream": False,
                                                   "options": {"num_predict": 2, "temperature": 0},
                                                   "messages": [{"role": "user", "content": "hi"}]}, timeout=120)
    assert r.status_code == 200
    httpx.get(server.url + "/api/x%0Atime=forged level=ERROR")
    pid = server.runners()[0]
    chat_line = rf"msg=chat model={re.escape(MODEL)} engine=\S+ runner_pid={pid} .* eval_tokens=2 .* ended=length"
    # log lines are written after the response went out: give the server a moment
    deadline = time.monotonic() + 10
    log = server.log()
    while not ('GET "/api/x\\ntime=forged' in log and re.search(chat_line, log)) and time.monotonic() < deadline:
        time.sleep(0.05)
        log = server.log()
    gen = re.findall(rf"msg=generate model={re.escape(MODEL)} engine=(\S+) runner_pid={pid} "
                     rf"prompt_tokens=(\d+) eval_tokens=3 load=[\d.]+s ttft=[\d.]+s total=[\d.]+s ended=length", log)
    assert gen, log[-3000:]
    assert int(gen[-1][1]) == out["prompt_eval_count"]
    assert re.search(chat_line, log), log[-3000:]
    assert re.search(r'msg=200 \| [\d.]+s \| 127\.0\.0\.1 \| POST "/api/chat"', log)
    assert 'GET "/api/x\\ntime=forged level=ERROR"' in log
    assert "\ntime=forged" not in log


def test_debug_shows_what_the_runner_did(server: Server, tmp_path: Path) -> None:
    """OLLAMA_DEBUG=1: the runner logs at debug (llama.cpp's own load log included) into the
    server log, and the server logs each request's options and rendered prompt."""
    with running_server(tmp_path, {"OLLAMA_DEBUG": "1"}, models=server.models) as srv:
        generate(srv, 2, keep_alive=0)
        log = srv.log()
    assert re.search(r"runner\[\d+\] DEBUG", log), "no debug line from the runner"
    assert "llama_model_loader" in log or "load_tensors" in log
    assert re.search(r"level=DEBUG source=ollmlx.serve msg=generate request model=smollm2:135m options=.*"
                     r"'num_predict': 2.* prompt=.*Name a colour", log)
    assert not re.search(r"runner\[\d+\] DEBUG", server.log()), "debug lines without OLLAMA_DEBUG"


def test_a_runner_crash_explains_itself(server: Server) -> None:
    """A runner that dies of a native crash (SIGSEGV) mid-stream: its Python stacks (faulthandler)
    reach the server log through the captured stderr, the stream's error line names the crash, and
    the restart is counted."""
    generate(server, 1)
    _, before = scrape(server)
    (pid,) = server.runners()
    lines = []
    body = {"model": MODEL, "prompt": "Tell me a long story.", "options": {"num_predict": 300}}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
                if len(lines) == 2:
                    os.kill(pid, signal.SIGSEGV)
    err = lines[-1].get("error", "")
    assert "runner" in err and "Fatal Python error: Segmentation fault" in err, err
    exited = f"(pid {pid}) exited unexpectedly with code -11"
    deadline = time.monotonic() + 10
    while exited not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log()
    assert exited in log
    assert "Fatal Python error: Segmentation fault" in log
    assert re.search(r'File ".*ollmlx/runner/.*", line \d+', log), "runner stacks not in the server log"
    _, after = scrape(server)
    assert after["ollmlx_runner_restarts_total"] == before["ollmlx_runner_restarts_total"] + 1
    generate(server, 1)  # and the next request gets a new runner
