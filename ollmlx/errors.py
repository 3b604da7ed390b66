"""The exception tree, and the one place that maps it to HTTP status codes.

Every message is the exact text Ollama sends (spec §19); handlers raise these and the app's
exception handler turns them into `{"error": "..."}` with the status below.
"""

from __future__ import annotations


class OllmlxError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(OllmlxError):
    status = 400


class Forbidden(OllmlxError):
    status = 403


class NotFound(OllmlxError):
    status = 404


class ServerBusy(OllmlxError):
    status = 503

    def __init__(self, message: str = "server busy, please try again.  maximum pending requests exceeded"):
        super().__init__(message)


class RequestCanceled(OllmlxError):
    status = 499

    def __init__(self, message: str = "request canceled") -> None:
        super().__init__(message)


class RunnerError(OllmlxError):
    """A runner failed to load, crashed or answered with an error."""

    status = 500


class PromptOverBudget(RunnerError):
    """The runner's answer to a completion whose prompt has more tokens than its `fit_tokens`:
    the server truncates the conversation and asks again (never sent to a client)."""

    status = 413


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")


class InvalidModelName(BadRequest):
    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message)


class ModelRequired(BadRequest):
    def __init__(self) -> None:
        super().__init__("model is required")


class StoreError(OllmlxError):
    """Blob or manifest problems: missing, corrupt, wrong digest."""

    status = 500


class DigestMismatch(BadRequest):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f'digest mismatch, expected "{expected}", got "{actual}"')


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, OllmlxError) else 500


def message_of(exc: BaseException) -> str:
    return exc.message if isinstance(exc, OllmlxError) else str(exc) or exc.__class__.__name__
