"""The command lines and environments that start a runner as the ranks of an MLX distributed group
(server side; no engine imports). Same hostfile and the same per-rank setup as `mlx.launch`
(mlx/_distributed_utils/launch.py), so one hostfile serves both:

    {"backend": "ring", "envs": ["K=V"], "hosts": [{"ssh": "mac1", "ips": ["10.0.0.1"]}, ...]}

(or just the list of hosts). Rank i runs on hosts[i]; rank 0 must be this machine, since it
serves the runner socket. Ranks on this machine are started directly, the others through
`ssh -tt HOST 'script'`, whose pseudo-terminal ends the remote rank when the ssh process ends.

- ring: each rank gets MLX_RANK and MLX_HOSTFILE, a JSON list of every rank's "ip:port" (ports
  picked free on the loopback, from OLLMLX_DISTRIBUTED_PORT elsewhere).
- nccl: MLX_RANK, MLX_WORLD_SIZE, NCCL_HOST_IP/NCCL_PORT (rank 0's first ip) and
  CUDA_VISIBLE_DEVICES, the rank's index among the ranks of its host.
- mpi: one `mpirun` starts every rank (it sets the ranks itself).
"""

from __future__ import annotations

import itertools
import json
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("ring", "nccl", "mpi")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
# env passed on to ranks on other hosts (a local rank inherits the server's whole environment)
_FORWARD_PREFIXES = ("OLLMLX_", "OLLAMA_", "MLX_", "NCCL_", "PYTHON")
_FORWARD_NAMES = ("LD_PRELOAD",)
_group_counter = itertools.count()


@dataclass(frozen=True)
class Host:
    ssh: str
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hostfile:
    hosts: tuple[Host, ...]
    backend: str = "ring"
    envs: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.hosts)


@dataclass
class RankCommand:
    rank: int  # for mpi, one command starts every rank: rank 0 stands for all
    host: str
    argv: list[str]
    env: dict[str, str]
    remote: bool = False
    files: dict[str, str] = field(default_factory=dict)  # path → content, written before starting


def read_hostfile(path: str | Path) -> Hostfile:
    """mlx.launch's JSON hostfile; ValueError with the reason when it is not one."""
    p = Path(path).expanduser()
    try:
        data: Any = json.loads(p.read_text())
    except OSError as exc:
        raise ValueError(f"hostfile {p}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"hostfile {p} is not JSON: {exc}") from exc
    backend: str = "ring"
    envs: Any = []
    hosts: Any = data
    if isinstance(data, dict):
        backend = str(data.get("backend") or "ring")
        envs = data.get("envs") or []
        hosts = data.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ValueError(f"hostfile {p} lists no hosts")
    parsed = []
    for i, h in enumerate(hosts):
        if not isinstance(h, dict) or not isinstance(h.get("ssh"), str) or not h["ssh"]:
            raise ValueError(f"hostfile {p}: host {i} has no \"ssh\" name")
        ips = h.get("ips") or []
        if not isinstance(ips, list) or not all(isinstance(x, str) for x in ips):
            raise ValueError(f"hostfile {p}: host {i} \"ips\" must be a list of addresses")
        parsed.append(Host(h["ssh"], tuple(ips)))
    if backend not in BACKENDS:
        raise ValueError(f"hostfile {p}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "ring" and any(not h.ips for h in parsed):
        raise ValueError(f"hostfile {p}: the ring backend needs \"ips\" for every host")
    if backend == "nccl" and not parsed[0].ips:
        raise ValueError(f"hostfile {p}: the nccl backend needs an ip for rank 0")
    if not isinstance(envs, list) or not all(isinstance(e, str) and "=" in e for e in envs):
        raise ValueError(f"hostfile {p}: \"envs\" must be a list of NAME=value")
    hf = Hostfile(tuple(parsed), backend, tuple(envs))
    if not is_this_machine(hf.hosts[0]):
        raise ValueError(f"hostfile {p}: rank 0 ({hf.hosts[0].ssh}) must be this machine, which serves it")
    return hf


def _bindable(ip: str) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


def is_this_machine(host: Host) -> bool:
    names = {*LOOPBACK_NAMES, socket.gethostname(), socket.gethostname().split(".")[0], socket.getfqdn()}
    return host.ssh in names or any(_bindable(ip) for ip in host.ips)


def _free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _ports(ips: list[str], base: int) -> list[int]:
    """A port per address: free ones where every address is this machine's loopback, else
    consecutive ones from `base`, moved on for each new group (a restarted group does not
    wait for its predecessor's ports)."""
    if all(ip.startswith("127.") or ip == "::1" for ip in ips):
        return [_free_port(ip) for ip in ips]
    start = base + (next(_group_counter) % 64) * len(ips)
    return list(range(start, start + len(ips)))


def ring_addresses(hf: Hostfile, base_port: int) -> list[list[str]]:
    """MLX_HOSTFILE for the ring backend: every rank's "ip:port" list."""
    flat = [ip for h in hf.hosts for ip in h.ips]
    ports = iter(_ports(flat, base_port))
    return [[f"[{ip}]:{next(ports)}" if ":" in ip else f"{ip}:{next(ports)}" for ip in h.ips] for h in hf.hosts]


def _env_pairs(envs: tuple[str, ...]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in envs)


def rank_commands(hf: Hostfile, runner_argv: list[str], env: dict[str, str], workdir: Path, *,
                  parent_pid: int, base_port: int) -> list[RankCommand]:
    """What to start for each rank. `runner_argv` is rank 0's `python -m ollmlx.runner ...`
    without --parent-pid (local ranks get it, so they end with the server)."""
    extra = _env_pairs(hf.envs)
    if hf.backend == "mpi":
        return [_mpi_command(hf, runner_argv, env, workdir, extra)]
    per_rank: list[dict[str, str]] = [{"MLX_RANK": str(r)} for r in range(hf.size)]
    files: dict[str, str] = {}
    if hf.backend == "ring":
        ring = json.dumps(ring_addresses(hf, base_port))
        path = str(workdir / "ring-hostfile.json")
        files[path] = ring
        for r in range(hf.size):
            per_rank[r]["MLX_HOSTFILE"] = path
    else:  # nccl
        ip = hf.hosts[0].ips[0]
        port = _ports([ip], base_port)[0]
        visible = env.get("CUDA_VISIBLE_DEVICES", "")
        for r, h in enumerate(hf.hosts):
            per_rank[r].update(MLX_WORLD_SIZE=str(hf.size), NCCL_HOST_IP=ip, NCCL_PORT=str(port))
            if "CUDA_VISIBLE_DEVICES" in extra:
                continue
            # one GPU per rank: the rank's index among the ranks of its host, within the GPUs
            # this server may use when the rank runs here
            index = sum(1 for other in hf.hosts[:r] if other.ssh == h.ssh)
            devices = visible.split(",") if visible and (r == 0 or is_this_machine(h)) else []
            per_rank[r]["CUDA_VISIBLE_DEVICES"] = devices[index] if index < len(devices) else str(index)
    out = []
    for r, h in enumerate(hf.hosts):
        argv = [*runner_argv, "--backend", hf.backend]
        local = r == 0 or is_this_machine(h)
        if local:
            out.append(RankCommand(r, h.ssh, [*argv, "--parent-pid", str(parent_pid)],
                                   {**env, **extra, **per_rank[r]}, files=files if r == 0 else {}))
            continue
        forwarded = {k: v for k, v in env.items() if k.startswith(_FORWARD_PREFIXES) or k in _FORWARD_NAMES}
        rank_env = {**forwarded, **extra, **per_rank[r]}
        contents = {"MLX_HOSTFILE": files[rank_env.pop("MLX_HOSTFILE")]} if "MLX_HOSTFILE" in rank_env else {}
        out.append(RankCommand(r, h.ssh, ["ssh", "-tt", "-o", "LogLevel=QUIET", "-o", "BatchMode=yes", h.ssh,
                                          remote_script(argv, rank_env, contents)], {**env}, remote=True))
    return out


def remote_script(argv: list[str], env: dict[str, str], files: dict[str, str]) -> str:
    """The shell line ssh runs: export the env, write the files named by env variables (as
    mlx.launch does for MLX_HOSTFILE), then exec the runner so the rank is the ssh session."""
    script = "stty -echo 2>/dev/null; "
    for key, value in env.items():
        if key.replace("_", "").isalnum():
            script += f"export {key}={shlex.quote(value)}; "
    for name, content in files.items():
        script += f"f=$(mktemp); printf %s {shlex.quote(content)} >$f; export {name}=$f; "
    return script + "exec " + shlex.join(argv)


def _mpi_command(hf: Hostfile, runner_argv: list[str], env: dict[str, str], workdir: Path,
                 extra: dict[str, str]) -> RankCommand:
    from collections import Counter

    path = str(workdir / "mpi-hostfile")
    slots = Counter(h.ssh for h in hf.hosts)
    content = "".join(f"{h} slots={n}\n" for h, n in slots.items())
    forwarded = [k for k in env if k.startswith(_FORWARD_PREFIXES) or k in _FORWARD_NAMES]
    argv = ["mpirun", "--hostfile", path, *itertools.chain.from_iterable(["-x", k] for k in forwarded),
            *itertools.chain.from_iterable(["-x", f"{k}={v}"] for k, v in extra.items()),
            "--", *runner_argv, "--backend", "mpi"]
    # mpirun is the ranks' parent, not the server: no --parent-pid (the server stops mpirun)
    return RankCommand(0, hf.hosts[0].ssh, argv, {**env, **extra}, files={path: content})
