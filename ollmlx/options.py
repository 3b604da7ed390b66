"""Runtime options / PARAMETERs (spec §7), mirroring Ollama's ``api.Options``.

* :func:`default_options` - ``api.DefaultOptions()``.
* :func:`apply_options` / :func:`merge_options` - ``Options.FromMap`` layering
  (defaults, then the model's params layer, then the request's ``options``).
* :func:`parse_parameter` / :func:`format_params` - ``api.FormatParams`` for Modelfile
  ``PARAMETER`` lines and the CLI's ``/set parameter``.
* :func:`format_parameters` - the ``parameters`` text of ``/api/show``.

Note on ``num_ctx``: Ollama picks a VRAM tier (4096 / 32768 / 262144) when
``OLLAMA_CONTEXT_LENGTH`` is unset.  ollmlx does not size by VRAM: the default is
``OLLMLX_CONTEXT_LENGTH`` or ``OLLAMA_CONTEXT_LENGTH`` if set (non-zero), else 4096.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "DEFAULT_CONTEXT_LENGTH", "DEPRECATED_PARAMETERS", "LEGACY_OPTION_KEYS", "LOAD_TIME_KEYS",
    "OPTION_SPECS", "OptionSpec", "OptionTypeError", "ParameterError", "apply_options",
    "context_length_from_env", "default_options", "format_parameters", "format_params",
    "go_format_float", "go_format_value", "go_parse_bool", "go_parse_float32", "go_parse_int",
    "go_quote", "go_sharp_v", "load_time_options", "merge_options", "parse_parameter",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_LENGTH = 4096

# Option kinds (Go field types).
INT = "int"
FLOAT = "float32"
BOOL = "bool"
STRINGS = "[]string"
OPT_INT = "*int"
OPT_BOOL = "*bool"


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: str
    default: Any
    load_time: bool = False


# In Go struct order (Runner fields first, then the predict options).
_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("num_ctx", INT, None, True),  # default from context_length_from_env()
    OptionSpec("num_batch", INT, 512, True),
    OptionSpec("num_gpu", INT, -1, True),
    OptionSpec("main_gpu", OPT_INT, None, True),
    OptionSpec("use_mmap", OPT_BOOL, None, True),
    OptionSpec("num_thread", INT, 0, True),
    OptionSpec("draft_num_predict", INT, 4, True),
    OptionSpec("num_keep", INT, 4),
    OptionSpec("seed", INT, -1),
    OptionSpec("num_predict", INT, -1),
    OptionSpec("top_k", INT, 40),
    OptionSpec("top_p", FLOAT, 0.9),
    OptionSpec("min_p", FLOAT, 0.0),
    OptionSpec("typical_p", FLOAT, 1.0),
    OptionSpec("repeat_last_n", INT, 64),
    OptionSpec("temperature", FLOAT, 0.8),
    OptionSpec("repeat_penalty", FLOAT, 1.0),
    OptionSpec("presence_penalty", FLOAT, 0.0),
    OptionSpec("frequency_penalty", FLOAT, 0.0),
    OptionSpec("stop", STRINGS, None),
)

OPTION_SPECS: dict[str, OptionSpec] = {s.name: s for s in _SPECS}

#: Options fixed when the model is loaded; changing them forces a reload (sched.go needsReload).
LOAD_TIME_KEYS: frozenset[str] = frozenset(s.name for s in _SPECS if s.load_time)

#: Parameters that a Modelfile may still carry; they are skipped with a warning (parser.go).
DEPRECATED_PARAMETERS: tuple[str, ...] = (
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
    "mirostat", "mirostat_tau", "mirostat_eta",
)  # fmt: skip

#: Removed request options still sent by old clients; like any unknown key they are ignored.
LEGACY_OPTION_KEYS: frozenset[str] = frozenset(
    {*DEPRECATED_PARAMETERS, "numa", "tfs_z", "num_gqa", "rope_frequency_base", "rope_frequency_scale"}
)


class OptionTypeError(ValueError):
    """A request/model option of the wrong JSON type (Ollama answers HTTP 500)."""


class ParameterError(ValueError):
    """A bad Modelfile ``PARAMETER`` / CLI ``/set parameter`` (``unknown parameter 'x'`` ...)."""


def context_length_from_env(env: Mapping[str, str] | None = None) -> int:
    """Default ``num_ctx``: ``OLLMLX_CONTEXT_LENGTH`` or ``OLLAMA_CONTEXT_LENGTH``, else 4096.

    Values are cleaned like Ollama's ``envconfig.Var``; an invalid value logs a warning and
    is ignored; ``0`` means "unset" (Ollama would then choose a VRAM tier).
    """
    environ = os.environ if env is None else env
    for key in ("OLLMLX_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH"):
        raw = environ.get(key, "").strip().strip("\"'")
        if not raw:
            continue
        if raw.isascii() and raw.isdigit() and int(raw) < 1 << 64:
            n = int(raw)
            if n > 0:
                return n
            continue
        log.warning("invalid environment variable, using default key=%s value=%s", key, raw)
    return DEFAULT_CONTEXT_LENGTH


def default_options(num_ctx: int | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Ollama's ``DefaultOptions()`` as a dict holding every option key.

    ``main_gpu`` / ``use_mmap`` are ``None`` (unset, auto) and ``stop`` is ``[]``.
    """
    opts: dict[str, Any] = {}
    for spec in _SPECS:
        value = spec.default
        if spec.kind == STRINGS:
            value = []
        opts[spec.name] = value
    opts["num_ctx"] = num_ctx if num_ctx else context_length_from_env(env)
    return opts


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _convert(key: str, kind: str, val: Any) -> Any:
    """Type-check one JSON value like ``Options.FromMap``; returns the stored value."""
    if kind in (INT, OPT_INT):
        if not _is_number(val) or not math.isfinite(val):
            raise OptionTypeError(f'option "{key}" must be of type integer')
        return int(val)  # JSON numbers are truncated toward zero
    if kind in (BOOL, OPT_BOOL):
        if not isinstance(val, bool):
            raise OptionTypeError(f'option "{key}" must be of type boolean')
        return val
    if kind == FLOAT:
        if not _is_number(val):
            raise OptionTypeError(f'option "{key}" must be of type float32')
        return float(val)
    if kind == STRINGS:
        if not isinstance(val, list | tuple):
            raise OptionTypeError(f'option "{key}" must be of type array')
        out: list[str] = []
        for item in val:
            if not isinstance(item, str):
                raise OptionTypeError(f'option "{key}" must be of an array of strings')
            out.append(item)
        return out
    raise OptionTypeError(f"unknown type loading config params: {kind}")  # pragma: no cover


def apply_options(opts: dict[str, Any], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply a JSON options map onto ``opts`` in place (Ollama's ``Options.FromMap``).

    Unknown keys (including legacy ones such as ``numa``/``mirostat``) are ignored with a
    warning; ``null`` values are skipped; wrong types raise :class:`OptionTypeError`.
    """
    if not values:
        return opts
    for key, val in values.items():
        spec = OPTION_SPECS.get(key)
        if spec is None:
            log.warning("invalid option provided option=%s", key)
            continue
        if val is None:
            continue
        opts[key] = _convert(key, spec.kind, val)
    return opts


def merge_options(
    defaults: Mapping[str, Any] | None,
    model_params: Mapping[str, Any] | None,
    request_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Defaults, then the model's ``params`` layer, then the request's ``options``."""
    opts = dict(defaults) if defaults is not None else default_options()
    for key, value in opts.items():
        if isinstance(value, list):
            opts[key] = list(value)
    apply_options(opts, model_params)
    apply_options(opts, request_options)
    return opts


def load_time_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The load-time subset of ``opts`` (compare these to decide on a reload)."""
    return {k: opts.get(k) for k in OPTION_SPECS if k in LOAD_TIME_KEYS}


def _go_list(vals: Sequence[str]) -> str:
    return "[" + " ".join(vals) + "]"


def format_params(params: Mapping[str, Sequence[str] | str]) -> dict[str, Any]:
    """Ollama's ``api.FormatParams``: type string values by the option table.

    Scalars use the first value; ``stop`` keeps all of them.  Deprecated keys are *not*
    special here (the CLI's ``/set parameter mirostat 1`` fails with ``unknown parameter``).
    Floats are rounded to float32 precision and returned as the shortest decimal that
    round-trips (``0.7`` stays ``0.7``); ints are Python ints; ``use_mmap`` a bool.
    """
    out: dict[str, Any] = {}
    for key, raw in params.items():
        vals = [raw] if isinstance(raw, str) else list(raw)
        spec = OPTION_SPECS.get(key)
        if spec is None:
            raise ParameterError(f"unknown parameter '{key}'")
        if spec.kind == STRINGS:
            out[key] = vals
            continue
        first = vals[0] if vals else ""
        if spec.kind == FLOAT:
            fval = go_parse_float32(first)
            if fval is None:
                raise ParameterError(f"invalid float value {_go_list(vals)}")
            out[key] = fval
        elif spec.kind in (INT, OPT_INT):
            ival = go_parse_int(first)
            if ival is None:
                raise ParameterError(f"invalid int value {_go_list(vals)}")
            out[key] = ival
        else:
            bval = go_parse_bool(first)
            if bval is None:
                raise ParameterError(f"invalid bool value {_go_list(vals)}")
            out[key] = bval
    return out


# ollmlx's own Modelfile parameters (not runtime options: merge_options ignores them).
# `engine` pins a GGUF model to one engine (serve/loading.py:choose_engine).
OLLMLX_PARAMETERS: dict[str, tuple[str, ...]] = {"engine": ("mlx", "llamacpp")}


def parse_parameter(key: str, value: str | Sequence[str]) -> Any | None:
    """Type one Modelfile ``PARAMETER key value`` (parser.go ``CreateRequest`` semantics).

    Deprecated keys (``mirostat``, ``penalize_newline`` ...) print Ollama's warning and
    return ``None`` (skip).  ``stop`` returns a list of strings.  Errors raise
    :class:`ParameterError` (``unknown parameter 'k'``, ``invalid float value [x]`` ...).
    """
    if key in DEPRECATED_PARAMETERS:
        log.warning("warning: parameter %s is deprecated", key)
        return None
    if key in OLLMLX_PARAMETERS:
        first = value if isinstance(value, str) else (list(value) or [""])[0]
        if first not in OLLMLX_PARAMETERS[key]:
            raise ParameterError(f"invalid {key} value [{first}]: one of {', '.join(OLLMLX_PARAMETERS[key])}")
        return first
    return format_params({key: value})[key]


def format_parameters(params: Mapping[str, Any] | None) -> str:
    """The ``parameters`` string of ``/api/show``: ``fmt.Sprintf("%-30s %#v", key, value)``.

    One line per value (list values give one line each), joined by ``\\n``.  Values are
    rendered as Go sees them after a JSON round-trip, so numbers are float64 (``42``,
    ``0.7``, ``1.234567e+06``) and strings are Go-quoted.  Ollama iterates a Go map (random
    order); ollmlx sorts by key, keeping list order.
    """
    if not params:
        return ""
    lines: list[str] = []
    for key in sorted(params):
        value = params[key]
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            lines.append(f"{key:<30} {go_sharp_v(item)}")
    return "\n".join(lines)


# -- Go value parsing/formatting (strconv / fmt semantics) ------------------------------------

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_DEC_RE = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?\Z")
_HEX_RE = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9][0-9_]*\Z")
_SPECIAL_RE = re.compile(r"(?:[+-]?(?:inf|infinity)|nan)\Z", re.IGNORECASE)


def go_parse_bool(s: str) -> bool | None:
    """``strconv.ParseBool``; ``None`` on a syntax error."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    return None


def go_parse_int(s: str) -> int | None:
    """``strconv.ParseInt(s, 10, 64)``; ``None`` on a syntax or range error."""
    if not _INT_RE.match(s):
        return None
    n = int(s)
    return n if -(1 << 63) <= n < (1 << 63) else None


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: ``_`` only between digits (or after a base prefix)."""
    saw = "^"
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = len(s) >= 2 and s[0] == "0" and s[1] in "xXbBoO"
    i = 2 if hexa else 0
    if hexa:
        saw = "0"
        hexa = s[1] in "xX"
    for c in s[i:]:
        if c.isdigit() or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _to_f32(v: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", v))[0])


def go_parse_float32(s: str) -> float | None:
    """``strconv.ParseFloat(s, 32)``: ``None`` on a syntax or range error.

    The result is the shortest decimal that round-trips through float32 (what Go's JSON
    encoder writes for a float32), so ``"0.7"`` gives ``0.7``, not ``0.699999988079071``.
    """
    if _SPECIAL_RE.match(s):
        return float(s.lower().replace("infinity", "inf"))
    is_hex = bool(_HEX_RE.match(s))
    if not is_hex and not _DEC_RE.match(s):
        return None
    if "_" in s and not _underscore_ok(s):
        return None
    clean = s.replace("_", "")
    try:
        value = float.fromhex(clean) if is_hex else float(clean)
        f32 = _to_f32(value)
    except OverflowError:
        return None
    if math.isinf(f32):
        return None
    return float(_shortest_text(f32, 32))


def _shortest_text(v: float, bits: int) -> str:
    if bits == 32:
        for p in range(1, 10):
            text = f"{v:.{p - 1}e}"
            if _to_f32(float(text)) == v:
                return text
    return repr(v)


def go_format_float(v: float, bits: int = 64) -> str:
    """Go's ``%v`` / ``%#v`` for a float: ``%g`` with the shortest digits (``1e+06``, ``0.7``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    if v == 0:
        return sign + "0"
    tup = Decimal(_shortest_text(abs(v), bits)).as_tuple()
    digits = "".join(str(d) for d in tup.digits)
    assert isinstance(tup.exponent, int)
    dp = len(digits) + tup.exponent  # value = 0.DIGITS * 10**dp
    digits = digits.rstrip("0")
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """``strconv.Quote``: double-quoted with Go escapes; printable Unicode kept as is."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_v(value: Any, sharp: bool) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_format_float(float(value))
    if isinstance(value, str):
        return go_quote(value) if sharp else value
    if isinstance(value, list | tuple):
        if sharp:
            return "[]interface {}{" + ", ".join(_go_v(v, True) for v in value) + "}"
        return "[" + " ".join(_go_v(v, False) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=str)  # fmt prints maps sorted by key
        if sharp:
            items = ", ".join(f"{go_quote(str(k))}:{_go_v(value[k], True)}" for k in keys)
            return "map[string]interface {}{" + items + "}"
        return "map[" + " ".join(f"{k}:{_go_v(value[k], False)}" for k in keys) + "]"
    return str(value)


def go_sharp_v(value: Any) -> str:
    """Go's ``%#v`` of a JSON-decoded value (numbers are float64, strings Go-quoted)."""
    return _go_v(value, True)


def go_format_value(value: Any) -> str:
    """Go's ``%v`` of a JSON-decoded value (``PARAMETER`` lines of ``show --modelfile``)."""
    return _go_v(value, False)
