"""Compile ollmlx's CUDA kernels with NVRTC on a host without a GPU, the way mlx-cuda builds an
`mx.fast.cuda_kernel` (its header, the generated signature, the template constants), to catch
compile errors before spending lent GPU time. Compiling needs no device.

Needs, unpacked into one folder (`--root`): the `nvidia-cuda-nvrtc` and `nvidia-cuda-runtime`
wheels (13.x; `PIP_CONSTRAINT= pip download --no-deps nvidia-cuda-nvrtc==13.0.88
nvidia-cuda-runtime==13.0.96`), the `mlx-cuda-13` wheel (its bundled CCCL headers), and mlx's
`mlx/backend/cuda/device/*` headers from its source at the same version (`--mlx-src`; mlx
embeds them in its binary).

    python bench/cuda_compile_check.py --root /tmp/nv --mlx-src /tmp/mlxsrc
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulators.cuda import CTYPES, template_constants

_DEFAULT_HEADER = '\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>\n\n'


def source(name: str, header: str, body: str, inputs: list[tuple[str, str, bool]], outputs: list[tuple[str, str]],
           template: list[tuple[str, Any]]) -> str:
    """mlx-cuda's generated kernel source: inputs (name, dtype, shape used), outputs (name, dtype)."""
    sig = []
    for n, dtype, shaped in inputs:
        sig.append(f"    const {CTYPES[dtype]}* {n}")
        if shaped:
            sig.append(f"    const __grid_constant__ Shape {n}_shape")
    sig += [f"    {CTYPES[dtype]}* {n}" for n, dtype in outputs]
    consts = template_constants(template)
    return (_DEFAULT_HEADER + header + "namespace mlx::core::cu {\n\nnamespace cg = cooperative_groups;\n\n"
            f"__global__ void {name}(\n" + ",\n".join(sig) + ") {\n" + "\n".join(consts) + "\n\n" + body
            + "\n}\n\n} // namespace mlx::core::cu\n")


def compile_ok(lib: Any, text: str, includes: list[str], arch: str = "sm_90a", verbose: bool = False) -> tuple[bool, str]:
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), b"k.cu", 0, None, None) == 0
    opts = [b"--device-as-default-execution-space", f"--gpu-architecture={arch}".encode(), b"-default-device",
            *[f"--include-path={p}".encode() for p in includes], *([b"--ptxas-options=-v"] if verbose else [])]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return rc == 0, log.value.decode(errors="replace")


def kernels() -> list[tuple[str, str]]:
    """(name, generated source) for every kernel ollmlx builds, at representative template values."""
    from ollmlx.runner.engines.mlx import cuda_attention as ca
    from ollmlx.runner.engines.mlx import cuda_kernels as ck

    out = []
    for t in ("bfloat16", "float16"):
        q4 = [("T", t), ("K", 4096), ("GROUP", 64)]
        out.append((f"qmv_{t}", source("qmv", ck.HEADER, ck.QMV_SOURCE, [
            ("x", t, False), ("gamma", t, False), ("eps", "float32", False),
            *[(f"{p}{i}", d, False) for i in range(3) for p, d in (("w", "uint32"), ("s", t), ("b", t))],
            ("res", t, False)], [("out", t)],
            [*q4, ("R", 2), ("NORM", True), ("RESID", True), ("N0", 4096), ("N1", 1024), ("N2", 1024)])))
        out.append((f"qkv_rope_{t}", source("qkv", ck.HEADER, ck.QKV_ROPE_SOURCE, [
            ("x", t, False), ("gamma", t, False), ("eps", "float32", False),
            *[(f"{p}{s}", d, False) for s in "qkv" for p, d in (("w", "uint32"), ("s", t), ("b", t))],
            ("theta", "float32", False), ("pos", "int32", False)], [("q", t), ("k", t), ("v", t)],
            [*q4, ("NORM", True), ("HD", 128), ("NQ", 4096), ("NK", 1024)])))
        out.append((f"swiglu_{t}", source("swiglu", ck.HEADER, ck.SWIGLU_SOURCE, [
            ("x", t, False), ("gamma", t, False), ("eps", "float32", False),
            *[(f"{p}{s}", d, False) for s in "gu" for p, d in (("w", "uint32"), ("s", t), ("b", t))]],
            [("out", t)], [*q4, ("R", 1), ("NORM", True), ("N", 14336)])))
        for hd in (64, 128):
            att_in = [("qr", t, False), ("kn", t, False), ("vn", t, False), ("kc", t, True), ("vc", t, False),
                      ("pos", "int32", False), ("scale", "float32", False)]
            tmpl = [("T", t), ("D", hd), ("H", 32), ("KVH", 8)]
            out.append((f"attend_{t}_{hd}", source("attend", ca.ATTEND_HEADER, ca.ATTEND_SOURCE, att_in,
                                                   [("out", t)], [*tmpl, ("S", 1)])))
            out.append((f"attend_split_{t}_{hd}", source("attend_split", ca.ATTEND_HEADER, ca.ATTEND_SPLIT_SOURCE,
                                                         att_in, [("out", "float32")], [*tmpl, ("S", 8)])))
            out.append((f"attend_merge_{t}_{hd}", source("merge", ca.ATTEND_HEADER, ca.MERGE_SOURCE,
                                                         [("part", "float32", False)], [("out", t)],
                                                         [("T", t), ("D", hd), ("S", 8)])))
    from ollmlx.runner.engines.mlx import cuda_rows

    for t in ("bfloat16", "float16"):
        for bound in cuda_rows.BUCKETS:
            for k in (4096, 576):  # lanes read four words of a row, or two (K not a multiple of 128)
                out.append((f"qmm_rows_{t}_{bound}_k{k}", source("rows", cuda_rows.ROWS_HEADER, cuda_rows.ROWS_SOURCE, [
                    ("x", t, True), ("w", "uint32", True), ("s", t, False), ("b", t, False)], [("out", t)],
                    cuda_rows.launch(bound, 4096, t, 64, k=k)["template"])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the unpacked nvrtc, cuda-runtime and mlx-cuda wheels")
    ap.add_argument("--mlx-src", required=True, help="a folder holding mlx/backend/cuda/device/*.cuh")
    ap.add_argument("--only", default="", help="compile only kernels whose name contains this")
    ap.add_argument("--verbose", action="store_true", help="print each kernel's registers and spills (ptxas)")
    args = ap.parse_args()
    root = Path(args.root)
    for builtins in root.rglob("libnvrtc-builtins.so.*"):  # nvrtc dlopens it by name
        ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(next(root.rglob("libnvrtc.so.*"))))
    includes = [args.mlx_src, str(root / "mlx" / "include"), str(root / "mlx" / "include" / "cccl"),
                str(next(root.rglob("cuda_bf16.h")).parent)]
    failed = 0
    for name, text in kernels():
        if args.only not in name:
            continue
        ok, log = compile_ok(lib, text, includes, verbose=args.verbose)
        usage = [line.split(":", 1)[-1].strip() for line in log.splitlines() if "registers" in line or "spill" in line]
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  ({'; '.join(usage)})" if usage else ""))
        if not ok or "warning" in log:
            print(log[:4000])
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
