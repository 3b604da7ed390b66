"""One model across several ranks with MLX's distributed engine, through a live server
(docs/distributed.md): `OLLMLX_HOSTFILE` names 2 ranks on 127.0.0.1 over the ring backend.

- SmolLM2 (9 heads: split by layers) and a tiny random llama (split by mlx-lm's `shard()`,
  tensor parallel) give exactly the greedy output of a server without a hostfile, streamed, also
  for concurrent requests (continuous batching on every rank); /api/ps shows the ranks.
- A rank killed mid-stream ends that stream with an error line (spec §0: errors mid-stream are a
  final `{"error": ...}` line), every process of the group ends, and the next request starts a
  new group (spec §18: the scheduler reloads a crashed runner).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, create_smollm2, minilm_dir, running_server

pytestmark = pytest.mark.slow
SMOL, TINY = "smollm2:135m", "tiny-llama"
SMOL_PROMPTS = ["What is the capital of France?", "Name three colours."]
TINY_PROMPTS = ["w10 w20 w30 w40", "w7 w8 w9", "w100 w3 w200 w50 w60"]


def make_tiny_llama(out: Path) -> None:
    """A 2-layer random llama whose heads divide by 2, as an MLX model directory."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
           "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
           "vocab_size": 256, "max_position_embeddings": 2048, "tie_word_embeddings": False, "eos_token_id": 0}
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    mx.eval(model.parameters())
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (out / "config.json").write_text(json.dumps(cfg))
    vocab = {"<|end|>": 0, **{f"w{i}": i for i in range(1, 256)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|end|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>", "bos_token": None}))


def generate(server: Server, model: str, prompt: str, n: int = 16, stream: bool = True) -> list[dict[str, Any]]:
    body = {"model": model, "prompt": prompt, "raw": model == TINY, "stream": stream,
            "options": {"temperature": 0, "num_predict": n}}
    lines: list[dict[str, Any]] = []
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=600) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
    return lines


def text(lines: list[dict[str, Any]]) -> str:
    assert lines[-1].get("done"), lines[-1]
    return "".join(x.get("response", "") for x in lines)


def cases() -> list[tuple[str, str]]:
    return [(SMOL, p) for p in SMOL_PROMPTS] + [(TINY, p) for p in TINY_PROMPTS]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The store with both models, and what one runner process answers for each case."""
    tmp = tmp_path_factory.mktemp("dist")
    make_tiny_llama(tmp / "tiny")
    with running_server(tmp / "one", {"OLLMLX_ENGINE": "mlx"}) as one:
        create_smollm2(one)
        (tmp / "Modelfile.tiny").write_text(f"FROM {tmp / 'tiny'}\n")
        r = one.cli("create", TINY, "-f", str(tmp / "Modelfile.tiny"))
        assert r.returncode == 0, r.stderr
        expected = {case: text(generate(one, *case)) for case in cases()}
        assert all(expected.values())
        ps = httpx.get(one.url + "/api/ps").json()["models"]
        assert ps and all("ranks" not in m for m in ps)
    return {"tmp": tmp, "models": one.models, "expected": expected}


@pytest.fixture(scope="module")
def group(single: dict[str, Any]) -> Iterator[Server]:
    tmp: Path = single["tmp"]
    hosts = tmp / "hosts.json"
    local = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}
    hosts.write_text(json.dumps({"backend": "ring", "hosts": [local, local]}))
    with running_server(tmp / "two", {"OLLMLX_ENGINE": "mlx", "OLLMLX_HOSTFILE": str(hosts)},
                        models=single["models"]) as server:
        yield server
    assert server.runners() == [], "rank processes outlived the server"


def ranks_of(server: Server, model: str) -> list[dict[str, Any]]:
    loaded = httpx.get(server.url + "/api/ps").json()["models"]
    for m in loaded:
        if m["name"] in (model, model + ":latest"):
            return list(m["ranks"])
    raise AssertionError(f"{model} is not loaded: {[m['name'] for m in loaded]}")


def test_two_ranks_give_the_single_process_output(single: dict[str, Any], group: Server) -> None:
    for case, want in single["expected"].items():
        lines = generate(group, *case)
        assert len(lines) > 2, "the answer should stream in pieces"
        assert text(lines) == want, case
    smol, tiny = ranks_of(group, SMOL), ranks_of(group, TINY)
    assert [(r["rank"], r["mode"], r["role"]) for r in smol] == [
        (0, "pipeline", "layers 15-29 of 30"), (1, "pipeline", "layers 0-14 of 30")]
    assert [(r["rank"], r["mode"], r["role"]) for r in tiny] == [
        (0, "tensor", "tensor shard 1 of 2"), (1, "tensor", "tensor shard 2 of 2")]
    pids = {r["pid"] for r in smol + tiny}
    assert pids == set(group.runners())  # 2 models x 2 ranks, all of them this server's


def test_concurrent_requests_batch_across_ranks(single: dict[str, Any], group: Server) -> None:
    results: dict[tuple[str, str], str] = {}

    def go(case: tuple[str, str]) -> None:
        results[case] = text(generate(group, *case))

    threads = [threading.Thread(target=go, args=(c,)) for c in cases()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert results == single["expected"]


def test_a_killed_rank_fails_the_stream_and_the_next_request_restarts_the_group(
        single: dict[str, Any], group: Server) -> None:
    generate(group, SMOL, "hi", 1)  # loaded
    old = ranks_of(group, SMOL)
    lines: list[dict[str, Any]] = []
    started = threading.Event()

    def read() -> None:
        body = {"model": SMOL, "prompt": "Tell me a very long story about dragons and castles.",
                "options": {"temperature": 0, "num_predict": 400}}
        try:
            with httpx.stream("POST", group.url + "/api/generate", json=body, timeout=120) as r:
                for line in r.iter_lines():
                    if line:
                        lines.append(json.loads(line))
                        if len(lines) >= 3:
                            started.set()
        except httpx.HTTPError as exc:
            lines.append({"transport_error": repr(exc)})
        finally:
            started.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(300)
    os.kill(old[1]["pid"], signal.SIGKILL)
    reader.join(120)
    assert not reader.is_alive()
    assert "transport_error" not in lines[-1] and not lines[-1].get("done"), lines[-1]
    # rank 0's own line when it noticed first, else the server's, which names the rank
    err = lines[-1]["error"]
    assert "lost a rank" in err or "(rank 1 on 127.0.0.1 was killed by signal 9)" in err, err
    assert len(lines) > 3  # it had been streaming
    deadline = time.monotonic() + 30  # every process of the old group ends
    while any(Path(f"/proc/{r['pid']}").exists() for r in old) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{r['pid']}").exists() for r in old)
    case = (SMOL, SMOL_PROMPTS[0])
    assert text(generate(group, *case)) == single["expected"][case]
    new = ranks_of(group, SMOL)
    assert len(new) == 2 and not {r["pid"] for r in new} & {r["pid"] for r in old}


def test_embeddings_with_a_hostfile(single: dict[str, Any], group: Server) -> None:
    # an embedding model is not split: rank 0 serves it while rank 1 idles (spec §5 /api/embed)
    (single["tmp"] / "Modelfile.minilm").write_text(f"FROM {minilm_dir()}\n")
    r = group.cli("create", "all-minilm", "-f", str(single["tmp"] / "Modelfile.minilm"))
    assert r.returncode == 0, r.stderr
    before = set(group.runners())
    body = httpx.post(group.url + "/api/embed", json={"model": "all-minilm", "input": ["a", "b"]}, timeout=300)
    assert body.status_code == 200, body.text
    assert len(body.json()["embeddings"]) == 2 and len(body.json()["embeddings"][0]) == 384
    assert len(set(group.runners()) - before) == 2  # its group: rank 0 and an idle rank 1
    entry = next(m for m in httpx.get(group.url + "/api/ps").json()["models"] if m["name"].startswith("all-minilm"))
    assert "ranks" not in entry
    # a generation model split across ranks does not embed: its forward passes are the group's
    r = httpx.post(group.url + "/api/embed", json={"model": SMOL, "input": "x"}, timeout=300)
    assert r.status_code == 400 and "split across ranks" in r.json()["error"]


def test_serve_checks_the_hostfile_flag(tmp_path: Path) -> None:
    # `ollmlx serve --hostfile FILE` (or OLLMLX_HOSTFILE): a hostfile that cannot work stops the
    # server at once with the reason, not at the first request
    bad = tmp_path / "hosts.json"
    bad.write_text(json.dumps([{"ssh": "elsewhere.invalid", "ips": ["203.0.113.9"]}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "OLLMLX_"))}
    r = subprocess.run([sys.executable, "-m", "ollmlx", "serve", "--hostfile", str(bad)], capture_output=True,
                       text=True, timeout=60, env={**env, "OLLMLX_HOST": "127.0.0.1:9", "HOME": str(tmp_path)})
    assert r.returncode == 1
    assert "rank 0 (elsewhere.invalid) must be this machine" in r.stderr
