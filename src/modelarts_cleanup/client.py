"""The ModelArts HTTP client: both API generations, error parsing, retries, timeouts, deadlines.

Transport failures become `ApiError`s whose `error_code` is one of our own names (there is no
ModelArts code for them): `ConnectTimeout`, `ReadTimeout`, `ConnectionError` (refused, reset,
DNS, body cut short), `SSLError` (TLS handshake or certificate), `RequestError` (anything else
`requests` raises). A 2xx whose body cannot be used where a body is needed raises
`MalformedResponse`; an unexpected 3xx raises `UnexpectedRedirect`. A listing whose pages do not
add up raises `InconsistentListing`; one longer than `MAX_LIST_PAGES` pages, `ListingTooLarge`.
"""

from __future__ import annotations

import email.utils
import functools
import html
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from enum import Enum
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import requests.auth
import urllib3
from requests.adapters import HTTPAdapter

from modelarts_cleanup.exceptions import ApiError, ConfigurationError, DeadlineExceeded

__all__ = [
    "CONNECTION_ERROR",
    "CONNECT_TIMEOUT",
    "INCONSISTENT_LISTING",
    "LISTING_TOO_LARGE",
    "MALFORMED_RESPONSE",
    "MAX_LIST_PAGES",
    "NOTEBOOK_FEATURES",
    "NOTEBOOK_PAGE_SIZE",
    "NOT_FOUND_CODES",
    "READ_TIMEOUT",
    "REQUEST_ERROR",
    "SSL_ERROR",
    "UNEXPECTED_REDIRECT",
    "ApiGeneration",
    "Billing",
    "DeleteResult",
    "ListedInstance",
    "ModelArtsClient",
    "RetryPolicy",
    "Timeouts",
    "endpoint_for_region",
    "new_session",
    "parse_billing",
    "parse_error",
    "retry_after_seconds",
]

_log = logging.getLogger(__name__)

# Our own error codes for failures that never reached a ModelArts answer.
CONNECT_TIMEOUT = "ConnectTimeout"
READ_TIMEOUT = "ReadTimeout"
CONNECTION_ERROR = "ConnectionError"
SSL_ERROR = "SSLError"
REQUEST_ERROR = "RequestError"
MALFORMED_RESPONSE = "MalformedResponse"
# A ModelArts answer is a few KiB; a page of 50 notebooks well under a MiB.
MAX_BODY_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_UNKNOWN_LENGTH_GRACE = 1.0
UNEXPECTED_REDIRECT = "UnexpectedRedirect"
INCONSISTENT_LISTING = "InconsistentListing"
LISTING_TOO_LARGE = "ListingTooLarge"

# ListNotebooks accepts limit 10, 20 or 50 (SDK ListNotebooksRequest); Terraform's data source
# pages with 50 and `offset += len(page)`: the offset counts records, not pages.
NOTEBOOK_PAGE_SIZE = 50
# NOTEBOOK (the default) lists billed instances only; the free CodeLab ones need DEFAULT.
NOTEBOOK_FEATURES = ("NOTEBOOK", "DEFAULT")
# A safety bound on one listing (all features together): 100 pages are 5000 notebooks, far
# beyond any quota, so more means the server is not paging the way we think it does.
MAX_LIST_PAGES = 100

# "Does not exist": 6309 on both generations, 6404 on the notebook API (Terraform maps both).
NOT_FOUND_CODES: frozenset[str] = frozenset({"ModelArts.6309", "ModelArts.6404"})

_PROJECT_ID = re.compile(r"[0-9a-f]{32}")
_INSTANCE_ID = re.compile(
    r"(?:DE-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

_CODE_KEYS = ("error_code", "errorCode", "code")
_MSG_KEYS = ("error_msg", "error_message", "errorMsg", "message")
_SHORT_TEXT = 200
_LONG_TEXT = 500

# Epoch milliseconds outside [1973-03-03, 2286-11-20] are not milliseconds: most likely seconds
# (or microseconds). Reading seconds as milliseconds would date an instance to 1970 and make it
# look ancient to an age policy, so such values count as unknown instead.
_MIN_EPOCH_MS = 100_000_000_000
_MAX_EPOCH_MS = 10_000_000_000_000


class ApiGeneration(str, Enum):
    """Which ModelArts API manages the instances."""

    NOTEBOOK = "notebook"
    DEVENVIRON = "devenviron"


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
class DeleteResult:
    """What a successful (or moot) deletion looked like."""

    outcome: Literal["deleted", "already_absent"]
    http_status: int
    request_id: str | None
    attempts: int
    status: str | None  # instance status the API returned (e.g. "DELETING"), if any


Billing = Literal["prepaid", "postpaid"]


@dataclass(frozen=True)
class ListedInstance:
    """One instance as a listing (or a re-read) showed it."""

    project_id: str
    instance_id: str
    name: str | None
    status: str | None
    created_ms: int | None  # epoch milliseconds, None when absent or implausible
    updated_ms: int | None
    feature: str | None  # notebook API only: NOTEBOOK (billed) or DEFAULT (free CodeLab)
    billing: Billing | None  # None: nothing in the object says how it is paid


_DEFAULT_RETRY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def endpoint_for_region(region: str) -> str:
    """The public ModelArts endpoint of a Huawei Cloud region."""
    # Unknown but well-formed regions pass: new regions appear before any list is updated.
    # SDKv3 uses `.myhuaweicloud.cn` for ap-southeast-1 where docs and Terraform use `.com`;
    # we keep the one uniform pattern and anyone needing the other sets the endpoint outright.
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ConfigurationError(
            f"invalid region {region!r}: expected lowercase letters, digits and hyphens "
            "such as 'cn-north-4'"
        )
    return f"https://modelarts.{region}.myhuaweicloud.com"


def new_session(pool_size: int, auth: requests.auth.AuthBase | None = None) -> requests.Session:
    """A session whose connection pool fits `pool_size` concurrent requests."""
    # Imported here so that the package's __init__ may import this module freely.
    from modelarts_cleanup import __version__

    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    size = max(pool_size, 10)
    session = requests.Session()
    # requests' default pool holds 10 connections per host; with more workers the extra
    # connections are opened and thrown away on every request. Retries are ours, not urllib3's.
    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"modelarts-cleanup/{__version__}"
    session.headers["Accept"] = "application/json"
    session.auth = auth
    return session


def _settle_environment(session: requests.Session, endpoint: str) -> None:
    """Read the proxy and CA-bundle variables once, for the one host every call goes to.

    With `trust_env` on, requests scans the whole environment twice per request: a fifth of the
    client's CPU. The values it would find are the same for every call, so they are fixed here,
    exactly as requests would merge them, and the per-request scan is switched off. TLS
    verification stays on: `verify` can only become a CA bundle path, never False.
    """
    if not session.trust_env:
        return
    merged = session.merge_environment_settings(endpoint, {}, None, session.verify, None)
    session.proxies.update(merged["proxies"])
    session.verify = merged["verify"] if merged["verify"] is not None else True
    session.cert = merged["cert"]
    session.trust_env = False


def parse_error(response: requests.Response) -> tuple[str | None, str | None]:
    """(error_code, error_msg) from an error response, whichever spelling the service used."""
    code, msg, _ = _parse_error_body(response)
    return code, msg


def parse_billing(instance: Mapping[str, Any]) -> Billing | None:
    """How an instance is paid, read fail-closed: any pre-paid sign wins; unsure is None.

    With no billing field at all, a notebook on the public resource pool is pay-per-use, the only
    mode the API documents for one; a notebook on a dedicated pool (`pool.id`) is paid through
    the pool, which may be yearly/monthly and is not shown here: unknown.
    """
    verdicts = [_billing_word(value) for value in _billing_values(instance)]
    if "prepaid" in verdicts:
        return "prepaid"
    # A field we know but a value we do not ("COMMON", spot "2", ...) leaves the mode unknown,
    # even when another field looks post-paid.
    if "unknown" in verdicts:
        return None
    if "postpaid" in verdicts:
        return "postpaid"
    pool = instance.get("pool")
    if isinstance(pool, Mapping) and pool.get("id"):
        return None
    return None if pool not in (None, {}) else "postpaid"


def retry_after_seconds(response: requests.Response, *, now: float) -> float | None:
    """Seconds the `Retry-After` header asks for (delta or HTTP date), or None.

    `now` is the wall-clock time (epoch seconds), used only when the response has no `Date`.
    """
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    # Measured against the server's own Date when given, so our clock skew does not matter.
    server_now = _http_date(response.headers.get("Date", ""))
    reference = server_now if server_now is not None else now
    return max(0.0, when - reference)


class ModelArtsClient:
    """Calls ModelArts for one API generation; every call goes through one retrying core."""

    def __init__(
        self,
        *,
        session: requests.Session,
        endpoint: str,
        api: ApiGeneration,
        retry: RetryPolicy = _DEFAULT_RETRY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        secrets: Sequence[str] = (),
    ) -> None:
        self._session = session
        # Values that must never appear in an error, even when a server (or a proxy) echoes them.
        self._secrets = tuple(secret for secret in secrets if len(secret) >= 4)
        self._endpoint, self._host = _checked_endpoint(endpoint)
        _settle_environment(session, self._endpoint)
        self._api = ApiGeneration(api)
        self._retry = retry
        self._timeouts = timeouts
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._wall_clock = wall_clock

    @property
    def api(self) -> ApiGeneration:
        """The API generation this client speaks."""
        return self._api

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (no trailing slash)."""
        return self._endpoint

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> DeleteResult:
        """Delete one instance; an instance that is already gone is `already_absent`."""
        path = self._instance_path(project_id, instance_id)
        answer = self._call("DELETE", path, project_id=project_id, deadline=deadline)
        response = answer.response
        if answer.absent:
            return DeleteResult(
                outcome="already_absent",
                http_status=response.status_code,
                request_id=_request_id(response),
                attempts=answer.attempts,
                status=None,
            )
        body = _json_object(response)
        status = body.get("status") if body is not None else None
        return DeleteResult(
            outcome="deleted",
            http_status=response.status_code,
            request_id=_request_id(response),
            attempts=answer.attempts,
            status=status if isinstance(status, str) else None,
        )

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        """The instance as the API describes it, or None when it does not exist."""
        path = self._instance_path(project_id, instance_id)
        answer = self._call("GET", path, project_id=project_id, deadline=deadline)
        if answer.absent:
            return None
        body = _json_object(answer.response)
        if body is None:
            # Not retried here: whoever polls will ask again.
            raise ApiError(
                f"GET {path}: HTTP {answer.response.status_code} with a body that is not a "
                "JSON object",
                http_status=answer.response.status_code,
                error_code=MALFORMED_RESPONSE,
                error_msg="response body is not a JSON object",
                request_id=_request_id(answer.response),
                attempts=answer.attempts,
                retryable=True,
            )
        return body

    def get_listed_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> ListedInstance | None:
        """The instance read as a listing reads it (status, times, billing), or None if gone."""
        body = self.get_instance(project_id, instance_id, deadline=deadline)
        if body is None:
            return None
        if body.get("id", instance_id) != instance_id:
            raise ApiError(
                "GET answered for another instance",
                error_code=INCONSISTENT_LISTING,
                error_msg="the instance in the answer is not the one asked for",
            )
        item = {**body, "id": instance_id}
        if self._api is ApiGeneration.NOTEBOOK:
            return _listed_notebook(project_id, item, "NOTEBOOK")
        return _listed_devenviron(project_id, item)

    def stop_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> None:
        """Ask the instance to stop; returns once the API accepted (an absent one needs none)."""
        path = self._instance_path(project_id, instance_id)
        if self._api is ApiGeneration.NOTEBOOK:
            self._call("POST", f"{path}/stop", project_id=project_id, deadline=deadline)
        else:
            self._call(
                "POST",
                f"{path}/action",
                project_id=project_id,
                json_body={"action": "stop"},
                deadline=deadline,
            )

    def list_instances(
        self, project_id: str, *, deadline: float | None = None
    ) -> list[ListedInstance]:
        """Every instance of the project, all pages, deduplicated; raises rather than be partial."""
        if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
            raise ValueError("project_id must be 32 lowercase hexadecimal characters")
        listing = _Listing(project_id)
        if self._api is ApiGeneration.NOTEBOOK:
            for feature in NOTEBOOK_FEATURES:
                self._page_through(
                    listing,
                    f"/v1/{project_id}/notebooks",
                    # Terraform's data source sends offset=0 too; the old API gets an offset
                    # only once it needs one, so its first request is the documented one.
                    {"limit": str(NOTEBOOK_PAGE_SIZE), "offset": "0", "feature": feature},
                    ("data", "total"),
                    functools.partial(_listed_notebook, project_id, feature=feature),
                    deadline,
                )
        else:
            # limit=0 means "all"; should an answer still hold fewer than total_count, the
            # offset pages on from where it stopped.
            self._page_through(
                listing,
                f"/v1/{project_id}/demanager/instances",
                {"de_type": "Notebook", "limit": "0"},
                ("instances", "total_count"),
                lambda item: _listed_devenviron(project_id, item),
                deadline,
            )
        return listing.instances

    def _page_through(
        self,
        listing: _Listing,
        path: str,
        query: Mapping[str, str],
        keys: tuple[str, str],
        convert: Callable[[Mapping[str, Any]], ListedInstance],
        deadline: float | None,
    ) -> None:
        """Fetch pages by record offset until `seen` reaches the total the pages announce."""
        seen = 0
        while True:
            params = dict(query)
            if seen:
                params["offset"] = str(seen)
            page = self._list_page(listing, path, params, keys, deadline)
            seen += len(page.items)
            for item in page.items:
                listing.add(convert(item))
            if _listing_done(page, seen):
                return

    def _list_page(
        self,
        listing: _Listing,
        path: str,
        params: Mapping[str, str],
        keys: tuple[str, str],
        deadline: float | None,
    ) -> _Page:
        """One page, checked against the documented shape (`keys`: the array and the total)."""
        what = f"GET {path}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        if listing.pages >= MAX_LIST_PAGES:
            raise ApiError(
                f"{what}: the listing did not end within {MAX_LIST_PAGES} pages; not fetching more",
                error_code=LISTING_TOO_LARGE,
                error_msg=f"more than {MAX_LIST_PAGES} pages",
                attempts=0,
                retryable=False,
            )
        listing.pages += 1
        answer = self._call(
            "GET", path, project_id=listing.project_id, params=params, deadline=deadline
        )
        response = answer.response
        if answer.absent:
            # "No such instance" makes no sense for a collection: the endpoint or the API
            # generation is wrong. Never read it as an empty project.
            code, msg = parse_error(response)
            raise ApiError(
                f"{what}: HTTP {response.status_code}" + (f" {code}" if code else "") + ": the "
                "listing itself was not found (check the endpoint and the API generation)",
                http_status=response.status_code,
                error_code=code,
                error_msg=msg,
                request_id=_request_id(response),
                attempts=answer.attempts,
                retryable=False,
            )
        items_key, total_key = keys
        body = _json_object(response)
        items = body.get(items_key) if body is not None else None
        total = body.get(total_key) if body is not None else None
        problem = None
        if body is None:
            problem = "the page is not a JSON object"
        elif not isinstance(items, list):
            problem = f"`{items_key}` is missing or not an array"
        elif not isinstance(total, int) or isinstance(total, bool) or total < 0:
            problem = f"`{total_key}` is missing or not a non-negative integer"
        elif not all(isinstance(item, dict) for item in items):
            problem = f"`{items_key}` holds something that is not an object"
        elif not all(isinstance(i.get("id"), str) and i["id"].strip() for i in items):
            problem = "an instance has no `id`"
        if problem is not None or not isinstance(items, list) or not isinstance(total, int):
            raise ApiError(
                f"{what}: HTTP {response.status_code} but {problem}",
                http_status=response.status_code,
                error_code=MALFORMED_RESPONSE,
                error_msg=problem,
                request_id=_request_id(response),
                attempts=answer.attempts,
                retryable=True,
            )
        _log.debug("%s: %d instances of %d", what, len(items), total)
        return _Page(what, items, total, _request_id(response))

    # -- the core -------------------------------------------------------------------------

    def _instance_path(self, project_id: str, instance_id: str) -> str:
        _check_ids(project_id, instance_id)
        if self._api is ApiGeneration.NOTEBOOK:
            return f"/v1/{project_id}/notebooks/{instance_id}"
        return f"/v1/{project_id}/demanager/instances/{instance_id}"

    def _call(
        self,
        method: str,
        path: str,
        *,
        project_id: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> _Answer:
        """Send one logical request, retrying what is transient; raise ApiError otherwise."""
        if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
            raise ValueError("project_id must be 32 lowercase hexadecimal characters")
        headers = {"X-Project-Id": project_id}
        data: bytes | None = None
        if json_body is not None:
            # Serialised here so the bytes signed are the bytes sent.
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        attempts = 0
        last: ApiError | None = None
        while True:
            timeout = self._timeout(deadline, what, attempts, last)
            attempts += 1
            retry_after: float | None = None
            try:
                response = self._session.request(
                    method,
                    self._endpoint + path,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    # A 301/302 would turn DELETE into GET and its 200 into a false "deleted".
                    allow_redirects=False,
                    stream=True,
                )
                self._read_body(response, deadline, what, attempts)
            except requests.RequestException as exc:
                error = self._transport_error(exc, what, attempts, timeout)
            else:
                verdict = _judge(response, what, attempts)
                if isinstance(verdict, str):
                    return _Answer(response, attempts, absent=verdict == "absent")
                error = self._scrubbed(verdict)
                if error.retryable:
                    retry_after = retry_after_seconds(response, now=self._wall_clock())
            if not error.retryable:
                raise error
            last = error
            if attempts >= self._retry.max_attempts:
                raise _again(
                    error,
                    f"{error}; gave up after {attempts} attempts",
                    attempts=attempts,
                )
            delay = self._delay(attempts, retry_after, error)
            if deadline is not None and self._clock() + delay >= deadline:
                raise _again(
                    error,
                    f"{error}; the deadline cut the retries after {attempts} "
                    f"attempt{'s' if attempts != 1 else ''}",
                    attempts=attempts,
                )
            _log.debug(
                "retrying %s after %s (attempt %d of %d) in %.3fs",
                what,
                error.error_code or error.http_status,
                attempts,
                self._retry.max_attempts,
                delay,
            )
            self._sleep(delay)

    def _read_body(
        self, response: requests.Response, deadline: float | None, what: str, attempts: int
    ) -> None:
        """Read the body as it arrives, up to MAX_BODY_BYTES and never past the deadline.

        The read timeout bounds each wait for a byte, not the whole body: a server sending one
        byte a second would hold the call for as long as it likes. Reading what has arrived and
        looking at the clock between reads bounds the call by the deadline.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := _read_some(response):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise ApiError(
                        f"{what}: HTTP {response.status_code} with a body over "
                        f"{MAX_BODY_BYTES} bytes",
                        http_status=response.status_code,
                        error_code=MALFORMED_RESPONSE,
                        error_msg="response body too large for a ModelArts answer",
                        request_id=_request_id(response),
                        attempts=attempts,
                    )
                chunks.append(chunk)
                remaining = getattr(response.raw, "length_remaining", None)
                if remaining == 0:
                    break  # all that Content-Length announced is here
                # Without a Content-Length the end is only seen by reading on: a little grace,
                # so a complete answer that merely ends late is not thrown away.
                grace = 0.0 if remaining is not None else _UNKNOWN_LENGTH_GRACE
                if deadline is not None and self._clock() >= deadline + grace:
                    raise requests.exceptions.ReadTimeout(
                        "the deadline passed while the response body was still arriving"
                    )
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)
        # close() only hands the connection back when it believes the body was consumed.
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # hands the connection back to the pool: the body is all read

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

    def _timeout(
        self, deadline: float | None, what: str, attempts: int, last: ApiError | None
    ) -> tuple[float, float]:
        """(connect, read) for the next attempt, never reaching past the deadline."""
        connect, read = self._timeouts.connect, self._timeouts.read
        if deadline is None:
            return connect, read
        left = deadline - self._clock()
        if left <= 0:
            message = f"{what}: the deadline passed before attempt {attempts + 1} could start"
            if last is not None:
                message += f" (last error: {last})"
            raise DeadlineExceeded(
                message,
                http_status=last.http_status if last else None,
                error_code=last.error_code if last else None,
                error_msg=last.error_msg if last else None,
                request_id=last.request_id if last else None,
                attempts=attempts,
                retryable=True,
            )
        return min(connect, left), min(read, left)

    def _delay(self, attempts: int, retry_after: float | None, error: ApiError) -> float:
        """Seconds to wait before the next attempt: the server's wish, else jittered backoff."""
        if retry_after is not None:
            if retry_after > self._retry.max_retry_after:
                raise _again(
                    error,
                    f"{error}; the server asked to wait {retry_after:g}s, longer than the "
                    f"{self._retry.max_retry_after:g}s we wait",
                    attempts=attempts,
                )
            return retry_after
        ceiling = min(self._retry.max_delay, self._retry.base_delay * 2.0 ** (attempts - 1))
        # Full jitter spreads concurrent workers apart after a shared throttling spike.
        return self._jitter() * ceiling

    def _transport_error(
        self,
        exc: requests.RequestException,
        what: str,
        attempts: int,
        timeout: tuple[float, float],
    ) -> ApiError:
        """An ApiError for a request that got no HTTP answer; never quotes the URL or headers."""
        # Order matters: ConnectTimeout and SSLError are ConnectionErrors too.
        retryable = True
        if isinstance(exc, requests.ConnectTimeout):
            code = CONNECT_TIMEOUT
            description = f"no connection to {self._host} within {timeout[0]:g}s"
        elif isinstance(exc, requests.ReadTimeout):
            code = READ_TIMEOUT
            description = f"no answer from {self._host} within {timeout[1]:g}s"
        elif isinstance(exc, requests.exceptions.SSLError):
            # Almost always a certificate or endpoint mistake: retrying only burns the deadline.
            code, retryable = SSL_ERROR, False
            description = f"TLS with {self._host} failed ({_root_cause(exc)})"
        elif isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            code = CONNECTION_ERROR
            description = f"connection to {self._host} failed ({_root_cause(exc)})"
        else:
            code, retryable = REQUEST_ERROR, False
            description = f"request to {self._host} failed ({type(exc).__name__})"
        return ApiError(
            f"{what}: {description}",
            error_code=code,
            error_msg=description,
            attempts=attempts,
            retryable=retryable,
        )


class _Listing:
    """What one `list_instances` call gathered so far: instances in order, ids seen, pages."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.instances: list[ListedInstance] = []
        self.pages = 0
        self._ids: set[str] = set()

    def add(self, instance: ListedInstance) -> None:
        # Offset paging over a changing collection repeats records (a newer instance pushes
        # older ones to the next page), and one instance could show under two features.
        if instance.instance_id not in self._ids:
            self._ids.add(instance.instance_id)
            self.instances.append(instance)


@dataclass(frozen=True)
class _Page:
    """One checked page of a listing."""

    what: str  # "GET path?query", for messages
    items: list[Mapping[str, Any]]
    total: int
    request_id: str | None


def _listing_done(page: _Page, seen: int) -> bool:
    """True once `seen` records reach the page's total; raise when the pages cannot be right."""
    if seen == page.total:
        return True
    if seen < page.total and page.items:
        return False
    # Deletions between pages shrink the total and shift records (one may be skipped, which the
    # next run repairs); more records than the total, or a page that stops short of it, is not
    # that: the listing cannot be trusted, and listing again is the remedy.
    detail = (
        f"{seen} records seen but the total is now {page.total}"
        if seen > page.total
        else f"an empty page after {seen} records, before the total of {page.total}"
    )
    raise ApiError(
        f"{page.what}: inconsistent listing: {detail}",
        error_code=INCONSISTENT_LISTING,
        error_msg=detail,
        request_id=page.request_id,
        attempts=1,
        retryable=True,
    )


def _listed_notebook(project_id: str, item: Mapping[str, Any], feature: str) -> ListedInstance:
    # Top-level create_at/update_at as in the API examples; the SDK model (and Terraform) only
    # has them inside `lease`.
    lease = item.get("lease")
    lease = lease if isinstance(lease, dict) else {}
    created = _epoch_ms(item.get("create_at"))
    updated = _epoch_ms(item.get("update_at"))
    listed_feature = item.get("feature")
    return ListedInstance(
        project_id=project_id,
        instance_id=item["id"],
        name=_text(item.get("name")),
        status=_text(item.get("status")),
        created_ms=created if created is not None else _epoch_ms(lease.get("create_at")),
        updated_ms=updated if updated is not None else _epoch_ms(lease.get("update_at")),
        # The server filtered by the feature asked for, so that is what the instance has.
        feature=listed_feature if isinstance(listed_feature, str) else feature,
        billing=parse_billing(item),
    )


def _listed_devenviron(project_id: str, item: Mapping[str, Any]) -> ListedInstance:
    return ListedInstance(
        project_id=project_id,
        instance_id=item["id"],
        name=_text(item.get("name")),
        status=_text(item.get("status")),
        created_ms=_epoch_ms(item.get("creation_timestamp")),
        updated_ms=_epoch_ms(item.get("latest_update_timestamp")),
        feature=None,
        billing=parse_billing(item),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds from an int, an integral float or a string of digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[0-9]{1,16}", value):
            return None
        value = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    elif not isinstance(value, int):
        return None
    return value if _MIN_EPOCH_MS <= value <= _MAX_EPOCH_MS else None


# Where an instance's billing mode may be written. The notebook API documents none: NotebookResp
# (SDKv3 huaweicloudsdkmodelarts/v1/model/notebook_resp.py) has only `feature` (DEFAULT = free
# CodeLab, NOTEBOOK = billed) and `billing_items` (STORAGE/COMPUTE/ALL: what is billed, not how),
# and the old devenviron instance (OTC historical_apis/devenviron_old_version/
# obtaining_development_environment_instances.rst) only `flavor_details.promo_type` (Free or
# NoDiscount). Huawei's billing pages say notebook compute on public pools is pay-per-use and
# that on a dedicated pool is paid with the pool (which may be yearly/monthly). The spellings
# below are the ones ModelArts uses on its other resources, so that a notebook growing one is
# read right:
# - `charging_mode` on DevServer (server_response.py): COMMON | POST_PAID | PRE_PAID;
# - `charging_info.charging_mode` (charging_info.py, DevServer/HyperInstance): the same values;
# - `os.modelarts/billing.mode` in pool `metadata.annotations` (pool_meta_annotations.py;
#   Terraform resource_huaweicloud_modelarts_resource_pool.go): "0" on demand, "1" yearly/monthly;
# - ECS-style `metadata.charging_mode` "0"/"1"/"2" (spot), `extend_params.charging_mode`
#   prePaid/postPaid (the old API's `spec.extend_params` is a free map);
# - `billing_mode`, `pay_type`, `charge_mode` and camelCase forms: names other Huawei Cloud APIs
#   use.
_BILLING_KEYS = (
    "charging_mode",
    "chargingMode",
    "billing_mode",
    "billingMode",
    "charge_mode",
    "chargeMode",
    "pay_type",
    "payType",
    "os.modelarts/billing.mode",
)
_BILLING_CONTAINERS = (
    ("charging_info",),
    ("chargingInfo",),
    ("billing_info",),
    ("extend_params",),
    ("spec", "extend_params"),
    ("metadata",),
    ("metadata", "annotations"),
    ("annotations",),
)
_PREPAID_WORDS = frozenset(
    {
        "prepaid",
        "1",
        "yearly",
        "monthly",
        "yearlymonthly",
        "period",
        "periodic",
        "包年包月",
        "包周期",
    }
)
_POSTPAID_WORDS = frozenset({"postpaid", "0", "ondemand", "payperuse", "按需", "按需计费"})


def _billing_values(instance: Mapping[str, Any]) -> list[Any]:
    """Every value found under a known billing key, at the top level or in a known container."""
    containers: list[Mapping[str, Any]] = [instance]
    for route in _BILLING_CONTAINERS:
        current: Any = instance
        for step in route:
            current = current.get(step) if isinstance(current, Mapping) else None
        if isinstance(current, Mapping):
            containers.append(current)
    # A known key holding null still counts: it is a mode we cannot read, not the absence of one.
    return [c[key] for c in containers for key in _BILLING_KEYS if key in c]


def _billing_word(value: Any) -> Literal["prepaid", "postpaid", "unknown"]:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "unknown"
    # PRE_PAID, prePaid, pre-paid, "Yearly/Monthly", " 1 " all normalise to one word.
    word = re.sub(r"[\s_\-/]", "", str(value)).lower()
    if word in _PREPAID_WORDS:
        return "prepaid"
    if word in _POSTPAID_WORDS:
        return "postpaid"
    return "unknown"


_Verdict = Literal["ok", "absent"]


@dataclass(frozen=True)
class _Answer:
    """A final answer from `_call`: a 2xx, or a response that means "does not exist"."""

    response: requests.Response
    attempts: int
    absent: bool


def _judge(response: requests.Response, what: str, attempts: int) -> _Verdict | ApiError:
    """Classify one HTTP answer: "ok", "absent" or the error; every status decision lives here."""
    status = response.status_code
    if 200 <= status < 300:
        if not response.content.strip() or _json_object(response) is not None:
            return "ok"
        # ModelArts answers with JSON or nothing; anything else (a proxy's HTML page, a truncated
        # body) does not show the request was carried out. Asking again is safe: a repeated
        # DELETE of a deleted instance answers "not found".
        return ApiError(
            f"{what}: HTTP {status} with a body that is not a JSON object",
            http_status=status,
            error_code=MALFORMED_RESPONSE,
            error_msg="a success status with a body ModelArts does not send",
            request_id=_request_id(response),
            attempts=attempts,
            retryable=True,
        )
    code, msg, body_kind = _parse_error_body(response)
    if _means_absent(status, code, body_kind):
        return "absent"
    retryable = status in (408, 429) or 500 <= status < 600
    if 300 <= status < 400:
        code = code or UNEXPECTED_REDIRECT
        detail = f"HTTP {status}: unexpected redirect, check the endpoint"
    elif status == 401:
        detail = f"authentication rejected ({code or 'HTTP 401'}): {_auth_hint(code)}"
    elif status == 403:
        detail = f"permission denied ({code or 'HTTP 403'}): {_permission_hint(code)}"
    else:
        detail = f"HTTP {status}" + (f" {code}" if code else "")
    if msg:
        detail += f": {msg}"
    return ApiError(
        f"{what}: {detail}",
        http_status=status,
        error_code=code,
        error_msg=msg,
        request_id=_request_id(response),
        attempts=attempts,
        retryable=retryable,
    )


def _means_absent(status: int, code: str | None, body_kind: str) -> bool:
    """True when the answer says the instance does not exist (fail closed when unsure)."""
    if status not in (400, 404):
        return False
    if code in NOT_FOUND_CODES:
        return True
    # Otherwise only a bare 404 with nothing in it. A 404 that says anything else (an HTML or
    # text page, JSON without a not-found code, APIGW.0101 "no such API", another ModelArts
    # code) may come from a proxy or a wrong endpoint, and calling it "already gone" would
    # report success for instances that still exist.
    return status == 404 and code is None and body_kind == "empty"


def _auth_hint(code: str | None) -> str:
    if code == "APIGW.0301":
        # Each blind retry counts towards the AK lockout (more than 5 bad signatures in a row).
        return "check the AK/SK (signature rejected; repeated failures lock the key for 5 minutes)"
    if code in ("ModelArts.6620", "APIGW.0307") or (code or "").startswith("ModelArts.020"):
        return "the IAM token is missing, expired or invalid: obtain a new project-scoped token"
    return "check the credentials (AK/SK, security token or IAM token)"


def _permission_hint(code: str | None) -> str:
    if code == "ModelArts.0210":
        return "the project in the URL does not match the credentials' project"
    return "check that the user or agency is granted ModelArts permissions in this project"


def _parse_error_body(response: requests.Response) -> tuple[str | None, str | None, str]:
    """(code, msg, body kind) where the kind is "empty", "json" or "text"."""
    text = response.content.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None, "empty"
    body = _loads(text)
    if not isinstance(body, dict):
        # Valid JSON but not an object: not a shape ModelArts or its gateway ever sends.
        return None, _short_text(text), "text"
    code, msg = _error_fields(body, depth=0)
    return code, msg, "json"


def _error_fields(body: Mapping[str, Any], *, depth: int) -> tuple[str | None, str | None]:
    """First code and message found at this level, then in nested objects ("error" first)."""
    code = _first_scalar(body, _CODE_KEYS)
    msg = _first_scalar(body, _MSG_KEYS)
    if msg is None and isinstance(body.get("error"), str):
        msg = body["error"]
    if (code is None or msg is None) and depth < 3:
        nested = sorted(
            (v for v in body.values() if isinstance(v, dict)),
            key=lambda v: v is not body.get("error"),
        )
        for value in nested:
            inner_code, inner_msg = _error_fields(value, depth=depth + 1)
            code = code if code is not None else inner_code
            msg = msg if msg is not None else inner_msg
            if code is not None and msg is not None:
                break
    return code, (_clip(msg, _LONG_TEXT) if msg is not None else None)


def _first_scalar(body: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip()
    return None


def _short_text(text: str) -> str | None:
    """A one-line digest of a non-JSON body: an HTML page's title, else its text."""
    lowered = text[:2000].lower()
    if "<html" in lowered or "<!doctype" in lowered or lowered.startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    return _clip(text, _SHORT_TEXT) if text else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_some(response: requests.Response) -> bytes:
    """What has arrived of the body (at most a chunk); urllib3's errors as requests names them."""
    try:
        chunk: bytes = response.raw.read1(_CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(str(exc)) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.exceptions.ConnectionError(str(exc)) from exc
    return chunk


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    body = _loads(response.content.decode("utf-8", errors="replace"))
    return body if isinstance(body, dict) else None


_NOT_JSON = object()


def _loads(text: str) -> Any:
    """The JSON value, or _NOT_JSON; a hostile body (absurd nesting, huge numbers) is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _request_id(response: requests.Response) -> str | None:
    return response.headers.get("X-Request-Id") or None


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _again(error: ApiError, message: str, *, attempts: int) -> ApiError:
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


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's class name (its text may hold the URL, so never the text)."""
    current = exc
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
    return type(current).__name__


def _check_ids(project_id: str, instance_id: str) -> None:
    """Refuse IDs that could change the URL's meaning (payload validation happens earlier)."""
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        raise ValueError("project_id must be 32 lowercase hexadecimal characters")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise ValueError("instance_id must be a UUID, optionally prefixed with 'DE-'")


def _checked_endpoint(endpoint: str) -> tuple[str, str]:
    """(base URL without trailing slash, host[:port] for messages)."""
    if not isinstance(endpoint, str):
        raise ConfigurationError("invalid endpoint: expected a URL string")
    parts = urlsplit(endpoint.strip())
    if "@" in parts.netloc:
        # Never echo it: the user part may be a credential.
        raise ConfigurationError("invalid endpoint: credentials must not be part of the URL")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"invalid endpoint {endpoint!r}: bad port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"invalid endpoint {endpoint!r}: expected https://host[:port]")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"invalid endpoint {endpoint!r}: no query or fragment allowed")
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    return endpoint.strip().rstrip("/"), host
