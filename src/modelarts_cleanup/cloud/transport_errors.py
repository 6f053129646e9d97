"""Attempts that got no answer, told as `ApiError`s: one table for every low-level exception, and
what the deadline did to an attempt. Pure.

Our own error codes (there is no ModelArts code for these): `ConnectTimeout`, `ReadTimeout`,
`ConnectionError` (refused, reset, DNS, body cut short), `SSLError` (TLS handshake or
certificate), `RequestError` (anything else), and `DeadlineExceeded` for a request that went out
and whose answer the deadline cut short. A request other than a read that went out and whose
answer was lost for another reason, with no answer since, ends as `AnswerLost`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import requests
import urllib3

from ..exceptions import AnswerLost, ApiError, DeadlineExceeded, EffectUnknown
from ..vocabulary import ANSWER_LOST, DEADLINE_EXCEEDED

CONNECT_TIMEOUT = "ConnectTimeout"
READ_TIMEOUT = "ReadTimeout"
CONNECTION_ERROR = "ConnectionError"
SSL_ERROR = "SSLError"
REQUEST_ERROR = "RequestError"


class DeadlineInBody(Exception):
    """The deadline passed while a response body was still arriving."""


# What an attempt may raise instead of returning an answer.
TRANSPORT_EXCEPTIONS = (requests.RequestException, urllib3.exceptions.HTTPError, DeadlineInBody)

# Every low-level failure, mapped once: (exception types, our code, retryable, description).
# Order matters: a ConnectTimeout is a ConnectionError too, and urllib3's SSL, timeout and
# protocol errors are all HTTPErrors. `requests` raises most of these while connecting; the
# urllib3 ones come from reading a body as it arrives.
_TRANSPORT_ERRORS: tuple[tuple[tuple[type[BaseException], ...], str, bool, str], ...] = (
    (
        (requests.ConnectTimeout,),
        CONNECT_TIMEOUT,
        True,
        "no connection to {host} within {connect:g}s",
    ),
    (
        (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError),
        READ_TIMEOUT,
        True,
        "no answer from {host} within {read:g}s",
    ),
    # Almost always a certificate or endpoint mistake: retrying only burns the deadline.
    (
        (requests.exceptions.SSLError, urllib3.exceptions.SSLError),
        SSL_ERROR,
        False,
        "TLS with {host} failed ({cause})",
    ),
    (
        (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError),
        REQUEST_ERROR,
        False,
        "request to {host} failed (ContentDecodingError)",
    ),
    (
        (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,
        ),
        CONNECTION_ERROR,
        True,
        "connection to {host} failed ({cause})",
    ),
    ((requests.RequestException,), REQUEST_ERROR, False, "request to {host} failed ({kind})"),
)


# urllib3 2 says NameResolutionError (the gaierror its cause); urllib3 1 only the gaierror.
_UNRESOLVED_TYPES: tuple[type[BaseException], ...] = (
    socket.gaierror,
    getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror),
)
# A host name that does not resolve, said so, with where the name comes from (`origin`: the
# settings that made the URL, as the transport's owner names them).
UNRESOLVED = "{host} does not resolve (no such host): check {origin}"


def transport_error(
    exc: BaseException,
    what: str,
    attempts: int,
    *,
    host: str,
    timeout: tuple[float, float],
    origin: str = "the endpoint's settings",
) -> ApiError:
    """An ApiError for a request that got no HTTP answer; never quotes the URL or headers."""
    code, retryable, template = next(
        (row[1:] for row in _TRANSPORT_ERRORS if isinstance(exc, row[0])),
        (REQUEST_ERROR, False, "request to {host} failed ({kind})"),
    )
    if code == CONNECTION_ERROR and any(isinstance(e, _UNRESOLVED_TYPES) for e in _chain(exc)):
        # Almost always a misspelled region or endpoint; still retried: DNS can fail for a moment.
        template = UNRESOLVED
    description = template.format(
        host=host,
        origin=origin,
        connect=timeout[0],
        read=timeout[1],
        cause=root_cause(exc),
        kind=type(exc).__name__,
    )
    return ApiError(
        f"{what}: {description}",
        error_code=code,
        error_msg=description,
        attempts=attempts,
        retryable=retryable,
    )


# Raised once the request went out: waiting for the answer, or reading it. urllib3 reports a
# reset after sending, or a body cut short, as a ProtocolError (inside requests' ConnectionError),
# and a connection that could not be made as a NewConnectionError or a ConnectTimeout.
_AFTER_SENDING = (
    requests.ReadTimeout,
    urllib3.exceptions.ReadTimeoutError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    DeadlineInBody,
)


def answer_lost(exc: BaseException) -> bool:
    """Whether an attempt that raised `exc` had sent its request (so it may have taken effect).

    A TLS handshake that times out reads as a read timeout: called "sent", which makes unknown
    what was in fact certain, never the other way round.
    """
    current: BaseException | None = exc
    for _ in range(10):
        if current is None or isinstance(current, requests.ConnectTimeout):
            return False
        if isinstance(current, _AFTER_SENDING):
            return True
        inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        reason = getattr(current, "reason", None)
        current = inner or (reason if isinstance(reason, BaseException) else None)
    return False


def effect_unknown(error: ApiError, what: str, attempts: int) -> EffectUnknown:
    """The failure of a request whose answer was lost after it was sent, told as such."""
    description = (
        f"{error.error_msg or error}; the request was sent and its answer lost: "
        "its effect is unknown"
    )
    return EffectUnknown(
        f"{what}: {description}",
        error_code=ANSWER_LOST,
        error_msg=description,
        attempts=attempts,
        retryable=True,
    )


def deadline_cut(
    exc: BaseException,
    what: str,
    attempts: int,
    timeout: tuple[float, float],
    configured: tuple[float, float],
    last: ApiError | None,
) -> DeadlineExceeded | None:
    """What the deadline did to attempt number `attempts`, if it is what cut it short.

    A wait that ran out is the deadline's doing when the deadline had shortened it (`timeout`
    below the `configured` one). Waiting to connect, nothing was sent, and the attempt does not
    count. Waiting for the answer or reading its body, the request went out: it may have taken
    effect. urllib3 reports a TLS handshake that runs out as a read timeout; it is called "sent"
    then, which makes unknown what was in fact certain, never the other way round.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return not_started(what, attempts - 1, last, 0.0) if timeout[0] < configured[0] else None
    read_timeout = (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)
    if not isinstance(exc, DeadlineInBody) and not (
        isinstance(exc, read_timeout) and timeout[1] < configured[1]
    ):
        return None
    effect = "a read changes nothing" if what.startswith("GET ") else "its effect is unknown"
    description = f"the request was sent and the run's deadline cut its answer short: {effect}"
    return AnswerLost(
        f"{what}: {description}",
        error_code=DEADLINE_EXCEEDED,
        error_msg=description,
        attempts=attempts,
        retryable=True,
    )


def not_started(what: str, attempts: int, last: ApiError | None, left: float) -> DeadlineExceeded:
    """The deadline came, or was too near, before attempt `attempts + 1` could be sent."""
    when = "passed" if left <= 0 else f"was {left:.2f}s away, too near"
    message = f"{what}: the deadline {when} for attempt {attempts + 1} to start"
    if last is not None:
        message += f" (last error: {last})"
    return DeadlineExceeded(
        message,
        http_status=last.http_status if last else None,
        error_code=last.error_code if last else None,
        error_msg=last.error_msg if last else None,
        request_id=last.request_id if last else None,
        attempts=attempts,
        retryable=True,
    )


def again(error: ApiError, message: str, attempts: int) -> ApiError:
    """The same failure, re-told: retries ran out or were cut short."""
    return ApiError(
        message,
        http_status=error.http_status,
        error_code=error.error_code,
        error_msg=error.error_msg,
        request_id=error.request_id,
        attempts=attempts,
        retryable=True,
    )


def root_cause(exc: BaseException) -> str:
    """The innermost exception's class name (its text may hold the URL, so never the text)."""
    return type(_innermost(exc)).__name__


def _innermost(exc: BaseException) -> BaseException:
    return list(_chain(exc))[-1]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it, and so on (ten deep at most)."""
    current = exc
    yield current
    for _ in range(10):
        inner: BaseException | None = None
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        else:
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        if inner is None:
            inner = current.__cause__ or current.__context__
        if inner is None or inner is current:
            break
        current = inner
        yield current
