"""One function per environment variable. OLLMLX_* wins, OLLAMA_* is accepted (spec §22)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 11434


def _raw(name: str) -> str | None:
    """Value of OLLMLX_<name> or OLLAMA_<name>, trimmed of whitespace and quotes as Ollama does."""
    for prefix in ("OLLMLX_", "OLLAMA_"):
        value = os.environ.get(prefix + name)
        if value is not None:
            return value.strip().strip("\"'").strip()
    return None


def _bool(name: str, default: bool = False) -> bool:
    # Ollama: strconv.ParseBool, and an unparseable non-empty value counts as true.
    value = _raw(name)
    if value is None or value == "":
        return default
    return value not in ("0", "f", "F", "false", "FALSE", "False")  # strconv.ParseBool's false spellings


def _int(name: str, default: int) -> int:
    value = _raw(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class HostAddress:
    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def client_url(self) -> str:
        """The address a client connects to: 0.0.0.0 and :: mean the loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return HostAddress(self.scheme, host, self.port, self.path).url


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: None when there is no port or the brackets/colons are wrong."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1:end + 2] != ":" or ":" in hostport[end + 2:]:
            return None
        return hostport[1:end], hostport[end + 2:]
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host or "[" in host or "]" in host:
        return None
    return host, port


def parse_host(value: str | None) -> HostAddress:
    """OLLAMA_HOST as envconfig.Host() reads it (spec §22): an optional scheme (`ollama.com` alone
    means https on 443); without a port 11434, or 80/443 for http://, https://; a path is kept; a
    host:port that does not split becomes 127.0.0.1 (or the bare IP/name given) with the default
    port; an invalid port becomes the default. An empty host (":8080") binds every interface."""
    text = (value or "").strip().strip("\"'").strip()
    scheme, sep, hostport = text.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", text
        if text == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        host, port_text = "127.0.0.1", str(default_port)
        bare = hostport.strip("[]")
        try:
            host = str(ipaddress.ip_address(bare))
        except ValueError:
            if hostport:
                host = hostport
    else:
        host, port_text = split
    port = int(port_text) if port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535 else default_port
    return HostAddress(scheme, host, port, ("/" + path).rstrip("/") if path else "")


def host() -> HostAddress:
    return parse_host(_raw("HOST"))


def models_dir() -> Path:
    value = _raw("MODELS")
    if value:
        return Path(value).expanduser()
    return Path.home() / ".ollmlx" / "models"


def home_dir() -> Path:
    """Where history and keys live (Ollama: ~/.ollama)."""
    value = os.environ.get("OLLMLX_HOME")
    return Path(value).expanduser() if value else Path.home() / ".ollmlx"


def keep_alive_default() -> str | None:
    return _raw("KEEP_ALIVE")


def context_length() -> int:
    return _int("CONTEXT_LENGTH", 0)


def num_parallel() -> int:
    return _int("NUM_PARALLEL", 0)


def max_loaded_models() -> int:
    return _int("MAX_LOADED_MODELS", 0)


def max_queue() -> int:
    return _int("MAX_QUEUE", 512)


def load_timeout_seconds() -> float:
    from ollmlx.durations import keep_alive_from_env

    value = _raw("LOAD_TIMEOUT")
    if not value:
        return 300.0
    seconds = keep_alive_from_env(value)
    return float("inf") if seconds <= 0 else seconds


def debug_level() -> int:
    value = _raw("DEBUG")
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 1 if _bool("DEBUG") else 0


def origins() -> list[str]:
    value = _raw("ORIGINS") or ""
    return [o.strip() for o in value.split(",") if o.strip()]


def go_template() -> bool | None:
    """OLLAMA_GO_TEMPLATE (spec §13): None when unset, so the template's capabilities decide."""
    value = _raw("GO_TEMPLATE")
    return None if value is None or value == "" else _bool("GO_TEMPLATE")


def noprune() -> bool:
    return _bool("NOPRUNE")


def no_cloud() -> bool:
    """OLLAMA_NO_CLOUD (spec §22): cloud models off (ollmlx has none; /api/status reports it)."""
    return _bool("NO_CLOUD")


def editor() -> str:
    """OLLAMA_EDITOR: the editor Ctrl+G opens in the interactive session ("": VISUAL, EDITOR, vi)."""
    return _raw("EDITOR") or ""


def nohistory() -> bool:
    return _bool("NOHISTORY")


def _size(name: str, default: int) -> int:
    """Bytes, or a size such as `64MiB` / `12GB`; unset or unparsable: the default."""
    value = _raw(name)
    if not value:
        return default
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
    number = value.rstrip("bBkKmMgGiI")
    unit = value[len(number):].strip().lower()
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        return default


def max_request_bytes() -> int:
    """Largest request body accepted (blob uploads excepted): bytes, or a size like `64MiB`;
    0 or less turns the limit off. Real requests are far smaller; many images fit."""
    return _size("MAX_REQUEST_SIZE", 64 << 20)


def max_memory_bytes() -> int:
    """OLLMLX_MAX_MEMORY: the memory loaded models may take together (0: what the host has free)."""
    return _size("MAX_MEMORY", 0)


def engine_override() -> str | None:
    value = os.environ.get("OLLMLX_ENGINE", "").strip()
    return value or None


def hostfile() -> str | None:
    """An mlx.launch hostfile: MLX models run split across its hosts (docs/distributed.md)."""
    value = os.environ.get("OLLMLX_HOSTFILE", "").strip()
    return value or None


def distributed_port() -> int:
    """First TCP port of a group's ring / NCCL rendezvous on hosts other than this one."""
    return _int("DISTRIBUTED_PORT", 32323)


def runner_python() -> str:
    """Interpreter used for runner subprocesses (defaults to the server's own)."""
    import sys

    return os.environ.get("OLLMLX_RUNNER_PYTHON") or sys.executable


# name → (default, description); `ollmlx serve --help` prints this table.
ENV_DOCS: dict[str, tuple[str, str]] = {
    "OLLAMA_HOST": ("127.0.0.1:11434", "IP Address for the ollmlx server"),
    "OLLAMA_MODELS": ("~/.ollmlx/models", "The path to the models directory (OLLMLX_MODELS wins)"),
    "OLLAMA_KEEP_ALIVE": ("5m", "The duration that models stay loaded in memory"),
    "OLLAMA_CONTEXT_LENGTH": ("4096", "Context length to use unless otherwise specified"),
    "OLLAMA_NUM_PARALLEL": ("auto", "Maximum number of parallel requests per model"),
    "OLLAMA_MAX_LOADED_MODELS": ("3", "Maximum number of loaded models"),
    "OLLAMA_MAX_QUEUE": ("512", "Maximum number of queued requests"),
    "OLLAMA_LOAD_TIMEOUT": ("5m", "How long to allow model loads to stall before giving up"),
    "OLLAMA_DEBUG": ("0", "Show additional debug information (e.g. OLLAMA_DEBUG=1)"),
    "OLLAMA_ORIGINS": ("", "A comma separated list of allowed origins"),
    "OLLAMA_NOPRUNE": ("false", "Do not prune model blobs on startup"),
    "OLLAMA_NOHISTORY": ("false", "Do not preserve readline history"),
    "OLLAMA_EDITOR": ("", "Editor Ctrl+G opens in the interactive session (else VISUAL, EDITOR, vi)"),
    "OLLAMA_GO_TEMPLATE": ("unset", "A GGUF's Go TEMPLATE (true) or its Jinja chat template (false); unset: the more capable"),
    "HTTPS_PROXY": ("", "HTTPS proxy for pulls and pushes (loopback registries are reached directly)"),
    "HTTP_PROXY": ("", "HTTP proxy for insecure registries (not for the ollmlx server itself)"),
    "NO_PROXY": ("", "Hosts reached without a proxy"),
    "SSL_CERT_FILE": ("certifi's roots", "CA bundle trusted for registries (a private registry's CA)"),
    "OLLMLX_ENGINE": ("auto", "Force the engine for GGUF models: mlx or llamacpp"),
    "OLLMLX_RUNNER_PYTHON": ("this interpreter", "Python interpreter for runner processes"),
    "OLLMLX_HOME": ("~/.ollmlx", "Where the CLI keeps its history (history file)"),
    "OLLMLX_MLX_DEVICE": ("auto", "Set to gpu to run MLX on the GPU (mlx-cuda) instead of the CPU"),
    "OLLMLX_OPENBLAS": ("found on the system", "OpenBLAS library preloaded for MLX on Linux CPUs (empty: none)"),
    "OLLMLX_CPU_WEIGHTS": ("auto", "MLX weights on CPU: float32 (dequantized for BLAS) or quantized"),
    "OLLMLX_GPU_PARALLEL": ("16", "Parallel sequences per model on a GPU (CPU: 4)"),
    "OLLMLX_MLX_SOLO": ("1", "A lone MLX request decodes off the batch on a plain KV cache (0: stay in the batch)"),
    "OLLMLX_MLX_FLAT_ROWS": ("1", "Batched MLX decoding runs one quantized product per layer (0: one per sequence)"),
    "OLLMLX_MLX_DEQUANT_ROWS": ("128- on CUDA", "Quantized products of this many rows (lo-hi, lo-) dequantize and run dense (0: never)"),
    "OLLMLX_MLX_DENSE_COPY": ("0", "Keep a 16-bit copy of quantized MLX weights for multi-row products (1: on; 4x the weights' memory)"),
    "OLLMLX_MLX_ROWS_KERNEL": ("1 on CUDA", "Quantized MLX products of 2-32 rows (batched decode steps, short prompts) through ollmlx's tensor-core kernel (0: mlx's qmm)"),
    "OLLMLX_MLX_BATCH_FUSED": ("1", "MLX batched decode steps as one compiled call around ollmlx's CUDA attention kernel (Llama-family models on CUDA; 0: off)"),
    "OLLMLX_MLX_FUSED": ("1", "MLX solo decode steps through ollmlx's fused CUDA kernels, the whole step as one compiled call (4-bit Llama-family models on CUDA; layers: one call per layer; 0: off)"),
    "OLLMLX_MLX_COMPILE": ("0", "MLX solo decode steps through mx.compile (1: on; +3% served on a CPU, slower on CUDA)"),
    "MLX_CUDA_USE_CUDNN_SDPA": ("0 in runners", "mlx-cuda attention through cuDNN (1), planned per prompt length"),
    "OLLMLX_SWITCH_INTERVAL": ("0.0005", "Runner threads' GIL switch interval in seconds (Python's own is 0.005)"),
    "OLLMLX_LLAMACPP_THREADS": ("all cores", "Threads of the llama.cpp engine"),
    "OLLMLX_HOSTFILE": ("", "mlx.launch hostfile: run MLX models split across its hosts (docs/distributed.md)"),
    "OLLMLX_DISTRIBUTED_MODE": ("auto", "How a model is split across ranks: auto, tensor or pipeline"),
    "OLLMLX_DISTRIBUTED_PORT": ("32323", "First port of a distributed group on hosts other than this one"),
    "OLLMLX_LLAMACPP_REPACK": ("auto", "Let llama.cpp repack weights for its CPU kernels (1/0)"),
    "OLLMLX_MAX_MEMORY": ("free memory", "Memory loaded models may take together; models are unloaded to fit (e.g. 12GiB)"),
    "OLLMLX_MAX_REQUEST_SIZE": ("64MiB", "Largest request body accepted, blob uploads excepted (0: no limit)"),
}
