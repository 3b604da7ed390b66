"""The server process never imports an engine (ARCHITECTURE.md "Processes")."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import ollmlx

REPO = Path(__file__).resolve().parents[2]


def server_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(ollmlx.__path__, "ollmlx."):
        if ".runner.engines" in info.name or info.name in ("ollmlx.runner.__main__", "ollmlx.__main__"):
            continue
        names.append(info.name)
    return names


def test_every_server_module_imports_without_an_engine() -> None:
    modules = server_modules()
    assert "ollmlx.api.app" in modules and "ollmlx.serve.inference" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "from ollmlx.api.app import create_app\n"
        "import tempfile, pathlib\n"
        "create_app(pathlib.Path(tempfile.mkdtemp()))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'llama_cpp', 'mlx_embeddings'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"server modules imported engines: {out.stdout.strip()}"


def test_the_check_itself_detects_an_engine_import() -> None:
    # guard against a test that cannot fail: importing a runner engine module must be caught
    code = "import sys, ollmlx.runner.engines.mlx.engine\nprint(any(m.startswith('mlx') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
