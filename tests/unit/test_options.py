"""Runtime options / PARAMETERs (spec §7) and /api/show parameters formatting."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from ollmlx.options import (
    DEFAULT_CONTEXT_LENGTH,
    LOAD_TIME_KEYS,
    OPTION_SPECS,
    OptionTypeError,
    ParameterError,
    apply_options,
    context_length_from_env,
    default_options,
    format_parameters,
    format_params,
    go_format_float,
    go_format_value,
    go_parse_bool,
    go_parse_float32,
    go_parse_int,
    go_quote,
    go_sharp_v,
    load_time_options,
    merge_options,
    parse_parameter,
)

# spec §7: Ollama's DefaultOptions()
DEFAULTS: dict[str, Any] = {
    "num_batch": 512,
    "num_gpu": -1,
    "main_gpu": None,
    "use_mmap": None,
    "num_thread": 0,
    "draft_num_predict": 4,
    "num_keep": 4,
    "seed": -1,
    "num_predict": -1,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_last_n": 64,
    "temperature": 0.8,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "stop": [],
}


def test_default_options_table() -> None:
    """spec §7: every option key with Ollama's default."""
    opts = default_options(env={})
    assert opts == {"num_ctx": DEFAULT_CONTEXT_LENGTH, **DEFAULTS}
    assert set(opts) == set(OPTION_SPECS)


def test_load_time_keys() -> None:
    """spec §7: load-time options trigger a reload when changed."""
    expected = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "draft_num_predict"}
    assert expected == LOAD_TIME_KEYS
    assert set(load_time_options(default_options(2048))) == LOAD_TIME_KEYS


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 4096),
        ({"OLLAMA_CONTEXT_LENGTH": "8192"}, 8192),
        ({"OLLMLX_CONTEXT_LENGTH": "2048", "OLLAMA_CONTEXT_LENGTH": "8192"}, 2048),
        ({"OLLAMA_CONTEXT_LENGTH": ' "16384" '}, 16384),
        ({"OLLAMA_CONTEXT_LENGTH": "0"}, 4096),
        ({"OLLAMA_CONTEXT_LENGTH": "-1"}, 4096),
        ({"OLLAMA_CONTEXT_LENGTH": "lots"}, 4096),
        ({"OLLMLX_CONTEXT_LENGTH": "bad", "OLLAMA_CONTEXT_LENGTH": "1024"}, 1024),
    ],
)
def test_num_ctx_default_from_env(env: dict[str, str], expected: int) -> None:
    """spec §7/§22: num_ctx default = OLLMLX_/OLLAMA_CONTEXT_LENGTH, else 4096 (no VRAM tiers)."""
    assert context_length_from_env(env) == expected
    assert default_options(env=env)["num_ctx"] == expected


def test_default_options_explicit_num_ctx() -> None:
    """spec §7: an explicit num_ctx overrides the environment."""
    assert default_options(1234, env={"OLLAMA_CONTEXT_LENGTH": "8192"})["num_ctx"] == 1234


def test_merge_layers_in_order() -> None:
    """spec §7: defaults, then model params, then request options."""
    model = {"temperature": 0.2, "stop": ["<|eot|>"], "num_ctx": 8192}
    request = {"temperature": 0.5, "seed": 42}
    opts = merge_options(default_options(env={}), model, request)
    assert opts["temperature"] == 0.5
    assert opts["stop"] == ["<|eot|>"]
    assert opts["num_ctx"] == 8192
    assert opts["seed"] == 42
    assert opts["top_k"] == 40


def test_merge_does_not_mutate_inputs() -> None:
    """spec §7: merging copies the defaults layer."""
    defaults = default_options(env={})
    merge_options(defaults, {"stop": ["x"]}, {"temperature": 0.1})
    assert defaults["stop"] == [] and defaults["temperature"] == 0.8
    assert merge_options(None, None, None)["top_k"] == 40


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("num_predict", 128, 128),
        ("num_predict", 12.9, 12),  # JSON numbers truncate for int fields
        ("num_predict", -3.7, -3),
        ("main_gpu", 1.0, 1),
        ("temperature", 1, 1.0),
        ("top_p", 0.5, 0.5),
        ("use_mmap", False, False),
        ("stop", ["a", "b"], ["a", "b"]),
        ("stop", [], []),
    ],
)
def test_from_map_types(key: str, value: Any, stored: Any) -> None:
    """spec §7: FromMap accepts JSON numbers for int fields (truncated) and float fields."""
    opts = apply_options(default_options(env={}), {key: value})
    assert opts[key] == stored
    assert type(opts[key]) is type(stored)


def test_from_map_null_is_skipped() -> None:
    """spec §7: a null option leaves the current value."""
    assert apply_options(default_options(env={}), {"temperature": None})["temperature"] == 0.8


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", "hot", 'option "temperature" must be of type float32'),
        ("temperature", True, 'option "temperature" must be of type float32'),
        ("top_p", [0.5], 'option "top_p" must be of type float32'),
        ("num_ctx", "2048", 'option "num_ctx" must be of type integer'),
        ("num_ctx", True, 'option "num_ctx" must be of type integer'),
        ("main_gpu", "0", 'option "main_gpu" must be of type integer'),
        ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
        ("use_mmap", "true", 'option "use_mmap" must be of type boolean'),
        ("stop", "###", 'option "stop" must be of type array'),
        ("stop", {"a": 1}, 'option "stop" must be of type array'),
        ("stop", ["ok", 1], 'option "stop" must be of an array of strings'),
    ],
)
def test_from_map_type_errors(key: str, value: Any, message: str) -> None:
    """spec §7: type errors use Ollama's exact messages (HTTP 500)."""
    with pytest.raises(OptionTypeError) as info:
        merge_options(default_options(env={}), {}, {key: value})
    assert str(info.value) == message


def test_model_params_type_error_also_raises() -> None:
    """spec §7: the model layer goes through the same FromMap checks."""
    with pytest.raises(OptionTypeError):
        merge_options(default_options(env={}), {"seed": "x"}, {})


@pytest.mark.parametrize(
    "key", ["numa", "penalize_newline", "mirostat", "tfs_z", "low_vram", "f16_kv", "bogus"]
)
def test_unknown_and_legacy_keys_ignored(key: str, caplog: pytest.LogCaptureFixture) -> None:
    """spec §7: unknown/legacy request keys are ignored with an "invalid option provided" warning."""
    with caplog.at_level(logging.WARNING, logger="ollmlx.options"):
        opts = merge_options(default_options(env={}), {}, {key: True, "top_k": 5})
    assert key not in opts
    assert opts["top_k"] == 5
    assert any("invalid option provided" in r.getMessage() and key in r.getMessage() for r in caplog.records)


PARAMS = [
    ("temperature", "0.7", 0.7),
    ("temperature", "1", 1.0),
    ("top_p", "0.123456789", 0.12345679),  # float32 precision, shortest form
    ("top_p", "1e-3", 0.001),
    ("min_p", ".05", 0.05),
    ("num_ctx", "4096", 4096),
    ("num_ctx", "+8", 8),
    ("seed", "-1", -1),
    ("main_gpu", "1", 1),
    ("use_mmap", "true", True),
    ("use_mmap", "F", False),
    ("use_mmap", "0", False),
    ("stop", "### User:", ["### User:"]),
    ("stop", ["a", "b"], ["a", "b"]),
]


@pytest.mark.parametrize(("key", "value", "expected"), PARAMS)
def test_parse_parameter(key: str, value: Any, expected: Any) -> None:
    """spec §7/§14: PARAMETER values are typed by the Options struct."""
    result = parse_parameter(key, value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bogus", "1", "unknown parameter 'bogus'"),
        ("numa", "true", "unknown parameter 'numa'"),
        ("Temperature", "0.5", "unknown parameter 'Temperature'"),
        ("temperature", "hot", "invalid float value [hot]"),
        ("temperature", "1e39", "invalid float value [1e39]"),
        ("temperature", "0x1.8", "invalid float value [0x1.8]"),
        ("temperature", "", "invalid float value []"),
        ("num_ctx", "1.5", "invalid int value [1.5]"),
        ("num_ctx", "1_000", "invalid int value [1_000]"),
        ("num_ctx", "9223372036854775808", "invalid int value [9223372036854775808]"),
        ("main_gpu", "x", "invalid int value [x]"),
        ("use_mmap", "yes", "invalid bool value [yes]"),
        ("top_k", ["a", "b"], "invalid int value [a b]"),
    ],
)
def test_parse_parameter_errors(key: str, value: Any, message: str) -> None:
    """spec §7: unknown parameter '<k>', invalid float/int/bool value [..]."""
    with pytest.raises(ParameterError) as info:
        parse_parameter(key, value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "key",
    [
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    ],
)
def test_deprecated_parameters_skipped(key: str, caplog: pytest.LogCaptureFixture) -> None:
    """spec §7: parser.go deprecatedParameters warn and are skipped in a Modelfile."""
    with caplog.at_level(logging.WARNING, logger="ollmlx.options"):
        assert parse_parameter(key, "1") is None
    assert any(f"parameter {key} is deprecated" in r.getMessage() for r in caplog.records)


def test_cli_set_parameter_rejects_deprecated() -> None:
    """spec §7: the CLI's /set parameter goes straight to FormatParams (unknown parameter)."""
    with pytest.raises(ParameterError, match="unknown parameter 'mirostat'"):
        format_params({"mirostat": ["1"]})
    assert format_params({"stop": ["a", "b"], "top_k": ["3", "ignored"]}) == {"stop": ["a", "b"], "top_k": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1_000.5", 1000.5),
        ("0x1p-2", 0.25),
        ("0X1.8P1", 3.0),
        ("inf", math.inf),
        ("-Infinity", -math.inf),
        ("1.", 1.0),
        ("1e+2", 100.0),
        ("_1", None),
        ("1_", None),
        ("1__0", None),
        ("1e_2", None),
        ("+nan", None),
        ("infinit", None),
        ("1.5f", None),
        (" 1", None),
    ],
)
def test_go_parse_float32(text: str, expected: float | None) -> None:
    """spec §7: strconv.ParseFloat(s, 32) syntax."""
    assert go_parse_float32(text) == expected
    assert math.isnan(go_parse_float32("NaN") or 0.0)


def test_go_parse_int_and_bool() -> None:
    """spec §7: strconv.ParseInt base 10 and ParseBool."""
    assert go_parse_int("-9223372036854775808") == -(2**63)
    assert go_parse_int("0x10") is None
    assert go_parse_int("") is None
    assert [go_parse_bool(s) for s in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [go_parse_bool(s) for s in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
    assert go_parse_bool("tRUE") is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.7, "0.7"),
        (42, "42"),
        (40.0, "40"),
        (0.0, "0"),
        (-0.0, "-0"),
        (-1, "-1"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (1.5e-300, "1.5e-300"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_go_format_float(value: float, text: str) -> None:
    """spec §7: Go %v/%#v of a float64 is %g with the shortest digits."""
    assert go_format_float(float(value)) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("foo", '"foo"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("tab\tnl\ncr\r", '"tab\\tnl\\ncr\\r"'),
        ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
        ("héllo 👋", '"héllo 👋"'),
        ("\u200b", '"\\u200b"'),
        ("<|eot_id|>", '"<|eot_id|>"'),
    ],
)
def test_go_quote(value: str, text: str) -> None:
    """spec §7: strings in /api/show parameters are strconv.Quote'd."""
    assert go_quote(value) == text


def test_go_value_verbs() -> None:
    """spec §7: %#v and %v for the JSON value kinds."""
    assert go_sharp_v(True) == "true"
    assert go_sharp_v(None) == "<nil>"
    assert go_sharp_v(["a", 1]) == '[]interface {}{"a", 1}'
    assert go_format_value("a b") == "a b"
    assert go_format_value(0.5) == "0.5"
    assert go_format_value(["a", 2.0]) == "[a 2]"
    assert go_format_value({"b": 1, "a": False}) == "map[a:false b:1]"


def test_format_parameters_show() -> None:
    """spec §7: /api/show parameters: "%-30s %#v" per value, lists one line each."""
    params = {"top_p": 0.9, "stop": ["foo", "bar"], "seed": 42, "use_mmap": False}
    text = format_parameters(params)
    assert text.split("\n") == [
        "seed                           42",
        'stop                           "foo"',
        'stop                           "bar"',
        "top_p                          0.9",
        "use_mmap                       false",
    ]
    # Ollama's own test normalises whitespace and sorts the lines.
    assert sorted(" ".join(line.split()) for line in text.split("\n")) == [
        "seed 42",
        'stop "bar"',
        'stop "foo"',
        "top_p 0.9",
        "use_mmap false",
    ]
    assert format_parameters({}) == ""
    assert format_parameters(None) == ""


def test_format_parameters_long_key_and_float32_values() -> None:
    """spec §7: %-30s pads but never truncates; stored float32 values print shortest."""
    key = "k" * 35
    assert format_parameters({key: 1}) == key + " 1"
    assert (
        format_parameters({"temperature": parse_parameter("temperature", "0.7")})
        == "temperature                    0.7"
    )
