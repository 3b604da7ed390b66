"""The MLX runner as the ranks of an mx.distributed group (docs/distributed.md): 2 ranks on
127.0.0.1 over the ring backend, started from the command lines ollmlx/runner/launch.py builds,
against one runner process of the same model. Runner protocol: ARCHITECTURE.md "Runner protocol";
generation semantics as spec §4 (generate: greedy, seed, logprobs, streaming, cancel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import smollm2_gguf
from ollmlx.runner import launch
from ollmlx.runner.env import runner_env
from ollmlx.runner.protocol import ModelSpec

pytestmark = pytest.mark.slow
PROMPTS = ["<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
           "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"]
HOSTS = {"backend": "ring", "hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * 2}


@dataclass
class Runner:
    procs: list[subprocess.Popen[bytes]]
    socket: str
    logs: list[Path]

    def client(self, timeout: float = 300) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket), base_url="http://runner", timeout=timeout)

    def health(self) -> dict[str, Any]:
        with self.client(5) as c:
            return dict(c.get("/health").json())

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_runner(tmp: Path, hostfile: dict[str, Any] | None, env_extra: dict[str, str] | None = None,
                 wait: bool = True) -> Runner:
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / "spec.json"
    spec.write_text(ModelSpec(format="gguf", gguf_path=str(smollm2_gguf()), name="smollm2").model_dump_json())
    sock = tempfile.mktemp(prefix="ollmlx-test-", suffix=".sock")
    argv = [sys.executable, "-m", "ollmlx.runner", "--engine", "mlx", "--spec", str(spec), "--socket", sock,
            "--num-ctx", "2048", "--parallel", "4"]
    env = {**runner_env("mlx"), **(env_extra or {})}
    if hostfile is None:
        commands = [launch.RankCommand(0, "127.0.0.1", [*argv, "--parent-pid", str(os.getpid())], env)]
    else:
        path = tmp / "hosts.json"
        path.write_text(json.dumps(hostfile))
        commands = launch.rank_commands(launch.read_hostfile(path), argv, env, tmp, parent_pid=os.getpid(),
                                        base_port=32323)
    for c in commands:
        for name, content in c.files.items():
            Path(name).write_text(content)
    procs, logs = [], []
    for c in commands:
        log = tmp / f"rank{c.rank}.log"
        logs.append(log)
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(c.argv, env=c.env, stdout=out, stderr=subprocess.STDOUT))
    runner = Runner(procs, sock, logs)
    deadline = time.monotonic() + 240
    while wait:
        assert time.monotonic() < deadline, f"runner did not load:\n{runner.log()}"
        assert procs[0].poll() is None, f"rank 0 exited:\n{runner.log()}"
        try:
            if runner.health()["status"] != "loading":
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return runner


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    # one process stepping BatchGenerator, as every rank of a group does (a lone request would
    # otherwise take the solo path, whose kernels round the last digits of a logprob differently)
    r = start_runner(tmp_path_factory.mktemp("solo"), None, {"OLLMLX_MLX_SOLO": "0"})
    yield r
    r.stop()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    r = start_runner(tmp_path_factory.mktemp("group"), HOSTS)
    yield r
    r.stop()
    assert all(p.returncode is not None for p in r.procs)


def complete(runner: Runner, prompt: str, n: int = 16, **options: Any) -> tuple[str, list[dict[str, Any]]]:
    body = {"prompt": prompt, "options": {"temperature": 0, "num_predict": n, **options},
            "logprobs": True, "top_logprobs": 2}
    chunks = []
    with runner.client() as c, c.stream("POST", "/completion", json=body) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                chunks.append(json.loads(line))
    assert chunks[-1].get("done"), chunks[-1]
    return "".join(c.get("content", "") for c in chunks), chunks


def test_two_ranks_give_the_single_process_output(solo: Runner, group: Runner) -> None:
    # SmolLM2 has 9 attention heads: not divisible by 2, so the group splits it by layers, and
    # each layer runs exactly as in one process: same tokens, same log-probabilities
    for prompt in PROMPTS:
        text1, chunks1 = complete(solo, prompt)
        text2, chunks2 = complete(group, prompt)
        assert text2 == text1 and text1
        assert [c.get("logprobs") for c in chunks2] == [c.get("logprobs") for c in chunks1]
        assert chunks2[-1]["eval_count"] == chunks1[-1]["eval_count"]
    with group.client() as c:
        info = c.get("/info").json()
    ranks = info["details"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["role"] for r in ranks] == ["layers 15-29 of 30", "layers 0-14 of 30"]
    assert info["details"]["distributed"] == {"backend": "ring", "size": 2, "mode": "pipeline"}
    assert ranks[1]["pid"] == group.procs[1].pid


def test_concurrent_requests_share_the_batch_on_every_rank(solo: Runner, group: Runner) -> None:
    prompts = [*PROMPTS, PROMPTS[0].replace("France", "Italy")]
    expected = [complete(solo, p, 12)[0] for p in prompts]
    results: list[str] = [""] * len(prompts)

    def go(i: int) -> None:
        results[i] = complete(group, prompts[i], 12)[0]

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results == expected


def test_seeded_sampling_matches_one_process(solo: Runner, group: Runner) -> None:
    opts = {"temperature": 0.9, "seed": 1234, "top_k": 40, "top_p": 0.95}
    assert complete(group, PROMPTS[1], 16, **opts)[0] == complete(solo, PROMPTS[1], 16, **opts)[0]


def test_a_client_leaving_mid_stream_keeps_the_ranks_in_step(group: Runner) -> None:
    before = complete(group, PROMPTS[0], 8)[0]
    body = {"prompt": "Tell me a very long story about dragons.", "options": {"temperature": 0, "num_predict": 500}}
    with group.client() as c, c.stream("POST", "/completion", json=body) as r:
        seen = 0
        for line in r.iter_lines():
            seen += bool(line)
            if seen >= 3:
                break  # the client goes away; rank 0 cancels, the followers cancel with it
    assert complete(group, PROMPTS[0], 8)[0] == before
    assert all(p.poll() is None for p in group.procs)


def test_a_rank_that_cannot_load_fails_the_group_with_its_error(tmp_path: Path) -> None:
    # forcing tensor parallel on 9 heads fails on every rank; the load reports it instead of hanging
    r = start_runner(tmp_path, HOSTS, {"OLLMLX_DISTRIBUTED_MODE": "tensor"})
    try:
        h = r.health()
        assert h["status"] == "error"
        assert "could not load the model" in h["error"] and "cannot be split over 2 ranks" in h["error"]
        r.procs[1].wait(60)  # the follower ends
    finally:
        r.stop()


def test_a_stopped_runner_removes_its_socket(tmp_path: Path) -> None:
    # uvicorn leaves a Unix socket file behind (and ends the process with the SIGTERM it caught):
    # the runner's lifespan removes it on the way out
    runner = start_runner(tmp_path, None)
    assert Path(runner.socket).exists()
    runner.stop()
    assert runner.procs[0].returncode is not None and not Path(runner.socket).exists()


def test_sharding_choices() -> None:
    import mlx.core as mx
    from mlx_lm.models import llama

    from ollmlx.runner.engines.mlx.loader import load_gguf
    from ollmlx.runner.engines.mlx.sharding import ShardingError, _split, choose_mode

    smol = load_gguf(smollm2_gguf()).model
    assert choose_mode(smol, 2) == "pipeline"  # 9 heads, 3 kv heads
    assert choose_mode(smol, 3) == "tensor"
    with pytest.raises(ShardingError, match="cannot be split over 2 ranks in tensor mode"):
        choose_mode(smol, 2, "tensor")
    tiny = llama.Model(llama.ModelArgs(model_type="llama", hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                                       num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                                       vocab_size=256))
    mx.eval(tiny.parameters())
    assert choose_mode(tiny, 2) == "tensor" and choose_mode(tiny, 2, "pipeline") == "pipeline"
    with pytest.raises(ShardingError):
        choose_mode(tiny, 3, "pipeline")  # 2 layers for 3 stages
    # mlx-lm's split: the last rank runs the first layers, the low ranks take the extra ones
    assert [_split(30, 4, r) for r in range(4)] == [(22, 30), (14, 22), (7, 14), (0, 7)]
