"""What an answer from ModelArts means: done, absent, retry or fail; error bodies and hints. Pure.

Every status decision lives in `judge`: the transport asks it about each reply and retries what
it calls retryable; nothing else looks at status codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from functools import cached_property
from typing import Any, Literal

from ..exceptions import ApiError
from ..vocabulary import NOT_FOUND_CODES

# Our own error codes for answers that do not show what they should (there is no ModelArts code).
MALFORMED_RESPONSE = "MalformedResponse"
UNEXPECTED_REDIRECT = "UnexpectedRedirect"

_CODE_KEYS = ("error_code", "errorCode", "code")
_MSG_KEYS = ("error_msg", "error_message", "errorMsg", "message")
_SHORT_TEXT = 200
_LONG_TEXT = 500
# Error bodies nest a few levels at most ({"error": {"error_code": ...}}).
_MAX_ERROR_DEPTH = 3


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read whole: status, headers (names lower-cased) and body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        """A reply whose header names are matched case-insensitively."""
        return cls(status, {name.lower(): value for name, value in headers.items()}, body)

    def header(self, name: str) -> str | None:
        """A header's value, or None."""
        return self.headers.get(name.lower())

    @property
    def request_id(self) -> str | None:
        """ModelArts' `X-Request-Id`, logged with every result."""
        return self.header("X-Request-Id") or None

    @cached_property
    def json(self) -> Any:
        """The body as JSON, or NOT_JSON; parsed once."""
        return loads(self.body.decode("utf-8", errors="replace"))

    def json_object(self) -> dict[str, Any] | None:
        """The body when it is a JSON object, else None."""
        body = self.json
        return body if isinstance(body, dict) else None


NOT_JSON: Any = object()


def loads(text: str) -> Any:
    """The JSON value, or NOT_JSON; a hostile body (absurd nesting, huge numbers) is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


Verdict = Literal["ok", "absent"]


def judge(reply: Reply, what: str, attempts: int) -> Verdict | ApiError:
    """Classify one answer: "ok", "absent" or the error (whose `retryable` says what to do)."""
    status = reply.status
    if 200 <= status < 300:
        if not reply.body.strip() or reply.json_object() is not None:
            return "ok"
        # ModelArts answers with JSON or nothing; anything else (a proxy's HTML page, a truncated
        # body) does not show the request was carried out. Asking again is safe: a repeated
        # DELETE of a deleted instance answers "not found".
        return ApiError(
            f"{what}: HTTP {status} with a body that is not a JSON object",
            http_status=status,
            error_code=MALFORMED_RESPONSE,
            error_msg="a success status with a body ModelArts does not send",
            request_id=reply.request_id,
            attempts=attempts,
            retryable=True,
        )
    code, msg, body_kind = _parse_error_body(reply)
    if means_absent(status, code, body_kind):
        return "absent"
    retryable = status in (408, 429) or 500 <= status < 600
    if 300 <= status < 400:
        code = code or UNEXPECTED_REDIRECT
        detail = f"HTTP {status}: unexpected redirect, check the endpoint"
    elif status == 401:
        detail = f"authentication rejected ({code or 'HTTP 401'}): {auth_hint(code)}"
    elif status == 403:
        detail = f"permission denied ({code or 'HTTP 403'}): {permission_hint(code)}"
    else:
        detail = f"HTTP {status}" + (f" {code}" if code else "")
    if msg:
        detail += f": {msg}"
    return ApiError(
        f"{what}: {detail}",
        http_status=status,
        error_code=code,
        error_msg=msg,
        request_id=reply.request_id,
        attempts=attempts,
        retryable=retryable,
    )


def means_absent(status: int, code: str | None, body_kind: str) -> bool:
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


def auth_hint(code: str | None) -> str:
    """What to check after a 401, by its code."""
    if code == "APIGW.0301":
        # Each blind retry counts towards the AK lockout (more than 5 bad signatures in a row).
        return "check the AK/SK (signature rejected; repeated failures lock the key for 5 minutes)"
    if code in ("ModelArts.6620", "APIGW.0307") or (code or "").startswith("ModelArts.020"):
        return "the IAM token is missing, expired or invalid: obtain a new project-scoped token"
    return "check the credentials (AK/SK, security token or IAM token)"


def permission_hint(code: str | None) -> str:
    """What to check after a 403, by its code."""
    if code == "ModelArts.0210":
        return "the project in the URL does not match the credentials' project"
    return "check that the user or agency is granted ModelArts permissions in this project"


def parse_error(reply: Reply) -> tuple[str | None, str | None]:
    """(error_code, error_msg) from an error answer, whichever spelling the service used."""
    code, msg, _ = _parse_error_body(reply)
    return code, msg


def _parse_error_body(reply: Reply) -> tuple[str | None, str | None, str]:
    """(code, msg, body kind) where the kind is "empty", "json" or "text"."""
    text = reply.body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None, "empty"
    body = reply.json
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
    if (code is None or msg is None) and depth < _MAX_ERROR_DEPTH:
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
    return code, (clip(msg, _LONG_TEXT) if msg is not None else None)


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
        import html  # only for pages that are not ModelArts answers

        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    return clip(text, _SHORT_TEXT) if text else None


def clip(text: str, limit: int) -> str:
    """The text, cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after_seconds(reply: Reply, *, now: float) -> float | None:
    """Seconds the `Retry-After` header asks for (delta or HTTP date), or None.

    `now` is the wall-clock time (epoch seconds), used only when the answer has no `Date`.
    """
    value = reply.header("Retry-After")
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    # Measured against the server's own Date when given, so our clock skew does not matter.
    server_now = _http_date(reply.header("Date") or "")
    reference = server_now if server_now is not None else now
    return max(0.0, when - reference)


def _http_date(value: str) -> float | None:
    import email.utils  # only for a Retry-After given as a date

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
