"""Errors raised by the template engine."""

from __future__ import annotations


class TemplateError(Exception):
    """A parse or execution error; str() is Go's message (``template: NAME:LINE: ...``)."""


class FuncError(Exception):
    """Raised by a template function; reported as ``error calling NAME: MSG``."""
