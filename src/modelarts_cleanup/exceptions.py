"""One exception tree for the whole package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class CleanupError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigurationError(CleanupError):
    """A setting is missing or wrong. Nothing was deleted."""


class CredentialsError(ConfigurationError):
    """No usable credentials could be found. Nothing was deleted."""


class PayloadError(CleanupError):
    """The event is not a valid payload. Every problem is listed; nothing was deleted."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"invalid payload ({count} problem{'s' if count != 1 else ''}):\n{listed}")


class PayloadTooLarge(PayloadError):
    """An API Gateway request body over the size limit, refused before it is decoded."""


class MethodNotAllowed(PayloadError):
    """An API Gateway request with a method other than POST: it carries no cleanup."""


class RunNotClean(CleanupError):
    """A timer or SMN run ended in a status MODELARTS_CLEANUP_FAIL_ON names: raised after its
    report and summary are logged, so that the platform counts the invocation as failed."""

    def __init__(self, status: str, report: dict[str, Any]) -> None:
        super().__init__(
            f"the run ended {status}, a status MODELARTS_CLEANUP_FAIL_ON makes an invocation "
            "error (for FunctionGraph's metrics, retries and failure destination); its results "
            "and summary were logged before this line"
        )
        self.status = status
        self.report = report


class ApiError(CleanupError):
    """ModelArts answered with an error, or could not be reached, after all retries.

    Carries what the report needs; never a credential.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.attempts = attempts
        self.retryable = retryable


class DeadlineExceeded(ApiError):
    """The run's deadline ended a call: it came before the call could (re)start.

    `attempts` counts the requests sent before it came; none means nothing was sent at all.
    """


class AnswerLost(DeadlineExceeded):
    """A request was sent and the deadline cut its answer short: its effect is unknown."""


class EffectUnknown(ApiError):
    """A request was sent and its answer lost, not by the deadline (a read timeout, a reset after
    it went out), and no later attempt was answered: whether it took effect is unknown."""
