"""The Modelfile grammar (spec §14), ported from Ollama's parser/parser.go behaviour."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ollmlx.store.modelfile import (
    Command,
    Modelfile,
    ModelfileError,
    build_model_modelfile,
    is_valid_semver,
    normalize_requires,
    parse_modelfile,
    parse_modelfile_bytes,
    quote_value,
    unquote_value,
)

INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'

M = "model"
TEMPLATE_BODY = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)

# spec §14: (input, expected commands as (name, args))
PARSE_OK: list[tuple[str, list[tuple[str, str]]]] = [
    ("FROM foo", [(M, "foo")]),
    ("from foo", [(M, "foo")]),
    ("FrOm foo\nSyStEm hi", [(M, "foo"), ("system", "hi")]),
    ("\ufeffFROM foo", [(M, "foo")]),  # UTF-8 BOM tolerated
    ('FROM "FOO  BAR  "', [(M, "FOO  BAR  ")]),
    ("FROM     FOOO BAR    ", [(M, "FOOO BAR")]),
    ("FROM /what/is/the path ", [(M, "/what/is/the path")]),
    ("FROM llama3:7b-instruct-q4_K_M", [(M, "llama3:7b-instruct-q4_K_M")]),
    ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), (M, "foo")]),
    ("PARAMETER what the \nFROM lemons make lemonade ", [("what", "the"), (M, "lemons make lemonade")]),
    ("\n# comment\nFROM foo\n\t", [(M, "foo")]),
    ("  # indented comment\n  FROM foo # not a comment", [(M, "foo # not a comment")]),
    ("FROM foo\r\nSYSTEM hi\r\n", [(M, "foo"), ("system", "hi")]),
    ("FROM foo\nSYSTEM a\tb", [(M, "foo"), ("system", "a\tb")]),
    ("FROM foo\nSYSTEM a\x00b\u200bc", [(M, "foo"), ("system", "abc")]),  # non-printables dropped
    ("FROM test\n\tSYSTEM 你好👋", [(M, "test"), ("system", "你好👋")]),
    (
        '\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nTEMPLATE """'
        + TEMPLATE_BODY
        + '"""    \n',
        [
            (M, "model1"),
            ("adapter", "adapter1"),
            ("license", "MIT"),
            ("param1", "value1"),
            ("template", TEMPLATE_BODY),
        ],
    ),
    ('FROM "     model 1"\nLICENSE "MIT       "', [(M, "     model 1"), ("license", "MIT       ")]),
    ("FROM foo\nDRAFT ./assistant", [(M, "foo"), ("draft", "./assistant")]),
    ("FROM foo\nRENDERER r1\nPARSER p1", [(M, "foo"), ("renderer", "r1"), ("parser", "p1")]),
    ("FROM foo\nREQUIRES 0.14.0", [(M, "foo"), ("requires", "0.14.0")]),
    (
        "FROM foo\nMESSAGE system You are a file parser.",
        [(M, "foo"), ("message", "system: You are a file parser.")],
    ),
    (
        "FROM foo\nMESSAGE user Hey there!\nMESSAGE assistant Hello!\n",
        [(M, "foo"), ("message", "user: Hey there!"), ("message", "assistant: Hello!")],
    ),
    ('FROM foo\nMESSAGE system """\nmulti\n"""\n\t', [(M, "foo"), ("message", "system: \nmulti\n")]),
    ("FROM foo\nPARAMETER  temperature 1", [(M, "foo"), ("", "temperature 1")]),  # Ollama quirk
    ("FROM foo\nPARAMETER Temp_2 x", [(M, "foo"), ("Temp_2", "x")]),
    ("FROM \n", [(M, "")]),
]

QUOTED: list[tuple[str, str]] = [
    ('SYSTEM """\nThis is a\nmultiline system.\n"""\n\t\t\t', "\nThis is a\nmultiline system.\n"),
    ('SYSTEM """\nThis is a\nmultiline system."""', "\nThis is a\nmultiline system."),
    ('SYSTEM """This is a\nmultiline system."""', "This is a\nmultiline system."),
    ('SYSTEM """This is a multiline system."""', "This is a multiline system."),
    ('SYSTEM """\nwith "quotes".\n"""\n', '\nwith "quotes".\n'),
    ('SYSTEM """"""\n', ""),
    ('SYSTEM ""\n', ""),
    ('SYSTEM "\'"\n', "'"),
    ('SYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n', "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
    ('SYSTEM """   padded   """', "   padded   "),
    ('SYSTEM "a" "b"', 'a" "b'),
    ('SYSTEM "line1\nline2"', "line1\nline2"),
    ('SYSTEM """a\r\nb"""', "a\r\nb"),
    ('TEMPLATE """\n{{ .Prompt }}\n"""', "\n{{ .Prompt }}\n"),
]

STOP_VALUES: list[tuple[str, str]] = [
    ("stop ### User:", "### User:"),
    ("stop ### User: ", "### User:"),
    ('stop "### User:"', "### User:"),
    ('stop "### User: "', "### User: "),
    ('stop """### User:"""', "### User:"),
    ('stop """### User:\n"""', "### User:\n"),
    ("stop <|eot_id|>", "<|eot_id|>"),
    ("stop </s>", "</s>"),
]


def _cmds(mf: Modelfile) -> list[tuple[str, str]]:
    return [(c.name, c.args) for c in mf.commands]


@pytest.mark.parametrize(("text", "expected"), PARSE_OK)
def test_parse_ok(text: str, expected: list[tuple[str, str]]) -> None:
    """spec §14: instructions, case-insensitivity, comments, BOM, bare and quoted values."""
    assert _cmds(parse_modelfile(text)) == expected


@pytest.mark.parametrize(("body", "value"), QUOTED)
def test_quoted_values(body: str, value: str) -> None:
    """spec §14: "..." and \"\"\"...\"\"\" values, including multi-line ones."""
    mf = parse_modelfile("\nFROM foo\n" + body)
    assert mf.commands[1].args == value


@pytest.mark.parametrize(("line", "value"), STOP_VALUES)
def test_parameter_values(line: str, value: str) -> None:
    """spec §14: PARAMETER key value, value trimmed unless quoted."""
    mf = parse_modelfile(f"FROM foo\nPARAMETER {line}\n")
    assert mf.commands[1] == Command("stop", value)


ERRORS: list[tuple[str, str]] = [
    ("", "no FROM line"),
    ("# only a comment\n", "no FROM line"),
    ("PARAMETER param1 value1", "no FROM line"),
    ("\nFROM foo\nBADCOMMAND param1 value1\n", f"(line 3): {INVALID_COMMAND}"),
    ("FROM foo\nFROMX bar", f"(line 2): {INVALID_COMMAND}"),
    ("FROM\n", f"(line 2): {INVALID_COMMAND}"),  # the newline is counted first, as in Ollama
    ("FROM foo\nSYS-TEM x", f"(line 2): {INVALID_COMMAND}"),
    ("1FROM foo", f"(line 1): {INVALID_COMMAND}"),
    ("FROM foo\r\nBAD x", f"(line 3): {INVALID_COMMAND}"),  # \r and \n both count
    ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", f"(line 3): {INVALID_ROLE}"),
    ("FROM foo\nMESSAGE System hi", f"(line 2): {INVALID_ROLE}"),
    ("\nFROM foo\nMESSAGE system\n", "unexpected EOF: system"),
    ("\nFROM foo\nMESSAGE system", "unexpected EOF"),
    ("FROM foo\nMESSAGE us3r hi", "unexpected EOF: us"),
    ("\nFROM foo\nPARAMETER param1\n", "unexpected EOF: param1"),
    ("FROM foo\nPARAMETER temp.x 1", "unexpected EOF: temp"),
    ("FROM foo\nPARAMETER", "unexpected EOF"),
    ("FROM", "unexpected EOF"),
    ('\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t', "unexpected EOF"),
    ('\nFROM foo\nSYSTEM "\n\t\t\t', "unexpected EOF"),
    ('FROM foo\nSYSTEM """', "unexpected EOF"),
    ('FROM foo\nSYSTEM "hello" world\nLICENSE x\n', "unexpected EOF"),
    ("FROM foo\nREQUIRES latest", "requires must be a valid semver (e.g. 0.14.0)"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    """spec §14: every parser error message exactly as Ollama's."""
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert str(info.value) == message


def test_error_carries_line() -> None:
    """spec §14: ParserError keeps the line number and the bare message."""
    with pytest.raises(ModelfileError) as info:
        parse_modelfile("FROM a\n\nNOPE b")
    assert info.value.line == 3
    assert info.value.msg == INVALID_COMMAND


def test_requires_check_optional() -> None:
    """spec §14: the semver check can be deferred to create time, as in Ollama."""
    assert _cmds(parse_modelfile("FROM a\nREQUIRES x", check_requires=False))[1] == ("requires", "x")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("v0.14.0", True),
        ("v1", True),
        ("v1.2", True),
        ("v1.2.3-rc.1+build.5", True),
        ("v1.2.3-0a", True),
        ("v1.2.3--", True),
        ("v1.2.3-01", False),
        ("v01.2.3", False),
        ("v1.2-rc1", False),
        ("v1.2.3.4", False),
        ("v1.2.3+", False),
        ("1.2.3", False),
        ("v", False),
    ],
)
def test_semver(value: str, ok: bool) -> None:
    """spec §14: REQUIRES is golang.org/x/mod/semver valid (with the v prefix)."""
    assert is_valid_semver(value) is ok


def test_normalize_requires() -> None:
    """spec §14: the v prefix is optional and stripped."""
    assert normalize_requires("0.14.0") == "0.14.0"
    assert normalize_requires("v0.14.0") == "0.14.0"
    with pytest.raises(ModelfileError, match=r"^requires must be a valid semver \(e\.g\. 0\.14\.0\)$"):
        normalize_requires("0.14.0.1")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be", "utf-8"])
def test_parse_bytes_encodings(encoding: str) -> None:
    """spec §14: UTF-8 (with or without BOM) and BOM-marked UTF-16 files."""
    text = "FROM bob\nPARAMETER param1 1\nSYSTEM You are a utf16 file 你好👋.\n"
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert _cmds(parse_modelfile_bytes(data)) == [
        (M, "bob"),
        ("param1", "1"),
        ("system", "You are a utf16 file 你好👋."),
    ]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("two words", "two words"),
        ('has "quote"', 'has "quote"'),
        (" lead", '" lead"'),
        ("trail ", '"trail "'),
        ("multi\nline", '"multi\nline"'),
        ('multi\n"quoted"', '"""multi\n"quoted""""'),
        ("", ""),
    ],
)
def test_quote_rule(value: str, quoted: str) -> None:
    """spec §14: quote only with a newline or edge space; \"\"\" when the value has a quote."""
    assert quote_value(value) == quoted


def test_unquote() -> None:
    """spec §14: unquote reports unterminated quotes."""
    assert unquote_value('"a"') == ("a", True)
    assert unquote_value('"""a"""') == ("a", True)
    assert unquote_value('"a') == ("", False)
    assert unquote_value('""""') == ("", False)
    assert unquote_value("a") == ("a", True)


def test_to_text() -> None:
    """spec §14: Modelfile.String() forms, one command per line."""
    mf = Modelfile(
        [
            Command("model", "foo bar"),
            Command("adapter", "./a.gguf"),
            Command("template", "{{ .Prompt }}\n"),
            Command("system", ' say "hi" '),
            Command("temperature", "0.7"),
            Command("stop", "</s>"),
            Command("message", "user: Hey there!"),
            Command("message", "assistant: line1\nline2"),
            Command("license", "MIT"),
            Command("requires", "0.14.0"),
            Command("draft", "d"),
            Command("renderer", "r"),
            Command("parser", "p"),
        ]
    )
    assert mf.to_text() == (
        "FROM foo bar\n"
        "ADAPTER ./a.gguf\n"
        'TEMPLATE "{{ .Prompt }}\n"\n'
        'SYSTEM """ say "hi" """\n'
        "PARAMETER temperature 0.7\n"
        "PARAMETER stop </s>\n"
        "MESSAGE user Hey there!\n"
        'MESSAGE assistant "line1\nline2"\n'
        "LICENSE MIT\n"
        "REQUIRES 0.14.0\n"
        "DRAFT d\n"
        "RENDERER r\n"
        "PARSER p\n"
    )
    assert str(mf) == mf.to_text()


ROUND_TRIP = [
    "\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nTEMPLATE template1\n"
    "MESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n",
    '\nFROM foo\nMESSAGE system """\nYou are a store greeter. Always respond with "Hello!".\n"""\nMESSAGE user Hey!\n',
    '\nFROM foo\nLICENSE """\nVery long and boring legal text.\nBlah blah blah.\n"Oh look, a quote!"\n"""\n\n'
    "PARAMETER param1 value1\nTEMPLATE template1\n",
    '\nFROM foo\nSYSTEM ""\n',
    'FROM foo\nSYSTEM "  padded  "\nPARAMETER stop "User: "\nPARAMETER stop """\n"""\n',
    'FROM foo\nTEMPLATE """{{ if .System }}{{ .System }}\n{{ end }}"""\nREQUIRES 0.14.0\nDRAFT ./d\n',
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text: str) -> None:
    """spec §14: parse(to_text(parse(x))) == parse(x)."""
    mf = parse_modelfile(text)
    assert parse_modelfile(mf.to_text()) == mf


def test_create_fields() -> None:
    """spec §14: CreateRequest semantics (last TEMPLATE/SYSTEM wins, stop accumulates)."""
    mf = parse_modelfile(
        "FROM test\nFROM ./proj.gguf\nPARAMETER temperature 0.5\nPARAMETER top_k 1\nPARAMETER stop a\n"
        "PARAMETER stop b\nSYSTEM one\nSYSTEM You are a bot.\nTEMPLATE t\nLICENSE license1\nLICENSE license2\n"
        "MESSAGE user Hello there!\nMESSAGE assistant Hi! How are you?\nADAPTER ./lora\nDRAFT ./d\n"
        "RENDERER qwen3\nPARSER qwen3\nREQUIRES v0.14.0\n"
    )
    fields = mf.create_fields()
    assert fields.from_ == ["test", "./proj.gguf"]
    assert fields.parameters == {"temperature": 0.5, "top_k": 1, "stop": ["a", "b"]}
    assert fields.system == "You are a bot."
    assert fields.template == "t"
    assert fields.license == ["license1", "license2"]
    assert fields.messages == [
        {"role": "user", "content": "Hello there!"},
        {"role": "assistant", "content": "Hi! How are you?"},
    ]
    assert fields.adapters == ["./lora"]
    assert fields.drafts == ["./d"]
    assert (fields.renderer, fields.parser, fields.requires) == ("qwen3", "qwen3", "0.14.0")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PARAMETER numa true", "unknown parameter 'numa'"),
        ("PARAMETER temperature hot", "invalid float value [hot]"),
        ("PARAMETER num_ctx 2k", "invalid int value [2k]"),
        ("PARAMETER use_mmap maybe", "invalid bool value [maybe]"),
    ],
)
def test_create_fields_parameter_errors(line: str, message: str) -> None:
    """spec §7/§14: PARAMETER values are typed at create time."""
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(f"FROM x\n{line}\n").create_fields()
    assert str(info.value) == message


def test_create_fields_skips_deprecated(caplog: pytest.LogCaptureFixture) -> None:
    """spec §7: deprecated parameters warn and are skipped."""
    with caplog.at_level(logging.WARNING):
        fields = parse_modelfile("FROM x\nPARAMETER mirostat 2\nPARAMETER top_k 3\n").create_fields()
    assert fields.parameters == {"top_k": 3}
    assert any("parameter mirostat is deprecated" in r.getMessage() for r in caplog.records)


def test_build_model_modelfile_order() -> None:
    """spec §14: show --modelfile order of Ollama's Model.String(); options via Go %v."""
    options: dict[str, Any] = {"stop": ["<|eot|>", "User:"], "temperature": 0.7, "seed": 1234567.0}
    mf = build_model_modelfile(
        "/models/blobs/sha256-abc",
        adapters=["/models/blobs/sha256-ad"],
        draft="/models/blobs/sha256-dr",
        projectors=["/models/blobs/sha256-pr"],
        template="{{ .Prompt }}",
        system="Be brief.",
        renderer="r",
        parser="p",
        options=options,
        licenses=["MIT"],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert mf.to_text() == (
        "FROM /models/blobs/sha256-abc\n"
        "ADAPTER /models/blobs/sha256-ad\n"
        "DRAFT /models/blobs/sha256-dr\n"
        "FROM /models/blobs/sha256-pr\n"
        "TEMPLATE {{ .Prompt }}\n"
        "SYSTEM Be brief.\n"
        "RENDERER r\n"
        "PARSER p\n"
        "PARAMETER seed 1.234567e+06\n"
        "PARAMETER stop <|eot|>\n"
        "PARAMETER stop User:\n"
        "PARAMETER temperature 0.7\n"
        "LICENSE MIT\n"
        "MESSAGE user hi\n"
    )
    assert build_model_modelfile("x").to_text() == "FROM x\n"


def test_ollmlx_engine_parameter() -> None:
    """ollmlx's own `PARAMETER engine` pins a GGUF model to an engine; other values are refused."""
    fields = parse_modelfile("FROM x\nPARAMETER engine llamacpp\n").create_fields()
    assert fields.parameters == {"engine": "llamacpp"}
    with pytest.raises(ModelfileError, match=r"invalid engine value \[cuda\]"):
        parse_modelfile("FROM x\nPARAMETER engine cuda\n").create_fields()
