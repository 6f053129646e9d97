"""One way to send a request: deadline-capped timeouts, retries with backoff, bounded bodies.

An attempt that gets no answer becomes an `ApiError` with one of our own codes
(`transport_errors` maps them). When the deadline cuts a request, what is raised says whether it
was sent: `DeadlineExceeded` when nothing was, `AnswerLost` (code `DeadlineExceeded`) when it went
out and its answer did not come back in time. With an `Admission`, no attempt starts that is not
expected to finish in time. What an answer means is `answers.judge`'s to say; this module only
acts on it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from ..exceptions import ApiError, ConfigurationError, DeadlineExceeded
from ..vocabulary import is_project_id
from .admission import Admission
from .answers import MALFORMED_RESPONSE, Reply, judge, retry_after_seconds
from .endpoint import parse_endpoint
from .session import settle_environment
from .transport_errors import (
    TRANSPORT_EXCEPTIONS,
    DeadlineInBody,
    again,
    answer_lost,
    deadline_cut,
    effect_unknown,
    not_started,
    transport_error,
)

# A ModelArts answer is a few KiB; a page of 50 notebooks well under a MiB.
MAX_BODY_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_UNKNOWN_LENGTH_GRACE = 1.0


class _BodyTooLarge(Exception):
    """A response body over MAX_BODY_BYTES: not a ModelArts answer."""

    def __init__(self, status: int, request_id: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.request_id = request_id


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried; `max_attempts` includes the first."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    # A server asking for a longer pause than this is not waited for: the call fails as
    # retryable and a later run picks the instance up (we never retry sooner than asked).
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("retry delays must not be negative")


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection and for each read."""

    connect: float = 5.0
    read: float = 30.0

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class RetryDetails:
    """One retry about to happen: what failed, how, and how long we wait before the next try."""

    request: str  # "METHOD /path"
    attempt: int  # the attempt that failed, 1-based
    max_attempts: int
    delay: float  # seconds until the next attempt
    reason: str  # our or ModelArts' error code, else the HTTP status
    http_status: int | None


OnRetry = Callable[[RetryDetails], None]


@dataclass(frozen=True)
class Answer:
    """A final answer to one logical request: a 2xx, or one that means "does not exist"."""

    reply: Reply
    attempts: int
    absent: bool


class Sender(Protocol):
    """What a client needs of a transport: one logical request, and where requests go."""

    @property
    def base_url(self) -> str: ...

    def send(
        self,
        method: str,
        path: str,
        *,
        project_id: str | None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> Answer: ...


class Transport:
    """Sends requests to one endpoint; retries what is transient, within attempts and deadline."""

    def __init__(
        self,
        *,
        session: requests.Session,
        endpoint: str,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        secrets: Sequence[str] = (),
        on_retry: OnRetry | None = None,
        admission: Admission | None = None,
        origin: str = "the endpoint's settings",
    ) -> None:
        """`admission`, when given, learns from every answer and must let each attempt start;
        `origin` says where the endpoint comes from, for a host that does not resolve."""
        try:
            checked = parse_endpoint(endpoint)
        except ValueError as exc:
            raise ConfigurationError(f"invalid endpoint: {exc}") from None
        self._base_url, self._host = checked.base_url, checked.host
        self._session = session
        settle_environment(session, self._base_url)
        # Values that must never appear in an error, even when a server (or a proxy) echoes them.
        self._secrets = tuple(secret for secret in secrets if len(secret) >= 4)
        self._retry = retry or RetryPolicy()
        self._timeouts = timeouts or Timeouts()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._wall_clock = wall_clock
        self._on_retry = on_retry
        self._origin = origin
        self._admission = admission

    @property
    def base_url(self) -> str:
        """The base URL requests go to (no trailing slash)."""
        return self._base_url

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock deadlines are measured on."""
        return self._clock

    def send(
        self,
        method: str,
        path: str,
        *,
        project_id: str | None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> Answer:
        """Send one logical request, retrying what is transient; raise ApiError otherwise.

        `project_id` None: a request outside any project (IAM's), sent without X-Project-Id.
        """
        headers: dict[str, str] = {}
        if project_id is not None:
            if not is_project_id(project_id):
                raise ValueError("project_id must be 32 lowercase hexadecimal characters")
            headers["X-Project-Id"] = project_id
        data: bytes | None = None
        if json_body is not None:
            # Serialised here so the bytes signed are the bytes sent.
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        attempts = 0
        last: ApiError | None = None
        # Whether an attempt went out and lost its answer with none answered since: then a
        # failure says the request's effect is unknown (a read has none).
        lost = False
        while True:
            try:
                timeout = self._timeout(deadline, what, attempts, last)
            except DeadlineExceeded as exc:
                if lost and last is not None:
                    raise effect_unknown(last, what, attempts) from None
                raise exc from None
            attempts += 1
            retry_after: float | None = None
            began = self._clock()
            try:
                reply = self._exchange(method, path, params, data, headers, timeout, deadline)
            except _BodyTooLarge as exc:
                error = ApiError(
                    f"{what}: HTTP {exc.status} with a body over {MAX_BODY_BYTES} bytes",
                    http_status=exc.status,
                    error_code=MALFORMED_RESPONSE,
                    error_msg="response body too large for a ModelArts answer",
                    request_id=exc.request_id,
                    attempts=attempts,
                )
            except TRANSPORT_EXCEPTIONS as exc:
                configured = (self._timeouts.connect, self._timeouts.read)
                cut = deadline_cut(exc, what, attempts, timeout, configured, last)
                if cut is not None:
                    raise cut from None
                error = transport_error(
                    exc, what, attempts, host=self._host, timeout=timeout, origin=self._origin
                )
                lost = lost or (method != "GET" and answer_lost(exc))
            else:
                lost = False
                if self._admission is not None:
                    self._admission.record(self._clock() - began)
                verdict = judge(reply, what, attempts)
                if isinstance(verdict, str):
                    return Answer(reply, attempts, absent=verdict == "absent")
                error = self._scrubbed(verdict)
                if error.retryable:
                    retry_after = retry_after_seconds(reply, now=self._wall_clock())
            if (
                lost
                and error.http_status is None
                and (not error.retryable or attempts >= self._retry.max_attempts)
            ):
                raise effect_unknown(error, what, attempts)
            if not error.retryable:
                raise error
            last = error
            if attempts >= self._retry.max_attempts:
                raise again(error, f"{error}; gave up after {attempts} attempts", attempts)
            delay = self._delay(attempts, retry_after, error)
            if not self._fits(deadline, after=delay):
                if lost:
                    raise effect_unknown(error, what, attempts)
                raise again(
                    error,
                    f"{error}; the deadline cut the retries after {attempts} "
                    f"attempt{'s' if attempts != 1 else ''}",
                    attempts,
                )
            if self._on_retry is not None:
                self._on_retry(
                    RetryDetails(
                        request=what,
                        attempt=attempts,
                        max_attempts=self._retry.max_attempts,
                        delay=delay,
                        reason=error.error_code or str(error.http_status),
                        http_status=error.http_status,
                    )
                )
            self._sleep(delay)

    def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float | None,
    ) -> Reply:
        """One attempt: the request, then its body read whole."""
        response = self._session.request(
            method,
            self._base_url + path,
            params=params,
            data=data,
            headers=headers,
            timeout=timeout,
            # A 301/302 would turn DELETE into GET and its 200 into a false "deleted".
            allow_redirects=False,
            stream=True,
        )
        try:
            body = self._read_body(response, deadline)
        finally:
            # Read whole, the connection is back in the pool already; abandoned, it is dropped.
            response.close()
        return Reply.of(response.status_code, response.headers, body)

    def _read_body(self, response: requests.Response, deadline: float | None) -> bytes:
        """Read the body as it arrives, up to MAX_BODY_BYTES and never past the deadline.

        The read timeout bounds each wait for a byte, not the whole body: a server sending one
        byte a second would hold the call for as long as it likes. Reading what has arrived and
        looking at the clock between reads bounds the call by the deadline.
        """
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        while chunk := raw.read1(_CHUNK_BYTES, decode_content=True):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyTooLarge(response.status_code, response.headers.get("X-Request-Id"))
            chunks.append(chunk)
            remaining = getattr(raw, "length_remaining", None)
            if remaining == 0:
                break  # all that Content-Length announced is here
            # Without a Content-Length the end is only seen by reading on: a little grace,
            # so a complete answer that merely ends late is not thrown away.
            grace = 0.0 if remaining is not None else _UNKNOWN_LENGTH_GRACE
            if deadline is not None and self._clock() >= deadline + grace:
                raise DeadlineInBody
        return b"".join(chunks)

    def _scrubbed(self, error: ApiError) -> ApiError:
        """The error with every secret value the server sent back replaced by `***`."""
        texts = (str(error), error.error_code or "", error.error_msg or "")
        if not any(secret in text for secret in self._secrets for text in texts):
            return error

        def scrub(text: str | None) -> str | None:
            if text is None:
                return None
            for secret in self._secrets:
                text = text.replace(secret, "***")
            return text

        return ApiError(
            scrub(str(error)) or "",
            http_status=error.http_status,
            error_code=scrub(error.error_code),
            error_msg=scrub(error.error_msg),
            request_id=error.request_id,
            attempts=error.attempts,
            retryable=error.retryable,
        )

    def _fits(self, deadline: float | None, *, after: float = 0.0) -> bool:
        """Whether an attempt starting `after` seconds from now may start at all."""
        if deadline is None:
            return True
        if self._admission is not None:
            return self._admission.admits(deadline, after=after)
        return deadline - self._clock() - after > 0

    def _timeout(
        self, deadline: float | None, what: str, attempts: int, last: ApiError | None
    ) -> tuple[float, float]:
        """(connect, read) for the next attempt, never reaching past the deadline."""
        connect, read = self._timeouts.connect, self._timeouts.read
        if deadline is None:
            return connect, read
        if not self._fits(deadline):
            raise not_started(what, attempts, last, deadline - self._clock())
        left = deadline - self._clock()
        return min(connect, left), min(read, left)

    def _delay(self, attempts: int, retry_after: float | None, error: ApiError) -> float:
        """Seconds to wait before the next attempt: the server's wish, else jittered backoff."""
        if retry_after is not None:
            if retry_after > self._retry.max_retry_after:
                raise again(
                    error,
                    f"{error}; the server asked to wait {retry_after:g}s, longer than the "
                    f"{self._retry.max_retry_after:g}s we wait",
                    attempts,
                )
            return retry_after
        ceiling = min(self._retry.max_delay, self._retry.base_delay * 2.0 ** (attempts - 1))
        # Full jitter spreads concurrent workers apart after a shared throttling spike.
        return self._jitter() * ceiling
