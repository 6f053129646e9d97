"""Huawei Cloud `SDK-HMAC-SHA256` AK/SK request signing, as a `requests` auth hook.

The pure functions mirror the official SDK (`huaweicloudsdkcore/signer/signer.py`) step by step;
`SdkHmacSha256Auth` applies them to a prepared request. The server side (checking a signature)
belongs to the local endpoint: `modelarts_cleanup.testing.signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from requests.auth import AuthBase

from modelarts_cleanup.exceptions import CredentialsError

if TYPE_CHECKING:
    from pydantic import SecretStr
    from requests import PreparedRequest

__all__ = [
    "EMPTY_BODY_SHA256",
    "SIGNING_ALGORITHM",
    "SdkHmacSha256Auth",
    "authorization",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "lowered_headers",
    "sdk_date",
    "signature",
    "signed_header_names",
]

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# The SDK lets a caller replace the payload hash (e.g. "UNSIGNED-PAYLOAD"); the gateway honours it.
_CONTENT_SHA256 = "x-sdk-content-sha256"
# Printable ASCII without space or comma: the AK goes verbatim into the Authorization header.
_ACCESS_KEY_PATTERN = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# A header value http.client will send unchanged: visible ASCII, no leading/trailing space.
_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def sdk_date(now: datetime) -> str:
    """Format an aware datetime as the `X-Sdk-Date` value (UTC, `%Y%m%dT%H%M%SZ`)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("sdk_date needs a timezone-aware datetime")
    return now.astimezone(timezone.utc).strftime(_DATE_FORMAT)


def canonical_uri(path: str) -> str:
    """Unquote the path, re-quote each segment with safe='~', and end it with '/'."""
    # Bytes throughout: identical to the SDK for UTF-8 paths, and no silent U+FFFD for others.
    segments = unquote_to_bytes(path).split(b"/")
    joined = "/".join(quote(segment, safe="~") for segment in segments)
    return joined if joined.endswith("/") else joined + "/"


def _query_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        # '+' is a space, as in requests' own `params=` encoding; a literal plus arrives as %2B.
        pairs.append(
            (
                unquote_to_bytes(key.replace("+", " ")),
                unquote_to_bytes(value.replace("+", " ")),
            )
        )
    return pairs


def canonical_query(raw_query: str) -> str:
    """Canonicalise a raw query string: decoded pairs sorted by key then value, re-quoted."""
    # The SDK sorts decoded str pairs by code point; UTF-8 byte order is the same order.
    pairs = sorted(_query_pairs(raw_query))
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Names to sign: every header, lower-cased and sorted, except those containing '_'."""
    return sorted({name.lower() for name in headers if "_" not in name})


def lowered_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased; a name given twice with different values is refused."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in lowered and lowered[key] != value:
            # Which value the server would see is unknowable; refuse rather than guess.
            raise ValueError(f"header {key!r} is given twice with different values")
        lowered[key] = value
    return lowered


def canonical_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed: Sequence[str],
    body: bytes,
) -> str:
    """Build the canonical request string that the signature covers."""
    lowered = lowered_headers(headers)
    lines = []
    for name in signed:
        if name not in lowered:
            raise ValueError(f"signed header {name!r} is not in the request")
        lines.append(f"{name}:{lowered[name].strip()}\n")
    payload_hash = EMPTY_BODY_SHA256 if not body else hashlib.sha256(body).hexdigest()
    if body and _CONTENT_SHA256 in signed and lowered[_CONTENT_SHA256].strip():
        payload_hash = lowered[_CONTENT_SHA256].strip()
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(raw_query),
            "".join(lines),
            ";".join(signed),
            payload_hash,
        )
    )


def _secret_bytes(secret_key: str) -> bytes:
    try:
        key = secret_key.encode("utf-8")
    except UnicodeEncodeError:
        key = None
    # Raised outside the handler: the UnicodeEncodeError holds the key and must not be chained.
    if key is None:
        raise ValueError("the secret key is not valid Unicode text")
    return key


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    """Hex HMAC-SHA256, keyed with the SK, over the string to sign for this canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{SIGNING_ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(_secret_bytes(secret_key), string_to_sign.encode("utf-8"), "sha256").hexdigest()


def authorization(access_key: str, signed: Sequence[str], sig: str) -> str:
    """The `Authorization` header value."""
    names = ";".join(signed)
    return f"{SIGNING_ALGORITHM} Access={access_key}, SignedHeaders={names}, Signature={sig}"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _reveal(secret: str | SecretStr) -> str:
    return secret if isinstance(secret, str) else secret.get_secret_value()


class _Secret:
    """Holds a secret so that no repr, vars() or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'**********'"


def _host_header(scheme: str, netloc: str) -> str:
    host = netloc.rpartition("@")[2]
    name, sep, port = host.rpartition(":")
    if sep and port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return host


def _is_signed_by_us(name: str) -> bool:
    # Only headers the client controls end to end: proxies and http.client may touch the rest.
    lowered = name.lower()
    return lowered in ("host", "content-type") or lowered.startswith("x-")


def _as_text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8")


def header_safe(value: str) -> bool:
    """Whether a token can travel as an HTTP header value: printable ASCII, not blank-edged."""
    return _TOKEN_PATTERN.fullmatch(value) is not None


class SdkHmacSha256Auth(AuthBase):
    """Signs each prepared request with `SDK-HMAC-SHA256` (AK/SK, optional security token)."""

    def __init__(
        self,
        access_key: str,
        secret_key: str | SecretStr,
        security_token: str | SecretStr | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not _ACCESS_KEY_PATTERN.fullmatch(access_key):
            raise CredentialsError("the access key is empty or has characters an AK cannot have")
        secret = _reveal(secret_key)
        if not secret:
            raise CredentialsError("the secret key is empty")
        try:
            _secret_bytes(secret)
        except ValueError:
            raise CredentialsError("the secret key is not valid Unicode text") from None
        token = None if security_token is None else _reveal(security_token)
        if token is not None and not header_safe(token):
            raise CredentialsError(
                "the security token is empty or has characters an HTTP header cannot carry"
            )
        self._access_key = access_key
        self._secret_key = _Secret(secret)
        self._security_token = None if token is None else _Secret(token)
        self._clock = clock

    @property
    def access_key(self) -> str:
        """The access key ID (not a secret: it travels in every Authorization header)."""
        return self._access_key

    def __repr__(self) -> str:
        token = "None" if self._security_token is None else "'**********'"
        return (
            f"{type(self).__name__}(access_key={self._access_key!r}, "
            f"secret_key='**********', security_token={token})"
        )

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """Add X-Sdk-Date, Host, X-Security-Token and Authorization; canonicalise the query."""
        if r.url is None or r.method is None:
            raise ValueError("the request must be prepared (method and URL) before signing")
        body = self._body_bytes(r)
        scheme, netloc, path, raw_query, fragment = urlsplit(r.url)
        query = canonical_query(raw_query)
        # The gateway re-derives the query from what it receives: send exactly what was signed.
        r.url = urlunsplit((scheme, netloc, path, query, fragment))

        if "Host" not in r.headers:
            r.headers["Host"] = _host_header(scheme, netloc)
        # Always fresh: a re-signed request must not carry the first attempt's date.
        date = sdk_date(self._clock())
        r.headers["X-Sdk-Date"] = date
        if self._security_token is not None:
            r.headers["X-Security-Token"] = self._security_token.reveal()

        to_sign: dict[str, str] = {}
        for name, value in list(r.headers.items()):
            if _is_signed_by_us(name):
                # Signed stripped, so sent stripped: what goes out is what was signed.
                text = _as_text(value).strip()
                r.headers[name] = text
                to_sign[name] = text
        signed = signed_header_names(to_sign)
        canonical = canonical_request(r.method, path or "/", query, to_sign, signed, body)
        sig = signature(self._secret_key.reveal(), date, canonical)
        r.headers["Authorization"] = authorization(self._access_key, signed, sig)
        return r

    @staticmethod
    def _body_bytes(r: PreparedRequest) -> bytes:
        body = r.body
        if body is None:
            return b""
        if isinstance(body, str):
            # http.client would send a str body as Latin-1; send the UTF-8 bytes that were signed.
            encoded = body.encode("utf-8")
            r.body = encoded
            if "Content-Length" in r.headers:
                r.headers["Content-Length"] = str(len(encoded))
            return encoded
        if isinstance(body, bytes):
            return body
        raise TypeError("a streamed request body cannot be signed: pass bytes or str")
