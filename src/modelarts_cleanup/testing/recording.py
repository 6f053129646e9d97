"""What the local endpoint saw: every request, with secret header values redacted."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

REDACTED = "***"
_SECRET_HEADERS = frozenset({"x-security-token", "x-auth-token"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the endpoint saw it; secret header values are replaced by `***`."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # None when the connection was reset instead of answered
    instance_id: str | None
    iam_action: str | None  # the IAM action the request needed (None: no such API)


class RequestLog:
    """The requests served, in the order they were answered; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()


def redacted(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with the values of secret ones replaced."""
    return {k: REDACTED if k.lower() in _SECRET_HEADERS else v for k, v in headers.items()}
