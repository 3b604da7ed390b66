"""ollmlx's CPU kernels (runner/engines/mlx/cpu_kernels/): each op against mlx's own on the same
inputs, the layout on the packaged SmolLM2 against the float32 layout it replaces, and what a host
without them gets. The kernels are built by scripts/setup.sh (or here, on first use)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from helpers import smollm2_gguf


@pytest.fixture(scope="module")
def kernels() -> Any:
    from ollmlx.runner.engines.mlx import cpu_kernels

    if absent := cpu_kernels.cpu_supports():  # hardware absent, not a missing feature
        pytest.skip(f"ollmlx's CPU kernels need an x86-64 Linux CPU with AVX2, FMA and F16C: {absent}")
    module, why = cpu_kernels.load()
    assert module is not None, f"the CPU kernels did not build or load here: {why}"
    return module


def _relative(a: Any, b: Any) -> float:
    import mlx.core as mx

    return float((mx.abs(a - b).max() / mx.abs(b).max()).item())


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 3, 9, 16, 17, 70])  # blocks of 8 rows, and threads from 4
@pytest.mark.parametrize("params", ["float16", "bfloat16", "float32"])
def test_quantized_rows_match_mlx(kernels: Any, bits: int, group: int, rows: int, params: str) -> None:
    import mlx.core as mx

    w, s, b = mx.quantize(mx.random.normal((200, 384), key=mx.random.key(rows)), group_size=group, bits=bits)
    s, b = s.astype(getattr(mx, params)), b.astype(getattr(mx, params))
    x = mx.random.normal((2, rows, 384), key=mx.random.key(7))
    # the reference in float32 throughout (mlx dequantizes 16-bit scales to 16-bit weights)
    f32 = mx.float32
    want = x @ mx.dequantize(w, s.astype(f32), b.astype(f32), group_size=group, bits=bits).T
    got = kernels.quantized_rows(x, w, s, b, group, bits)
    assert got.shape == (2, rows, 200) and got.dtype == mx.float32
    # x is read in int8 per block of 32, as llama.cpp reads it: ~0.5% of the largest output
    assert _relative(got, want) < 2e-2


def test_a_tokens_numbers_do_not_depend_on_how_its_prompt_was_cut(kernels: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """SmolLM2's last prompt token read with the whole prompt, or as one row after the rest (as a
    prefix cache hit or mlx-lm's generate_step reads it): the same logits to float32 rounding in
    attention, so a warm cache gives the greedy answer a cold one gives."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    model, _ = _smol("auto", monkeypatch)
    prompt = [(i * 131 + 7) % 40000 + 100 for i in range(60)]
    whole = model(mx.array(prompt)[None], cache=make_prompt_cache(model))[:, -1, :]
    cache = make_prompt_cache(model)
    model(mx.array(prompt[:-1])[None], cache=cache)
    last = model(mx.array(prompt[-1:])[None], cache=cache)[:, -1, :]
    assert _relative(last, whole) < 1e-4
    assert int(mx.argmax(last).item()) == int(mx.argmax(whole).item())


@pytest.mark.parametrize("bits", [4, 8])
def test_a_rows_product_does_not_depend_on_its_batch(kernels: Any, bits: int) -> None:
    """A sequence's decode step gets the same bits alone as beside up to 39 others (in blocks of 8
    rows, on threads or not): its tokens do not change with what it is batched with."""
    import mlx.core as mx

    w, s, b = mx.quantize(mx.random.normal((600, 512), key=mx.random.key(11)), group_size=32, bits=bits)
    x = mx.random.normal((40, 1, 512), key=mx.random.key(12))  # 40 sequences' decode step
    alone = [kernels.quantized_rows(x[i : i + 1], w, s, b, 32, bits) for i in range(40)]
    for n in (2, 5, 9, 16, 40):
        together = kernels.quantized_rows(x[:n], w, s, b, 32, bits)
        for i in range(n):
            assert mx.array_equal(together[i : i + 1], alone[i]).item(), (n, i)


def test_quantized_rows_read_a_strided_view(kernels: Any) -> None:
    import mlx.core as mx

    w, s, b = mx.quantize(mx.random.normal((64, 256), key=mx.random.key(1)), group_size=32, bits=4)
    x = mx.random.normal((256, 20), key=mx.random.key(2)).T  # a transposed view
    want = x @ mx.dequantize(w, s, b, group_size=32, bits=4).T
    assert _relative(kernels.quantized_rows(x[:3], w, s, b, 32, 4), want[:3]) < 2e-2
    assert _relative(kernels.quantized_rows(x, w, s, b, 32, 4), want) < 2e-2


@pytest.mark.parametrize("bad", ["dtype", "width", "bits", "group", "scales"])
def test_quantized_rows_refuse_what_they_cannot_read(kernels: Any, bad: str) -> None:
    import mlx.core as mx

    w, s, b = mx.quantize(mx.random.normal((64, 256)), group_size=64, bits=4)
    x = mx.random.normal((1, 256))
    args: list[Any] = [x, w, s, b, 64, 4]
    if bad == "dtype":
        args[0] = x.astype(mx.float16)
    elif bad == "width":
        args[0] = mx.random.normal((1, 128))
    elif bad == "bits":
        args[5] = 3
    elif bad == "group":
        args[4] = 48
    else:
        args[2] = s[:, :2]
    with pytest.raises(ValueError, match="quantized_rows"):
        kernels.quantized_rows(*args)


@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("offset", [0, 9, "scalar array", "per row"])
@pytest.mark.parametrize("dims", [64, 32])
def test_rope_matches_mlx(kernels: Any, traditional: bool, offset: Any, dims: int) -> None:
    import mlx.core as mx

    x = mx.random.normal((2, 6, 5, 64), key=mx.random.key(3))
    given = {"scalar array": mx.array(700), "per row": mx.array([3, 1500])}.get(offset, offset)
    want = mx.fast.rope(x, dims, traditional=traditional, base=10000.0, scale=1.0, offset=given)
    got = kernels.rope(x, dims, traditional, 10000.0, 1.0, given if isinstance(given, mx.array) else mx.array(given))
    # at position 1,500 mlx's and libm's float32 cos differ in the last bits of theta's rounding
    assert _relative(got, want) < 1e-4


def test_rope_with_given_frequencies_and_scale_matches_mlx(kernels: Any) -> None:
    import mlx.core as mx

    x = mx.random.normal((1, 4, 3, 64), key=mx.random.key(4)).transpose(0, 2, 1, 3)  # a strided view
    freqs = mx.random.uniform(shape=(32,), key=mx.random.key(5)) * 100 + 1
    want = mx.fast.rope(x, 64, traditional=False, base=None, scale=0.5, offset=11, freqs=freqs)
    assert _relative(kernels.rope(x, 64, False, None, 0.5, mx.array(11), freqs), want) < 1e-5


@pytest.mark.parametrize(("rows", "positions"), [(1, 1), (1, 7), (1, 300), (4, 4), (4, 300), (16, 40)])
def test_attention_over_a_cache_view_matches_mlx(kernels: Any, rows: int, positions: int) -> None:
    """Keys and values as the cache hands them: a slice of a larger buffer (strided heads)."""
    import mlx.core as mx

    keys, values = (mx.random.normal((2, 3, 512, 64), key=mx.random.key(s)) for s in (6, 7))
    q = mx.random.normal((2, 9, rows, 64), key=mx.random.key(8))
    k, v = keys[:, :, :positions], values[:, :, :positions]
    mask = "causal" if rows > 1 else None
    want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask=mask)
    assert _relative(kernels.attention(q, k, v, 0.125, rows > 1), want) < 1e-5


@pytest.mark.parametrize("rows", [1, 3])
def test_attention_under_a_batchs_padding_mask_matches_mlx(kernels: Any, rows: int) -> None:
    """The boolean mask mlx-lm builds for a left-padded batch (broadcast over heads), including a
    sequence whose padding hides every position a row may see (mlx averages them all)."""
    import mlx.core as mx
    from mlx_lm.models.base import create_causal_mask

    keys, values = (mx.random.normal((3, 2, 64, 64), key=mx.random.key(s)) for s in (13, 14))
    q = mx.random.normal((3, 4, rows, 64), key=mx.random.key(15))
    mask = create_causal_mask(rows, 40 - rows, left_padding=mx.array([0, 7, 39]))
    k, v = keys[:, :, :40], values[:, :, :40]
    want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask=mask)
    assert _relative(kernels.attention(q, k, v, 0.125, False, mask), want) < 1e-5


def test_attention_gathers_a_view_whose_last_axis_is_strided(kernels: Any) -> None:
    import mlx.core as mx

    k = mx.random.normal((1, 2, 64, 20), key=mx.random.key(9)).transpose(0, 1, 3, 2)
    q = mx.random.normal((1, 4, 1, 64), key=mx.random.key(10))
    want = mx.fast.scaled_dot_product_attention(q, k, k, scale=0.1)
    assert _relative(kernels.attention(q, k, k, 0.1, False), want) < 1e-5


def _smol(layout: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    from ollmlx.runner.engines.mlx import host
    from ollmlx.runner.engines.mlx.loader import load_gguf

    monkeypatch.setenv("OLLMLX_CPU_WEIGHTS", layout)
    loaded = load_gguf(smollm2_gguf())
    return loaded.model, host.tune_for_host(loaded.model, generates=False)


def _greedy_logits(model: Any, prompt: list[int], steps: int) -> tuple[list[int], list[Any]]:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array(prompt)[None], cache=cache)[:, -1, :]
    tokens, all_logits = [], []
    for _ in range(steps):
        tokens.append(int(mx.argmax(logits, axis=-1).item()))
        all_logits.append(logits)
        logits = model(mx.array([[tokens[-1]]]), cache=cache)[:, -1, :]
    return tokens, all_logits


def test_smollm2_on_the_kernels_reads_as_the_float32_layout(kernels: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same weights, different arithmetic (x read in int8): fed the same 40-token prompt and then
    the float32 layout's own greedy tokens one at a time, the kernels' logits stay within a few
    percent of its and pick the same next token."""
    import mlx.core as mx

    from ollmlx.runner.engines.mlx.cpu_kernels import layers

    ours, details = _smol("auto", monkeypatch)
    assert "read by ollmlx's CPU kernels" in details["weights"], details
    assert "attention" in details["cpu_kernels"] and "rotary" in details["cpu_kernels"]
    assert any(isinstance(m, layers.KernelLinear) for _, m in ours.named_modules())
    assert ours.model.norm.weight.dtype == mx.float32
    theirs, base = _smol("float32", monkeypatch)
    assert base["weights"].startswith("float32")
    prompt = [(i * 131 + 7) % 40000 + 100 for i in range(40)]
    tokens, want = _greedy_logits(theirs, prompt, 24)
    got = _teacher_forced_logits(ours, prompt, tokens)
    assert max(_relative(g, w) for g, w in zip(got, want, strict=True)) < 5e-2
    picks = [int(mx.argmax(g, axis=-1).item()) for g in got]
    assert sum(p == t for p, t in zip(picks, tokens, strict=True)) >= 22, (picks, tokens)


def _teacher_forced_logits(model: Any, prompt: list[int], tokens: list[int]) -> list[Any]:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    out = [model(mx.array(prompt)[None], cache=cache)[:, -1, :]]
    for t in tokens[:-1]:
        out.append(model(mx.array([[t]]), cache=cache)[:, -1, :])
    return out


def test_the_kernel_layout_keeps_the_codes(kernels: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """4-bit codes and 16-bit scales stay as loaded: ~1/6 of the float32 layout's bytes."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    ours, _ = _smol("auto", monkeypatch)
    theirs, _ = _smol("float32", monkeypatch)

    def nbytes(model: Any) -> int:
        return sum(v.nbytes for _, v in tree_flatten(model.parameters()) if isinstance(v, mx.array))

    assert nbytes(ours) * 4 < nbytes(theirs)


def test_without_the_kernels_the_float32_layout_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx import cpu_kernels

    monkeypatch.setenv("OLLMLX_CPU_KERNELS", "0")
    cpu_kernels.load.cache_clear()
    try:
        _, details = _smol("auto", monkeypatch)
    finally:
        cpu_kernels.load.cache_clear()
    assert details["cpu_kernels"] == "off (OLLMLX_CPU_KERNELS=0)"
    assert details["weights"].startswith("float32")


def test_a_host_without_cmake_is_told_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ollmlx.runner.engines.mlx.cpu_kernels import build

    monkeypatch.setenv("OLLMLX_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake, no compiler
    with pytest.raises(build.BuildError, match="cmake is not installed"):
        build.ensure_built()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_a_fresh_cache_builds_the_kernels_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build, from sources to a loadable module, in an empty cache; a second call reuses it."""
    from ollmlx.runner.engines.mlx.cpu_kernels import build

    monkeypatch.setenv("OLLMLX_KERNEL_CACHE", str(tmp_path))
    folder = build.ensure_built()
    library = build.library_path()
    assert library is not None and library.parent == folder
    stamp = library.stat().st_mtime_ns
    assert build.ensure_built() == folder and library.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [folder.name]
    # and it loads in a fresh interpreter
    import subprocess
    import sys

    code = ("import importlib.util, mlx.core as mx; s = importlib.util.spec_from_file_location('_cpu_kernels', "
            f"{str(library)!r}); m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.attention(mx.ones((1, 1, 1, 8)), mx.ones((1, 1, 2, 8)), mx.ones((1, 1, 2, 8)), 1.0, False).sum())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0 and "8" in done.stdout, done.stderr


def test_a_served_mlx_runner_uses_the_kernels_and_says_so(kernels: Any, tmp_path: Path) -> None:
    """Through the server: the runner lays SmolLM2 out for the kernels, logs it, and answers."""
    import ollama

    from helpers import create_smollm2, running_server

    with running_server(tmp_path, {"OLLMLX_ENGINE": "mlx"}) as server:
        create_smollm2(server)
        client = ollama.Client(host=server.url)
        r = client.chat(model="smollm2:135m", messages=[{"role": "user", "content": "What is the capital of France?"}],
                        options={"temperature": 0, "num_predict": 16})
        assert "Paris" in r.message.content
        ready = next(line for line in server.log().splitlines() if "mlx engine ready" in line)
        assert "read by ollmlx's CPU kernels" in ready and "attention" in ready, ready
