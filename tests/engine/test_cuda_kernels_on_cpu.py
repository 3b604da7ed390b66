"""ollmlx's CUDA kernels (cuda_kernels.py, cuda_attention.py, cuda_rows.py) run on this CPU
through tests/emulators/cuda.py: their own sources, compiled with g++, a thread per CUDA thread,
16-bit rounding per operation. Each output is compared with the same computation in float32, so
a kernel's indexing or arithmetic breaks here before it reaches a GPU. (Speed, and mlx-cuda's
handling of the kernels, are checked on a GPU: test_fused_step.py, test_cuda_rows.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators import cuda


@pytest.mark.parametrize(("n", "k", "rows", "group", "dtype", "tiles", "words"), cuda.ROWS_CASES)
def test_few_row_product(tmp_path: Path, n: int, k: int, rows: int, group: int, dtype: str, tiles: int | None,
                         words: int | None) -> None:
    err, _ = cuda.rows_case(n, k, rows, group, dtype, tmp_path, tiles, words)
    assert err <= 0.006  # bf16 output rounding is 0.4% of a value


@pytest.mark.parametrize(("k", "ns", "group", "dtype", "per_warp"), [
    (512, (256, 64, 64), 64, "bfloat16", None), (576, (96, 32, 32), 32, "float16", None),
    (256, (100, 20, 20), 64, "bfloat16", 4)])  # 4 rows a warp (large layers), the last warp partly past the end
def test_norm_product_residual(tmp_path: Path, k: int, ns: tuple[int, int, int], group: int, dtype: str,
                               per_warp: int | None) -> None:
    assert cuda.qmv_case(k, ns, group, dtype, tmp_path, per_warp) <= 0.006


@pytest.mark.parametrize(("k", "n", "group", "dtype", "per_warp"), [
    (512, 384, 64, "bfloat16", None), (576, 1536, 32, "float16", None), (256, 90, 64, "bfloat16", 2)])
def test_gate_up_swiglu(tmp_path: Path, k: int, n: int, group: int, dtype: str, per_warp: int | None) -> None:
    assert cuda.swiglu_case(k, n, group, dtype, tmp_path, per_warp) <= 0.008


@pytest.mark.parametrize(("k", "heads", "kv", "hd", "pos", "dtype"), [(512, 8, 2, 64, 37, "bfloat16"),
                                                                   (256, 4, 4, 128, 1234, "float16")])
def test_qkv_with_rope(tmp_path: Path, k: int, heads: int, kv: int, hd: int, pos: int, dtype: str) -> None:
    assert cuda.qkv_rope_case(k, heads, kv, hd, pos, dtype, tmp_path) <= 0.006


@pytest.mark.parametrize(("heads", "kv", "d", "pos", "cap", "dtype"), [
    (8, 2, 64, 37, 256, "bfloat16"), (4, 4, 128, 0, 256, "float16"),
    (8, 2, 128, 1500, 2048, "bfloat16"),  # split over blocks, then the merge kernel
    (4, 1, 64, 3, 1024, "bfloat16")])  # split, most blocks with no positions
def test_decode_attention(tmp_path: Path, heads: int, kv: int, d: int, pos: int, cap: int, dtype: str) -> None:
    """Also: the token's key and value written into the buffers in place, at its position only."""
    assert cuda.attend_case(heads, kv, d, pos, cap, dtype, tmp_path) <= 0.005


@pytest.mark.parametrize(("heads", "kv", "pos", "cap", "firsts"), [
    (4, 2, 40, 256, (0, 7, 39)),  # a batch's rows, each from its own left padding (one of one position)
    (4, 1, 900, 1024, (3, 0, 850))])  # split over blocks; one row's positions in the last block only
def test_batched_decode_attention(tmp_path: Path, heads: int, kv: int, pos: int, cap: int,
                                  firsts: tuple[int, ...]) -> None:
    """Several sequences of a batch (mlx-lm's BatchKVCache layout): each reads its own positions and
    writes its own token's key and value."""
    assert cuda.attend_case(heads, kv, 64, pos, cap, "bfloat16", tmp_path, firsts) <= 0.005
