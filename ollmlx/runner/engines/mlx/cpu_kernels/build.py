"""Build ollmlx's CPU kernels (an mlx C++ extension) once per source, mlx and Python version.

The build needs cmake, a C++ compiler and nanobind (a dependency on Linux); ~15 s on 2 cores.
`scripts/setup.sh` runs it at install (`python -m ollmlx.runner.engines.mlx.cpu_kernels`), so a
runner finds it built; a runner that does not builds it at load, under a file lock that keeps two
runners from building at once. The library lands in place by rename, never half-written.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from functools import cache
from pathlib import Path

log = logging.getLogger("ollmlx.runner")

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("CMakeLists.txt", "common.h", "module.cpp", "products.cpp", "rope.cpp", "attention.cpp")
MODULE = "_cpu_kernels"


class BuildError(RuntimeError):
    """The kernels could not be built here; the message says what is missing or what failed."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


@cache
def build_key() -> str:
    """The sources' and versions' hash, once per process (every path below is named by it)."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((SOURCE_DIR / name).read_bytes())
    h.update(f"{_version('mlx')} {_version('nanobind')} {sys.implementation.cache_tag}".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """OLLMLX_KERNEL_CACHE, else a folder next to these sources when writable (one build serves
    every HOME a test or user runs under), else the user's cache folder."""
    override = os.environ.get("OLLMLX_KERNEL_CACHE")
    if override:
        return Path(override)
    local = SOURCE_DIR / "_build"
    if os.access(SOURCE_DIR, os.W_OK):
        return local
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ollmlx" / "kernels"


def built_dir() -> Path:
    return cache_root() / build_key()


def library_path() -> Path | None:
    """The built module's file, or None when this source/mlx/Python has not been built yet."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = built_dir() / f"{MODULE}{suffix}"
    return path if path.exists() else None


def ensure_built() -> Path:
    """Build unless already built; returns the folder holding the module. Raises BuildError."""
    if library_path() is not None:
        return built_dir()
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake is not installed")
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        raise BuildError("no C++ compiler (c++ or g++) is installed")
    if _version("nanobind") == "none":
        raise BuildError("the nanobind package is not installed")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another runner may be building the same key
        if library_path() is not None:
            return built_dir()
        log.info("building ollmlx's CPU kernels (once per mlx version) into %s", built_dir())
        with tempfile.TemporaryDirectory(dir=root, prefix="tmp-") as tmp:
            _cmake(cmake, Path(tmp))
            built = next(Path(tmp).glob(f"{MODULE}*.so"), None)
            if built is None:
                raise BuildError("cmake finished without producing the module")
            staging = root / f"tmp-{build_key()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            shutil.copy2(built, staging / built.name)
            shutil.rmtree(built_dir(), ignore_errors=True)  # a folder left by a build that died
            os.replace(staging, built_dir())
    return built_dir()


def _cmake(cmake: str, build: Path) -> None:
    steps = (
        [cmake, "-S", str(SOURCE_DIR), "-B", str(build), f"-DPython_EXECUTABLE={sys.executable}",
         "-DCMAKE_BUILD_TYPE=Release"],
        [cmake, "--build", str(build), "-j", str(max(1, os.cpu_count() or 1))],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise BuildError(f"{' '.join(step[:2])} failed:\n" + "\n".join(tail))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        where = ensure_built()
    except BuildError as e:
        print(f"ollmlx CPU kernels not built: {e}", file=sys.stderr)
        return 1
    print(f"ollmlx CPU kernels: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
