"""Runner processes: crash detected and reported, respawned by the next request, gone when
the server stops (ARCHITECTURE.md "Processes"; spec §0 streaming errors, §18)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import httpx
import pytest

from helpers import Server, create_smollm2, running_server, wait_for


def test_runner_killed_mid_stream_reports_error_then_respawns(server: Server) -> None:
    body = {"model": "smollm2:135m", "prompt": "Tell me a very long story about dragons.",
            "options": {"temperature": 0, "num_predict": 400}}
    lines = []
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line:
                continue
            lines.append(json.loads(line))
            if len(lines) == 3:
                (pid,) = server.runners()
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                folder = Path(args[args.index(b"--socket") + 1].decode()).parent  # made by the server
                os.kill(pid, signal.SIGKILL)
    assert "error" in lines[-1], lines[-1]
    assert "runner" in lines[-1]["error"]
    assert not lines[-1].get("done")
    assert wait_for(lambda: server.runners() == [])
    assert wait_for(lambda: not folder.exists()), f"the dead runner's socket folder {folder} is left behind"
    r = httpx.post(server.url + "/api/generate", json={**body, "options": {"num_predict": 3}, "stream": False},
                   timeout=120)
    assert r.status_code == 200 and r.json()["eval_count"] == 3
    (new_pid,) = server.runners()
    assert new_pid != pid


def test_load_failure_is_reported_with_status(server: Server, tmp_path: Path) -> None:
    # a GGUF whose architecture the mlx engine cannot build: the load error reaches the client
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "weird.gguf"
    w = GGUFWriter(str(path), "weirdarch")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {path}\n")
    assert server.cli("create", "weird", "-f", str(mf)).returncode == 0
    r = httpx.post(server.url + "/api/generate", json={"model": "weird", "prompt": "hi", "raw": True}, timeout=120)
    assert r.status_code == 500
    assert "weirdarch" in r.json()["error"]
    assert server.alive()
    assert httpx.request("DELETE", server.url + "/api/delete", json={"model": "weird"}).status_code == 200


def _runner_folders(srv: Server) -> list[Path]:
    from ollmlx.runner import folders

    return [p for p in Path(tempfile.gettempdir()).glob(folders.PREFIX + "*")
            if (p / folders.OWNER).is_file() and (p / folders.OWNER).read_text() == str(srv.proc.pid)]


@pytest.mark.slow
def test_server_sigterm_stops_runners_and_sigkill_orphans_exit(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv:
        create_smollm2(srv)
        httpx.post(srv.url + "/api/generate", json={"model": "smollm2:135m"}, timeout=120)
        (pid,) = srv.runners()
        (folder,) = _runner_folders(srv)
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(30)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or srv.runners() == [])
        # SIGTERM's drain had taken the runner off the loaded list: the lifespan's shutdown waited
        # for its stop, so its socket folder is gone with it
        assert not folder.exists()
    with running_server(tmp_path / "b", models=tmp_path / "models") as srv:
        httpx.post(srv.url + "/api/generate", json={"model": "smollm2:135m"}, timeout=120)
        (pid,) = srv.runners()
        srv.proc.kill()  # SIGKILL: the runner must notice and exit on its own
        srv.proc.wait(30)
        assert wait_for(lambda: srv.runners() == [], timeout=10), "runner outlived a killed server"
