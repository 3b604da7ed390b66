"""Model names (spec §15) and their manifest paths (spec §16)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from ollmlx.store.names import (
    MISSING_PART,
    ModelName,
    is_valid_namespace,
    is_valid_part,
    names_equal_fold,
    parse_name,
    parse_name_bare,
)

# spec §15: (input, host, namespace, model, tag, scheme)
PARSE = [
    ("llama3.2", "registry.ollama.ai", "library", "llama3.2", "latest", "https"),
    ("llama3.2:1b", "registry.ollama.ai", "library", "llama3.2", "1b", "https"),
    ("user/m:tag", "registry.ollama.ai", "user", "m", "tag", "https"),
    ("user/m", "registry.ollama.ai", "user", "m", "latest", "https"),
    ("host:5000/ns/m:tag", "host:5000", "ns", "m", "tag", "https"),
    ("host:5000/ns/m", "host:5000", "ns", "m", "latest", "https"),
    ("example.com/ns/m:7b-q4_K_M", "example.com", "ns", "m", "7b-q4_K_M", "https"),
    ("http://localhost:5000/ns/m:t", "localhost:5000", "ns", "m", "t", "http"),
    ("https://ollama.com/ns/m", "ollama.com", "ns", "m", "latest", "https"),
    (
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "hf.co",
        "bartowski",
        "Llama-3.2-1B-Instruct-GGUF",
        "Q4_K_M",
        "https",
    ),
]


@pytest.mark.parametrize(("text", "host", "namespace", "model", "tag", "scheme"), PARSE)
def test_parse_name_defaults(text: str, host: str, namespace: str, model: str, tag: str, scheme: str) -> None:
    """spec §15: defaults host/namespace/tag/scheme; tag split only after the last '/'."""
    name = parse_name(text)
    assert (name.host, name.namespace, name.model, name.tag, name.scheme) == (
        host,
        namespace,
        model,
        tag,
        scheme,
    )
    assert name.is_valid()


def test_parse_name_bare_has_no_defaults() -> None:
    """spec §15: the bare parse leaves absent parts empty."""
    bare = parse_name_bare("m")
    assert (bare.host, bare.namespace, bare.model, bare.tag, bare.scheme) == ("", "", "m", "", "")
    assert parse_name_bare("ns/m:t") == ModelName("", "ns", "m", "t")


DISPLAY = [
    ("llama3.2", "llama3.2:latest", "registry.ollama.ai/library/llama3.2:latest"),
    ("llama3.2:1b", "llama3.2:1b", "registry.ollama.ai/library/llama3.2:1b"),
    ("user/m:tag", "user/m:tag", "registry.ollama.ai/user/m:tag"),
    ("library/m", "m:latest", "registry.ollama.ai/library/m:latest"),
    ("host:5000/ns/m:tag", "host:5000/ns/m:tag", "host:5000/ns/m:tag"),
    ("host/library/m", "host/library/m:latest", "host/library/m:latest"),
    ("REGISTRY.OLLAMA.AI/LIBRARY/M", "M:latest", "REGISTRY.OLLAMA.AI/LIBRARY/M:latest"),
    ("http://h/ns/m", "h/ns/m:latest", "h/ns/m:latest"),
]


@pytest.mark.parametrize(("text", "shortest", "long"), DISPLAY)
def test_display_forms(text: str, shortest: str, long: str) -> None:
    """spec §15: DisplayShortest drops default host/namespace and always shows :tag."""
    name = parse_name(text)
    assert name.display_shortest() == shortest
    assert name.display_long() == long
    assert str(name) == long


def test_capability_error_uses_long_form() -> None:
    """spec §19: capability errors name the model in host/namespace/model:tag form."""
    assert f"{parse_name('x').display_long()} does not support tools" == (
        "registry.ollama.ai/library/x:latest does not support tools"
    )


INVALID = [
    "",
    ":",
    "m:",
    ":tag",
    "/m",
    "ns/",
    "a/b/",
    "/ns/m",
    "h//m",
    "..",
    "../x",
    "x/../y",
    "a/b/c/d",
    "m:t/x",
    "-m",
    ".m",
    "m:-t",
    "m:t:u",
    "m:t@sha256:abc",
    "ns.x/m",
    "m\x00",
    "m:t\x00",
    "m n",
    "m\\n",
    "mødel",
    "m" * 81,
    "m:" + "t" * 81,
    "n" * 81 + "/m",
    "h" * 351 + "/ns/m",
    "-host/ns/m",
    "host/ns-/m:t:",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_names(text: str) -> None:
    """spec §15: part rules (charset, first char, lengths, empty parts) reject these."""
    assert not parse_name(text).is_valid()


VALID = [
    "host/_ns/m_:_t",
    "m" * 80,
    "m:" + "t" * 80,
    "n" * 80 + "/m",
    "h" * 350 + "/ns/m",
    "a.b-c_d:1.2-3_4",
    "my-ns/m",
    "h-1.x:443/n_s/m",
    "0/0/0:0",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_names(text: str) -> None:
    """spec §15: boundary lengths and every allowed character."""
    assert parse_name(text).is_valid()


def test_missing_part_marker() -> None:
    """spec §15: an empty part after a separator becomes an invalid marker."""
    assert parse_name("m:").tag == MISSING_PART
    assert parse_name("a/b/").model == MISSING_PART


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        ("host", "a:1", True),
        ("namespace", "a:1", False),
        ("namespace", "a.b", False),
        ("model", "a.b", True),
        ("model", "a:b", False),
        ("tag", "a/b", False),
        ("tag", "", False),
    ],
)
def test_is_valid_part(kind: str, value: str, ok: bool) -> None:
    """spec §15: per-kind character sets."""
    assert is_valid_part(kind, value) is ok


def test_is_valid_namespace() -> None:
    """spec §15: namespaces have no dots."""
    assert is_valid_namespace("user-1")
    assert not is_valid_namespace("user.1")


def test_case_insensitive_match() -> None:
    """spec §15: matching existing names is case-insensitive."""
    assert parse_name("Llama3:Latest").equal_fold(parse_name("llama3"))
    assert names_equal_fold("USER/M:T", "registry.ollama.ai/user/m:t")
    assert not names_equal_fold("m:a", "m:b")
    assert parse_name("M").fold_key() == parse_name("m").fold_key()
    assert parse_name("M") != parse_name("m")


def test_scheme_not_part_of_equality() -> None:
    """spec §15: the scheme is a transport detail, not part of the identity."""
    assert parse_name("http://h/ns/m") == parse_name("h/ns/m")
    assert parse_name("http://h/ns/m").base_url() == "http://h"
    assert parse_name("h/ns/m").base_url() == "https://h"


def test_manifest_relpath_round_trip() -> None:
    """spec §16: manifests/<host>/<namespace>/<model>/<tag>."""
    name = parse_name("llama3.2")
    rel = name.manifest_relpath()
    assert rel == Path("registry.ollama.ai", "library", "llama3.2", "latest")
    assert ModelName.from_manifest_relpath(rel) == name
    assert ModelName.from_manifest_relpath("host:5000/ns/m/t") == parse_name("host:5000/ns/m:t")
    assert ModelName.from_manifest_relpath(PurePosixPath("a/b/c/d")) == ModelName("a", "b", "c", "d")


@pytest.mark.parametrize("rel", ["a/b/c", "a/b/c/d/e", "a/b/../d", "a/b/c/.hidden", "a//c/d", ""])
def test_from_manifest_relpath_rejects(rel: str) -> None:
    """spec §16: discovery accepts exactly 4 valid levels."""
    assert ModelName.from_manifest_relpath(rel) is None


def test_manifest_relpath_invalid_raises() -> None:
    """spec §16: an invalid name never maps to a path."""
    with pytest.raises(ValueError):
        parse_name("../x").manifest_relpath()
