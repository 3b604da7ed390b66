"""Go durations and keep_alive (spec §8, §22 OLLAMA_KEEP_ALIVE / OLLAMA_LOAD_TIMEOUT)."""

from __future__ import annotations

import math

import pytest

from ollmlx.durations import (
    MAX_DURATION_NS,
    GoDurationError,
    KeepAliveError,
    env_var_value,
    format_go_duration,
    format_go_duration_ns,
    go_type_name,
    keep_alive_from_env,
    keep_alive_to_json,
    load_timeout_from_env,
    parse_go_duration,
    parse_go_duration_ns,
    parse_keep_alive,
)

# spec §8: Go time.ParseDuration syntax
PARSE_OK = [
    ("0", 0),
    ("-0", 0),
    ("+0", 0),
    ("5m", 300 * 10**9),
    ("1h30m", 5400 * 10**9),
    ("300ms", 300 * 10**6),
    ("1.5h", 5400 * 10**9),
    ("-1m", -60 * 10**9),
    ("+5s", 5 * 10**9),
    ("1ns", 1),
    ("1us", 1000),
    ("1µs", 1000),  # U+00B5
    ("1μs", 1000),  # U+03BC
    ("1.5s", 1_500_000_000),
    (".5s", 500_000_000),
    ("5.s", 5 * 10**9),
    ("1h1m1s1ms1us1ns", 3661 * 10**9 + 10**6 + 10**3 + 1),
    ("2h45m", 9900 * 10**9),
    ("0s", 0),
    ("0.000000001s", 1),
    ("9223372036854775807ns", MAX_DURATION_NS),
    ("-9223372036854775808ns", -(2**63)),
    ("2562047h47m16.854775807s", MAX_DURATION_NS),
]


@pytest.mark.parametrize(("text", "ns"), PARSE_OK)
def test_parse_go_duration_ok(text: str, ns: int) -> None:
    """spec §8: Go duration strings parse to exact nanoseconds."""
    assert parse_go_duration_ns(text) == ns
    assert parse_go_duration(text) == ns / 1e9


PARSE_ERR = [
    ("3600", 'time: missing unit in duration "3600"'),
    ("1h30", 'time: missing unit in duration "1h30"'),
    ("abc", 'time: invalid duration "abc"'),
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    (".", 'time: invalid duration "."'),
    (".s", 'time: invalid duration ".s"'),
    ("-.s", 'time: invalid duration "-.s"'),
    ("5 m", 'time: unknown unit " m" in duration "5 m"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1.5e3s", 'time: unknown unit "e" in duration "1.5e3s"'),
    ("1sec", 'time: unknown unit "sec" in duration "1sec"'),
    (" 5m", 'time: invalid duration " 5m"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ('"5m"', 'time: invalid duration "\\"5m\\""'),
    ("5é", 'time: unknown unit "\\xc3\\xa9" in duration "5\\xc3\\xa9"'),
    ("\n", 'time: invalid duration "\\x0a"'),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERR)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    """spec §8: error texts are Go's time package messages (with time.quote escaping)."""
    with pytest.raises(GoDurationError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


FORMAT = [
    (0, "0s"),
    (1, "1ns"),
    (999, "999ns"),
    (1000, "1µs"),
    (1500, "1.5µs"),
    (1_000_000, "1ms"),
    (1_500_000, "1.5ms"),
    (300_000_000, "300ms"),
    (1_000_000_000, "1s"),
    (1_500_000_000, "1.5s"),
    (59 * 10**9, "59s"),
    (60 * 10**9, "1m0s"),
    (300 * 10**9, "5m0s"),
    (3600 * 10**9, "1h0m0s"),
    (5400 * 10**9, "1h30m0s"),
    (90061 * 10**9 + 1, "25h1m1.000000001s"),
    (-60 * 10**9, "-1m0s"),
    (-1, "-1ns"),
    (MAX_DURATION_NS, "2562047h47m16.854775807s"),
    (-(2**63), "-2562047h47m16.854775808s"),
]


@pytest.mark.parametrize(("ns", "text"), FORMAT)
def test_format_go_duration_ns(ns: int, text: str) -> None:
    """spec §8: Go Duration.String() formatting edge cases."""
    assert format_go_duration_ns(ns) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.3, "300ms"),
        (300, "5m0s"),
        (5400.0, "1h30m0s"),
        (1e-6, "1µs"),
        (math.inf, "2562047h47m16.854775807s"),
    ],
)
def test_format_go_duration_seconds(seconds: float, text: str) -> None:
    """spec §8: float seconds round to the nanosecond; inf is MaxInt64."""
    assert format_go_duration(seconds) == text


@pytest.mark.parametrize("text", ["5m0s", "1h30m0s", "300ms", "1.5µs", "25h1m1.000000001s", "-1m0s"])
def test_duration_round_trip(text: str) -> None:
    """spec §8: String() output parses back to the same value."""
    assert format_go_duration_ns(parse_go_duration_ns(text)) == text


KEEP_ALIVE = [
    (None, None),
    (0, 0.0),
    (300, 300.0),
    (1.5, 1.5),
    (-1, math.inf),
    (-0.5, math.inf),
    ("5m", 300.0),
    ("1h30m", 5400.0),
    ("300ms", 0.3),
    ("0", 0.0),
    ("0s", 0.0),
    ("-1m", math.inf),
    ("-1s", math.inf),
    (1e30, math.inf),
    (10**400, math.inf),
    (-(10**400), math.inf),
]


@pytest.mark.parametrize(("value", "expected"), KEEP_ALIVE)
def test_parse_keep_alive(value: object, expected: float | None) -> None:
    """spec §8: numbers are seconds, strings Go durations, negative = forever, null unset."""
    assert parse_keep_alive(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "Unsupported type: 'bool'"),
        (False, "Unsupported type: 'bool'"),
        ([1], "Unsupported type: '[]interface {}'"),
        ({"a": 1}, "Unsupported type: 'map[string]interface {}'"),
    ],
)
def test_parse_keep_alive_bad_type(value: object, message: str) -> None:
    """spec §8: other JSON types -> 400 Unsupported type with Go's reflect type name."""
    with pytest.raises(KeepAliveError) as info:
        parse_keep_alive(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [("3600", 'time: missing unit in duration "3600"'), ("forever", 'time: invalid duration "forever"')],
)
def test_parse_keep_alive_bad_string(value: str, message: str) -> None:
    """spec §8: a unitless non-zero string is a 400 with Go's message."""
    with pytest.raises(GoDurationError) as info:
        parse_keep_alive(value)
    assert str(info.value) == message


def test_go_type_names() -> None:
    """spec §8: reflect.TypeOf names for JSON-decoded values."""
    assert go_type_name(1.0) == "float64"
    assert go_type_name("x") == "string"


@pytest.mark.parametrize(
    ("seconds", "json_value"),
    [(-1.0, -1), (300.0, "5m0s"), (0.0, "0s"), (math.inf, "2562047h47m16.854775807s")],
)
def test_keep_alive_to_json(seconds: float, json_value: object) -> None:
    """spec §8: serialised form: negative -> -1, otherwise the Go duration string."""
    assert keep_alive_to_json(seconds) == json_value


ENV = [
    (None, 300.0),
    ("", 300.0),
    ("   ", 300.0),
    ("10m", 600.0),
    ("3600", 3600.0),
    ("0", 0.0),
    ("-1", math.inf),
    ("-1m", math.inf),
    ('"30s"', 30.0),
    ("'30s'", 30.0),
    (" 1h ", 3600.0),
    ("garbage", 300.0),
    ("1.5", 300.0),
    ("10000000000", math.inf),  # Go's Duration(n)*time.Second wraps negative
]


@pytest.mark.parametrize(("value", "expected"), ENV)
def test_keep_alive_from_env(value: str | None, expected: float) -> None:
    """spec §22: OLLAMA_KEEP_ALIVE accepts a duration or integer seconds; default 5m."""
    assert keep_alive_from_env(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 300.0), ("0", math.inf), ("-5", math.inf), ("10", 10.0), ("2m", 120.0)]
)
def test_load_timeout_from_env(value: str | None, expected: float) -> None:
    """spec §22: OLLAMA_LOAD_TIMEOUT, <=0 is infinite."""
    assert load_timeout_from_env(value) == expected


def test_env_var_value_trims_space_then_quotes() -> None:
    """spec §22: values are trimmed of whitespace and quotes."""
    assert env_var_value('  "5m"  ') == "5m"
    assert env_var_value(None) == ""
