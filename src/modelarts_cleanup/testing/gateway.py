"""The API gateway in front of the local endpoint: throttling, authentication (AK/SK signatures
with their date and security token, or an IAM token) and the caller's IAM permissions."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from .faults import TokenBucket
from .replies import BAD_SIGNATURE, Reply, gateway_error
from .signature import date_problem, verify


class Gateway:
    """Decides, before the service sees a request, whether it may pass."""

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        security_token: str | None,
        tokens: Iterable[str],
        token_error_code: str,
        rate_limit: float | None,
        permissions: Iterable[str] | None,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._security_token = security_token
        self._tokens = tuple(tokens)
        self._token_error_code = token_error_code
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._bucket: TokenBucket | None = None
        self._rate_limit: float | None = None
        self.rate_limit = rate_limit
        self._permissions: frozenset[str] | None = None
        self.permissions = permissions

    @property
    def rate_limit(self) -> float | None:
        """Requests a second above which the endpoint answers 429 (None: unlimited)."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError("rate_limit must be positive, or None for no limit")
        self._rate_limit = value

    @property
    def permissions(self) -> frozenset[str] | None:
        """The IAM actions the caller's policies allow (None: all, as for the account itself)."""
        return self._permissions

    @permissions.setter
    def permissions(self, value: Iterable[str] | None) -> None:
        self._permissions = None if value is None else frozenset(value)

    def allows(self, iam_action: str) -> bool:
        """Whether the caller's policies allow this action."""
        allowed = self._permissions
        return allowed is None or iam_action in allowed

    def throttle(self) -> float | None:
        """None: the request may pass; else the seconds until it could (answer 429)."""
        with self._lock:
            rate = self._rate_limit
            if rate is None:
                self._bucket = None
                return None
            now = self._clock()
            if self._bucket is None or self._bucket.rate != rate:
                self._bucket = TokenBucket(rate, now)
            return self._bucket.take(now)

    def authenticate(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str,
    ) -> Reply | None:
        """None: the caller is who it says; else the gateway's 401."""
        lowered = {k.lower(): v for k, v in headers.items()}
        token = lowered.get("x-auth-token")
        if token is not None:
            sent = token.strip().encode("utf-8", "surrogatepass")
            if any(hmac.compare_digest(sent, t.encode("utf-8")) for t in self._tokens):
                return None
            return gateway_error(
                401, self._token_error_code, "The token must be updated.", request_id
            )
        reason = verify(
            method,
            path,
            query,
            headers,
            body,
            access_key=self._access_key,
            secret_key=self._secret_key,
        )
        if reason is None:
            reason = date_problem(lowered["x-sdk-date"].strip(), self._wall_clock())
        if reason is None and self._security_token is not None:
            sent = lowered.get("x-security-token", "").strip().encode("utf-8", "surrogatepass")
            if not hmac.compare_digest(sent, self._security_token.encode("utf-8")):
                reason = "security token missing or invalid"
        if reason is None:
            return None
        message = f"Incorrect IAM authentication information: {reason}"
        return gateway_error(401, BAD_SIGNATURE, message, request_id)
