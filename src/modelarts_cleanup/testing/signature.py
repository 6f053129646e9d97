"""The API gateway's side of `SDK-HMAC-SHA256`: checking a request's signature and its date."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from modelarts_cleanup.cloud.signer import (
    SIGNING_ALGORITHM,
    canonical_request,
    lowered_headers,
    signature,
)

_AUTHORIZATION = re.compile(
    r"(?P<algorithm>\S+) Access=(?P<access>[^\s,]+), ?"
    r"SignedHeaders=(?P<signed>[^\s,]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)
_DATE_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Our client always signs these; the endpoint insists, so a client that forgets them fails tests.
_MUST_SIGN_WHEN_PRESENT = ("x-security-token", "x-project-id")
# The gateway rejects a signature whose X-Sdk-Date is further than this from its own clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)


def verify(
    method: str,
    url_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
) -> str | None:
    """None when the request carries a valid signature by this key pair, else a short reason."""
    try:
        lowered = lowered_headers(headers)
    except ValueError:
        return "conflicting duplicate headers"
    header = lowered.get("authorization")
    if header is None:
        return "missing Authorization"
    parsed = _AUTHORIZATION.fullmatch(header.strip())
    if parsed is None:
        return "malformed Authorization"
    if parsed["algorithm"] != SIGNING_ALGORITHM:
        return "unsupported signing algorithm"
    claimed = parsed["access"].encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(claimed, access_key.encode("utf-8", "surrogatepass")):
        return "wrong access key"
    date = lowered.get("x-sdk-date")
    if date is None:
        return "X-Sdk-Date missing"
    if not _DATE_PATTERN.fullmatch(date.strip()):
        return "X-Sdk-Date malformed"
    signed = parsed["signed"].split(";")
    present = [name for name in _MUST_SIGN_WHEN_PRESENT if name in lowered]
    for name in ("host", "x-sdk-date", *present):
        if name not in signed:
            return f"{name} not signed"
    try:
        canonical = canonical_request(method, url_path, raw_query, lowered, signed, body)
    except ValueError:
        return "signed header missing"
    expected = signature(secret_key, date.strip(), canonical)
    if not hmac.compare_digest(expected, parsed["signature"]):
        return "signature mismatch"
    return None


def date_problem(sdk_date: str, now: datetime) -> str | None:
    """Why an `X-Sdk-Date` is refused at `now`, or None."""
    try:
        signed_at = datetime.strptime(sdk_date, _SDK_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return "X-Sdk-Date malformed"
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        return "X-Sdk-Date is more than 15 minutes from the server time"
    return None
