"""Ollama model names (spec §15), following ``types/model/name.go``.

Grammar: ``[scheme://][host/][namespace/]model[:tag]`` with defaults host
``registry.ollama.ai``, namespace ``library``, tag ``latest``, scheme ``https``.

Part rules (first character ``[A-Za-z0-9_]``):

* host: ``[A-Za-z0-9_][A-Za-z0-9_.:-]*``, 1-350 chars
* namespace: ``[A-Za-z0-9_][A-Za-z0-9_-]*``, 1-80 chars (no dots)
* model, tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]*``, 1-80 chars

Anything else (NUL, ``/`` or ``\\`` inside a part, ``..`` as a part, non-ASCII, an empty part
after a separator) makes the name invalid, so a valid name is always safe to use as a
relative manifest path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_SCHEME",
    "DEFAULT_TAG",
    "MISSING_PART",
    "ModelName",
    "is_valid_namespace",
    "is_valid_part",
    "names_equal_fold",
    "parse_name",
    "parse_name_bare",
]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

#: Stand-in for a part promised by a separator but empty (``"ns/"``, ``"m:"``); never valid.
MISSING_PART = "!MISSING!"

_ALNUM_US = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_REST_CHARS: dict[str, frozenset[str]] = {
    "host": _ALNUM_US | frozenset("-.:"),
    "namespace": _ALNUM_US | frozenset("-"),
    "model": _ALNUM_US | frozenset("-."),
    "tag": _ALNUM_US | frozenset("-."),
}
_MAX_LEN = {"host": 350, "namespace": 80, "model": 80, "tag": 80}


def is_valid_part(kind: str, s: str) -> bool:
    """Whether ``s`` is a valid ``kind`` part (``host``, ``namespace``, ``model`` or ``tag``)."""
    if not 1 <= len(s) <= _MAX_LEN[kind]:
        return False
    if s[0] not in _ALNUM_US:
        return False
    allowed = _REST_CHARS[kind]
    return all(c in allowed for c in s[1:])


def is_valid_namespace(s: str) -> bool:
    return is_valid_part("namespace", s)


def _cut_promised(s: str, sep: str) -> tuple[str, str, bool]:
    """Cut at the last ``sep``; an empty side becomes :data:`MISSING_PART`."""
    i = s.rfind(sep)
    if i < 0:
        return s, "", False
    before, after = s[:i], s[i + len(sep) :]
    return before or MISSING_PART, after or MISSING_PART, True


@dataclass(frozen=True)
class ModelName:
    """A structured model name.  Not necessarily valid: check :meth:`is_valid`.

    Equality and hashing are exact (case-sensitive) over host/namespace/model/tag; the
    scheme does not take part.  Use :meth:`equal_fold` / :meth:`fold_key` for Ollama's
    case-insensitive matching.
    """

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = field(default=DEFAULT_SCHEME, compare=False)

    # -- validity -------------------------------------------------------------------------
    def is_fully_qualified(self) -> bool:
        return (
            is_valid_part("host", self.host)
            and is_valid_part("namespace", self.namespace)
            and is_valid_part("model", self.model)
            and is_valid_part("tag", self.tag)
        )

    def is_valid(self) -> bool:
        """All four parts present and valid (Ollama's ``Name.IsValid``)."""
        return self.is_fully_qualified()

    # -- display ----------------------------------------------------------------------------
    def __str__(self) -> str:
        """Ollama's ``Name.String()``: present parts joined, ``host/ns/model:tag``."""
        out = ""
        if self.host:
            out += self.host + "/"
        if self.namespace:
            out += self.namespace + "/"
        out += self.model
        if self.tag:
            out += ":" + self.tag
        return out

    def display_long(self) -> str:
        """``host/namespace/model:tag`` (used e.g. in ``... does not support tools``)."""
        return str(self)

    def display_shortest(self) -> str:
        """Drop the default host, then the default namespace; always show ``:tag``."""
        prefix = ""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    def display_namespace_model(self) -> str:
        return f"{self.namespace}/{self.model}"

    def base_url(self) -> str:
        """The registry base URL, ``scheme://host``."""
        return f"{self.scheme}://{self.host}"

    # -- comparison ---------------------------------------------------------------------
    def equal_fold(self, other: ModelName) -> bool:
        """Case-insensitive comparison of host, namespace, model and tag."""
        return self.fold_key() == other.fold_key()

    def fold_key(self) -> tuple[str, str, str, str]:
        """A case-folded key for dict lookups of existing names."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    # -- on-disk form -------------------------------------------------------------------
    def manifest_relpath(self) -> Path:
        """``host/namespace/model/tag`` relative to ``<models>/manifests``.

        Raises ``ValueError`` if the name is not fully qualified.
        """
        if not self.is_fully_qualified():
            raise ValueError(f"illegal attempt to get filepath of invalid name: {self!s}")
        return Path(self.host, self.namespace, self.model, self.tag)

    @classmethod
    def from_manifest_relpath(cls, relpath: str | PurePath) -> ModelName | None:
        """Inverse of :meth:`manifest_relpath`; ``None`` unless exactly 4 valid parts."""
        if isinstance(relpath, PurePath):
            parts = list(relpath.parts)
        else:
            parts = relpath.replace(os.sep, "/").split("/")
        if len(parts) != 4:
            return None
        name = cls(host=parts[0], namespace=parts[1], model=parts[2], tag=parts[3])
        return name if name.is_fully_qualified() else None

    def with_defaults(self) -> ModelName:
        """Fill empty parts with the defaults (Ollama's ``Merge(n, DefaultName())``)."""
        return replace(
            self,
            host=self.host or DEFAULT_HOST,
            namespace=self.namespace or DEFAULT_NAMESPACE,
            tag=self.tag or DEFAULT_TAG,
            scheme=self.scheme or DEFAULT_SCHEME,
        )


def parse_name_bare(s: str) -> ModelName:
    """Split ``s`` into parts without applying defaults (missing parts are ``""``)."""
    host = namespace = tag = scheme = ""
    # "/" is illegal in a tag, so a ":" after the last "/" starts the tag.
    if s.rfind(":") > s.rfind("/"):
        s, tag, _ = _cut_promised(s, ":")
    rest, model, promised = _cut_promised(s, "/")
    if not promised:
        return ModelName(host, namespace, s, tag, scheme)
    rest, namespace, promised = _cut_promised(rest, "/")
    if not promised:
        return ModelName(host, rest, model, tag, scheme)
    before, sep, after = rest.partition("://")
    if sep:
        scheme, host = before, after
    else:
        host = rest
    return ModelName(host, namespace, model, tag, scheme)


def parse_name(s: str) -> ModelName:
    """Parse a model name and fill the defaults (host, namespace, tag, scheme).

    ``llama3.2`` -> ``registry.ollama.ai/library/llama3.2:latest``;
    ``host:5000/ns/m`` -> host ``host:5000``, tag ``latest``.
    The result may be invalid (e.g. ``""``, ``"a/b/"``): check :meth:`ModelName.is_valid`.
    """
    return parse_name_bare(s).with_defaults()


def names_equal_fold(a: str | ModelName, b: str | ModelName) -> bool:
    """Case-insensitive equality of two names (strings are parsed with defaults)."""
    na = parse_name(a) if isinstance(a, str) else a
    nb = parse_name(b) if isinstance(b, str) else b
    return na.equal_fold(nb)
