"""Rank command lines and environments for a runner split across hosts (ollmlx/runner/launch.py,
docs/distributed.md): mlx.launch's hostfile, its per-rank env for ring and NCCL, ssh for other
hosts, mpirun for MPI."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest

from ollmlx.runner import launch

ARGV = ["python", "-m", "ollmlx.runner", "--engine", "mlx", "--spec", "/s.json", "--socket", "/r.sock"]
LOCAL = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}


def write(tmp: Path, data: Any) -> Path:
    p = tmp / "hosts.json"
    p.write_text(json.dumps(data))
    return p


def test_hostfile_forms_and_errors(tmp_path: Path) -> None:
    hf = launch.read_hostfile(write(tmp_path, [LOCAL, LOCAL]))
    assert hf.backend == "ring" and hf.size == 2 and hf.hosts[1] == launch.Host("127.0.0.1", ("127.0.0.1",))
    hf = launch.read_hostfile(write(tmp_path, {"backend": "nccl", "envs": ["A=1"], "hosts": [LOCAL]}))
    assert (hf.backend, hf.envs) == ("nccl", ("A=1",))
    bad = [
        ({"hosts": []}, "lists no hosts"),
        ([{"ips": ["127.0.0.1"]}], 'no "ssh" name'),
        ([{"ssh": "127.0.0.1"}], "ring backend needs"),
        ({"backend": "jaccl", "hosts": [LOCAL]}, "not one of ring, nccl, mpi"),
        ({"hosts": [LOCAL], "envs": ["novalue"]}, "NAME=value"),
        ([{"ssh": "elsewhere.invalid", "ips": ["203.0.113.7"]}, LOCAL], "rank 0 (elsewhere.invalid) must be this machine"),
    ]
    for data, message in bad:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            launch.read_hostfile(write(tmp_path, data))
    with pytest.raises(ValueError, match="is not JSON"):
        (tmp_path / "x").write_text("{")
        launch.read_hostfile(tmp_path / "x")
    with pytest.raises(ValueError, match="No such file"):
        launch.read_hostfile(tmp_path / "missing.json")


def test_this_machine_by_name_or_address() -> None:
    assert launch.is_this_machine(launch.Host("localhost"))
    assert launch.is_this_machine(launch.Host(socket.gethostname()))
    assert launch.is_this_machine(launch.Host("alias-of-me", ("127.0.0.1",)))
    assert not launch.is_this_machine(launch.Host("elsewhere.invalid", ("203.0.113.7",)))


def test_ring_on_this_machine(tmp_path: Path) -> None:
    hf = launch.read_hostfile(write(tmp_path, [LOCAL, LOCAL, LOCAL]))
    cmds = launch.rank_commands(hf, ARGV, {"PATH": "/bin"}, tmp_path, parent_pid=42, base_port=32323)
    assert [c.rank for c in cmds] == [0, 1, 2] and not any(c.remote for c in cmds)
    ring_file = str(tmp_path / "ring-hostfile.json")
    ring = json.loads(cmds[0].files[ring_file])
    ports = [int(node[0].split(":")[1]) for node in ring]
    assert [node[0].split(":")[0] for node in ring] == ["127.0.0.1"] * 3 and len(set(ports)) == 3
    for c in cmds:
        assert c.argv == [*ARGV, "--backend", "ring", "--parent-pid", "42"]
        assert c.env["MLX_RANK"] == str(c.rank) and c.env["MLX_HOSTFILE"] == ring_file and c.env["PATH"] == "/bin"


def test_ring_across_hosts_goes_through_ssh(tmp_path: Path) -> None:
    data = {"envs": ["MLX_METAL_FAST_SYNCH=1"],
            "hosts": [LOCAL | {"ips": ["127.0.0.1"]}, {"ssh": "mac2.invalid", "ips": ["203.0.113.2", "198.51.100.2"]}]}
    hf = launch.read_hostfile(write(tmp_path, data))
    env = {"PATH": "/bin", "OLLMLX_CPU_WEIGHTS": "float32", "PYTHONPATH": "/src", "SECRET": "x"}
    c0, c1 = launch.rank_commands(hf, ARGV, env, tmp_path, parent_pid=42, base_port=40000)
    ring = json.loads(c0.files[str(tmp_path / "ring-hostfile.json")])
    assert len(ring[1]) == 2 and ring[1][0].startswith("203.0.113.2:") and ring[1][1].startswith("198.51.100.2:")
    ports = [int(a.rsplit(":", 1)[1]) for node in ring for a in node]
    assert ports == list(range(ports[0], ports[0] + 3)) and 40000 <= ports[0] < 40000 + 64 * 3
    assert c1.remote and c1.argv[:7] == ["ssh", "-tt", "-o", "LogLevel=QUIET", "-o", "BatchMode=yes", "mac2.invalid"]
    script = c1.argv[7]
    assert "export MLX_RANK=1; " in script and "export MLX_METAL_FAST_SYNCH=1; " in script
    assert "export OLLMLX_CPU_WEIGHTS=float32; " in script and "export PYTHONPATH=/src; " in script
    assert "SECRET" not in script and "PATH=/bin" not in script.replace("PYTHONPATH", "")
    assert f"printf %s {shlex.quote(json.dumps(ring))} >$f; export MLX_HOSTFILE=$f; " in script
    assert script.endswith("exec " + shlex.join([*ARGV, "--backend", "ring"]))  # no --parent-pid remotely
    # the line runs in a shell: it parses back to the same words
    assert shlex.split(script.split("exec ", 1)[1]) == [*ARGV, "--backend", "ring"]


def test_nccl_one_gpu_per_rank(tmp_path: Path) -> None:
    hf = launch.read_hostfile(write(tmp_path, {"backend": "nccl", "hosts": [LOCAL, LOCAL]}))
    cmds = launch.rank_commands(hf, ARGV, {"CUDA_VISIBLE_DEVICES": "2,3"}, tmp_path, parent_pid=1, base_port=1)
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in cmds] == ["2", "3"]
    assert {c.env["NCCL_HOST_IP"] for c in cmds} == {"127.0.0.1"} and len({c.env["NCCL_PORT"] for c in cmds}) == 1
    assert [c.env["MLX_WORLD_SIZE"] for c in cmds] == ["2", "2"] and [c.env["MLX_RANK"] for c in cmds] == ["0", "1"]
    cmds = launch.rank_commands(hf, ARGV, {}, tmp_path, parent_pid=1, base_port=1)
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in cmds] == ["0", "1"]
    assert all(c.argv[-3:-2] == ["nccl"] for c in cmds)


def test_mpi_is_one_mpirun(tmp_path: Path) -> None:
    hf = launch.read_hostfile(write(tmp_path, {"backend": "mpi", "envs": ["X=1"],
                                               "hosts": [LOCAL, LOCAL, {"ssh": "node2.invalid"}]}))
    (cmd,) = launch.rank_commands(hf, ARGV, {"OLLMLX_A": "1", "HOME": "/h"}, tmp_path, parent_pid=1, base_port=1)
    host_file = str(tmp_path / "mpi-hostfile")
    assert cmd.files == {host_file: "127.0.0.1 slots=2\nnode2.invalid slots=1\n"}
    assert cmd.argv[:3] == ["mpirun", "--hostfile", host_file]
    assert cmd.argv[cmd.argv.index("--"):] == ["--", *ARGV, "--backend", "mpi"]
    assert "OLLMLX_A" in cmd.argv and "HOME" not in cmd.argv and "X=1" in cmd.argv
