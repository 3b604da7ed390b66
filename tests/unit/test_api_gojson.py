"""Go encoding/json decoding of request bodies (spec §0, §19; ollmlx/api/gojson.py): the scanner's
syntax errors, json.Decoder's first-value semantics, UnmarshalTypeError texts with field paths,
custom unmarshalers (keep_alive, think, messages, base64 images) and Go's key folding."""

from __future__ import annotations

import base64

import pytest

from ollmlx.api.gojson import EmptyBody, GoDecodeError, StructType, base64_error, decode_body, fold_name
from ollmlx.api.schemas import ChatRequest, GenerateRequest
from ollmlx.api.wire import decode, parse_json, struct_type
from ollmlx.errors import BadRequest

GEN = struct_type(GenerateRequest)
CHAT = struct_type(ChatRequest)


def err(body: bytes, target: StructType = GEN) -> str:
    with pytest.raises(GoDecodeError) as exc:
        decode_body(body, target)
    return str(exc.value)


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "unexpected EOF"),
    (b'{"a"', "unexpected EOF"),
    (b'{"a":', "unexpected EOF"),
    (b'{"a":"x', "unexpected EOF"),
    (b"[1,", "unexpected EOF"),
    (b"tr", "unexpected EOF"),
    (b"12.", "unexpected EOF"),
    (b"}", "invalid character '}' looking for beginning of value"),
    (b"{,}", "invalid character ',' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b'{"a":1 2}', "invalid character '2' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a":01}', "invalid character '1' after object key:value pair"),
    (b'{"a":-}', "invalid character '}' in numeric literal"),
    (b'{"a":1.e5}', "invalid character 'e' after decimal point in numeric literal"),
    (b'{"a":1e+}', "invalid character '}' in exponent of numeric literal"),
    (b'{"a":fals}', "invalid character '}' in literal false (expecting 'e')"),
    (b'{"a":nil}', "invalid character 'i' in literal null (expecting 'u')"),
    (b'{"a":"\\x"}', "invalid character 'x' in string escape code"),
    (b'{"a":"\\u00zz"}', "invalid character 'z' in \\u hexadecimal character escape"),
    (b'{"a":"\n"}', "invalid character '\\n' in string literal"),
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"a":Infinity}', "invalid character 'I' looking for beginning of value"),
    (b'{"a":\x01}', "invalid character '\\x01' looking for beginning of value"),
    ('{"a":é}'.encode(), "invalid character 'Ã' looking for beginning of value"),
])
def test_syntax_errors(body: bytes, message: str) -> None:
    assert err(body) == message


def test_long_strings_are_scanned_whole() -> None:
    """The scanner skips plain runs of a string in one step: what follows a run (an escape, a quote
    inside, a control byte, multi-byte UTF-8) is still read byte by byte, with Go's verdicts."""
    plain = "word " * 20_000 + "é中😀"
    body = ('{"prompt":"' + plain + '\\n\\"q\\" \\u00e9' + plain + '"}').encode()
    assert decode_body(body, GEN)["prompt"] == plain + '\n"q" é' + plain
    assert err(('{"prompt":"' + plain + '\x1f"}').encode()) == "invalid character '\\x1f' in string literal"
    assert err(('{"prompt":"' + plain + '\\q"}').encode()) == "invalid character 'q' in string escape code"
    assert err(('{"prompt":"' + plain).encode()) == "unexpected EOF"
    assert decode_body(b'{' + b" \t\r\n" * 5000 + b'"model" \n:\t "m"  }', GEN) == {"model": "m"}


def test_empty_and_blank_bodies_and_the_first_value_only() -> None:
    for body in (b"", b" \r\n\t"):
        with pytest.raises(EmptyBody):
            decode_body(body, GEN)
    assert decode_body(b"null", GEN) == {}
    assert decode_body(b'{"model":"m"} {"model":"other"} garbage', GEN) == {"model": "m"}
    assert decode_body(b'  {"model":"m"}}}}', GEN) == {"model": "m"}
    with pytest.raises(BadRequest, match="missing request body"):
        parse_json(b"")
    assert parse_json(b'[1, {"a": 2.5}] x') == [1, {"a": 2.5}]


@pytest.mark.parametrize(("body", "target", "message"), [
    (b"1", GEN, "json: cannot unmarshal number into Go value of type api.GenerateRequest"),
    (b"true", GEN, "json: cannot unmarshal bool into Go value of type api.GenerateRequest"),
    (b'{"raw": 1}', GEN, "json: cannot unmarshal number into Go struct field GenerateRequest.raw of type bool"),
    (b'{"top_logprobs": 1e2}', GEN,
     "json: cannot unmarshal number 1e2 into Go struct field GenerateRequest.top_logprobs of type int"),
    (b'{"top_logprobs": 99999999999999999999}', GEN,
     "json: cannot unmarshal number 99999999999999999999 into Go struct field GenerateRequest.top_logprobs of type int"),
    (b'{"context": [1, 2.0]}', GEN,
     "json: cannot unmarshal number 2.0 into Go struct field GenerateRequest.context of type int"),
    (b'{"images": [1]}', GEN, "json: cannot unmarshal number into Go struct field GenerateRequest.images of type api.ImageData"),
    (b'{"messages": [1]}', CHAT, "json: cannot unmarshal number into Go struct field ChatRequest.messages of type api.Alias"),
    (b'{"messages": [{"images": ["%%%"]}]}', CHAT, "illegal base64 data at input byte 0"),
    (b'{"messages": [{"tool_calls": [{"function": {"arguments": []}}]}]}', CHAT,
     "json: cannot unmarshal array into Go struct field ChatRequest.messages.tool_calls.function.arguments of type "
     "map[string]interface {}"),
    (b'{"tools": [{"function": {"parameters": {"required": "x"}}}]}', CHAT,
     "json: cannot unmarshal string into Go struct field ToolFunctionParameters.tools.function.parameters.required of "
     "type []string"),
])
def test_type_mismatches(body: bytes, target: StructType, message: str) -> None:
    assert err(body, target) == message


def test_the_first_mismatch_is_reported_after_the_walk_but_returned_errors_win() -> None:
    assert err(b'{"raw": 1, "stream": "x"}') == \
        "json: cannot unmarshal number into Go struct field GenerateRequest.raw of type bool"
    assert err(b'{"raw": 1, "think": "max2"}') == \
        'invalid think value: "max2" (must be "high", "medium", "low", "max", true, or false)'
    assert err(b'{"raw": 1, "keep_alive": {}}') == "Unsupported type: 'map[string]interface {}'"


def test_values_and_folding() -> None:
    out = decode_body(b'{"MODEL": "a", "model": "b", "Options": {"x": 1}, "options": {"y": 2.5}, '
                      b'"KEEP_ALIVE": "5m", "think": "low", "stream": null, "raw": null, "junk": {"deep": [1]}}', GEN)
    assert out == {"model": "b", "options": {"x": 1, "y": 2.5}, "keep_alive": "5m", "think": "low"}
    chat = decode_body(b'{"messages": [{"ROLE": "Assistant", "Content": "x", "tool_calls": '
                       b'[{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]}]}', CHAT)
    msg = chat["messages"][0]
    assert msg["role"] == "assistant" and list(msg["tool_calls"][0]["function"]["arguments"]) == ["b", "a"]
    assert fold_name("\u017ftream") == fold_name("STREAM") == "STREAM"
    assert fold_name("\u212aeep_alive") == fold_name("keep_alive")  # the Kelvin sign folds with k
    req = decode(b'{"model": "m", "Messages": [{"role": "USER", "content": "hi"}]}', ChatRequest)
    assert req.messages is not None and req.messages[0].role == "user"


@pytest.mark.parametrize(("text", "error"), [
    ("", None), ("QQ==", None), ("QUI=", None), ("QUJD", None), ("QUJD\nREVG", None),
    ("Q", "illegal base64 data at input byte 0"), ("QQ", "illegal base64 data at input byte 0"),
    ("QUJ", "illegal base64 data at input byte 0"), ("QQ=", "illegal base64 data at input byte 3"),
    ("Q===", "illegal base64 data at input byte 1"), ("=QQ=", "illegal base64 data at input byte 0"),
    ("QUJD!", "illegal base64 data at input byte 4"), ("QQ==QQ==", "illegal base64 data at input byte 4"),
    ("QQ=x", "illegal base64 data at input byte 2"), ("data:image/png;base64,AAAA", "illegal base64 data at input byte 4"),
    ("QUJD-_", "illegal base64 data at input byte 4"),
])
def test_base64_matches_go_std_encoding(text: str, error: str | None) -> None:
    assert base64_error(text.encode()) == error
    if error is None:
        base64.b64decode(text.replace("\n", ""), validate=True)
