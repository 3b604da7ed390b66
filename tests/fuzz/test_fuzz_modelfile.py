"""Property-based fuzzing of the Modelfile parser (ollmlx/store/modelfile.py, spec §14), which reads
what users write and what `ollama show --modelfile` printed: any input parses or raises
ModelfileError, quickly; what parses survives its own printing (Modelfile.String()) unchanged.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzzing import memory_limit, time_limit
from ollmlx.store.modelfile import ModelfileError, parse_modelfile, parse_modelfile_bytes

KEYWORDS = ["FROM", "from", "PARAMETER", "parameter", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE",
            "REQUIRES", "RENDERER", "PARSER", "DRAFT", "FROMX", "#", "", "PARAM"]
PARAMS = ["temperature", "num_ctx", "stop", "top_k", "top_p", "seed", "num_predict", "mirostat", "penalize_newline",
          "unknown_param", "num_gpu", "use_mmap"]
ROLES = ["system", "user", "assistant", "tool", "User", ""]
PIECES = ['"', '"""', "\\", "\\\"", "\n", "\r\n", "\r", "\t", " ", "  ", ":", "#", "{{ .Prompt }}", "0.5", "-1",
          "1e309", "true", "nan", "\u00e9", "\u202e", "\x00", "\ufeff", "llama3.2", "./model.gguf", "../x", "0.14.0"]

fragments = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=12).map("".join)


@st.composite
def modelfiles(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kw = draw(st.sampled_from(KEYWORDS))
        if kw.lower() == "parameter":
            args = f"{draw(st.sampled_from(PARAMS))} {draw(fragments)}"
        elif kw == "MESSAGE":
            args = f"{draw(st.sampled_from(ROLES))} {draw(fragments)}"
        else:
            args = draw(fragments)
        sep = draw(st.sampled_from([" ", "  ", "\t", ""]))
        lines.append(kw + sep + args)
    return draw(st.sampled_from(["\n", "\r\n", "\n\n"])).join(lines)


def parse_or_error(text: str) -> None:
    with time_limit(5), memory_limit(32_000_000 + 200 * len(text)):
        try:
            mf = parse_modelfile(text)
        except ModelfileError:
            return
        try:
            mf.create_fields()
        except ModelfileError:
            pass
    # what parses prints back to a Modelfile that parses to the same commands
    if not printable(mf):
        return
    again = parse_modelfile(mf.to_text())
    assert again.commands == mf.commands, (text, mf.to_text())


def printable(mf: Any) -> bool:
    """Whether every value can be printed to read back the same: Modelfile quoting has no escape,
    so a value that itself starts or ends with a double quote (`FROM ""0""` holds `"0"`) cannot."""
    for cmd in mf.commands:
        value = cmd.args.partition(": ")[2] if cmd.name == "message" else cmd.args
        if value.startswith('"') or value.endswith('"'):
            return False
    return True


@given(text=modelfiles())
def test_grammar_shaped_modelfiles(text: str) -> None:
    parse_or_error(text)


@given(text=st.text(max_size=400))
def test_any_text(text: str) -> None:
    parse_or_error(text)


@given(data=st.binary(max_size=400), bom=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]))
def test_any_bytes(data: bytes, bom: bytes) -> None:
    with time_limit(5):
        try:
            parse_modelfile_bytes(bom + data)
        except ModelfileError:
            pass


def test_huge_values_stay_linear() -> None:
    """A 4 MB TEMPLATE and 100k PARAMETER lines parse in linear time."""
    big = 'FROM x\nTEMPLATE """' + "{{ .Prompt }}" * 300_000 + '"""\n' + "PARAMETER stop x\n" * 100_000
    with time_limit(60):
        mf = parse_modelfile(big)
    assert len(mf.commands) == 100_002
