"""What the local endpoint can be told to get wrong: faults, armed per instance or globally, and a
token bucket for throttling."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

from .replies import BUSY, INTERNAL_ERROR, TIMED_OUT, Reply, json_reply

FaultKind = Literal[
    "status",
    "reset",
    "slow",
    "slow_body",
    "stall",
    "malformed",
    "empty",
    "html",
    "stuck_delete",
    "failed_delete",
]
_FAULT_KINDS = frozenset(
    {
        "status",
        "reset",
        "slow",
        "slow_body",
        "stall",
        "malformed",
        "empty",
        "html",
        "stuck_delete",
        "failed_delete",
    }
)
# Faults that change what a DELETE does rather than what it answers.
DELETE_FAULTS = frozenset({"stuck_delete", "failed_delete"})
# Faults that take the place of the normal answer (`carried_out` decides whether the request is
# carried out first); `slow` delays the normal answer and `stuck_delete` changes what it does.
ANSWER_FAULTS = frozenset({"status", "reset", "malformed", "empty", "html"})
# Faults that send the normal answer's headers at once and hold back its body.
BODY_FAULTS = frozenset({"slow_body", "stall"})
# Used when a `status` fault names no code of its own.
_DEFAULT_FAULT_CODES = {408: TIMED_OUT, 429: BUSY}


@dataclass(frozen=True)
class Fault:
    """Something to go wrong instead of (or, for `slow`, before) the normal answer.

    `status`: answer `status` with an `error_code`/`error_msg` body. `reset`: close the connection
    with an RST and no answer. `slow`: sleep `delay` seconds, then answer normally. `slow_body`:
    carry the request out and send the answer's headers at once, then its body a byte at a time
    over `delay` seconds. `stall`: the same, but nothing at all for `delay` seconds after the
    headers, then the whole body (a client whose read timeout is shorter gives up). `malformed`,
    `empty`, `html`: answer `status` with a body that is not JSON (under `application/json`), an
    empty body, or a gateway's HTML error page. `stuck_delete`: a DELETE is answered as accepted
    (200, the instance `DELETING`) but the instance stays, listed as `DELETING`: a deletion the
    service accepted and never finished; it matches DELETE requests only. `failed_delete`: the
    same, but once the deletion has taken the endpoint's `delete_seconds` the instance is
    `DELETE_FAILED` (and stays so): a deletion that failed after it was accepted.
    `retry_after` adds a `Retry-After` header. A fault is used up after `times` matching requests
    (None: never); `method` limits it to one method.

    By default a fault answers in the service's place and the instances stay untouched (something
    in front of ModelArts answered). With `carried_out` the request is carried out first and only
    its answer is replaced: an answer lost or mangled on the way back (a reset after the delete).
    """

    kind: FaultKind
    status: int = 503
    error_code: str | None = None
    error_msg: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    times: int | None = 1
    method: str | None = None
    carried_out: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.carried_out and self.kind not in ANSWER_FAULTS:
            raise ValueError(f"a {self.kind!r} fault has no answer of its own to replace")
        if self.kind in DELETE_FAULTS and (self.method or "DELETE").upper() != "DELETE":
            raise ValueError(f"a {self.kind!r} fault applies to DELETE requests only")
        if not 100 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP status code (100-599)")
        if self.times is not None and self.times < 1:
            raise ValueError("fault times must be at least 1, or None for every request")
        if self.delay < 0:
            raise ValueError("fault delay must not be negative")

    def reply(self) -> Reply | None:
        """The answer this fault gives in the service's place; None: reset the connection."""
        if self.kind == "reset":
            return None
        extra = () if self.retry_after is None else (("Retry-After", self.retry_after),)
        if self.kind == "empty":
            return Reply(self.status, b"", headers=extra)
        if self.kind == "html":
            return Reply(self.status, _html_page(self.status), "text/html", extra)
        if self.kind == "malformed":
            # A JSON error body cut short, as a proxy dropping the backend half-way would leave.
            return Reply(self.status, b'{"error_code": "ModelArts.61', headers=extra)
        code, msg = _DEFAULT_FAULT_CODES.get(self.status, INTERNAL_ERROR)
        document = {
            "error_code": self.error_code if self.error_code is not None else code,
            "error_msg": self.error_msg if self.error_msg is not None else msg,
        }
        return json_reply(self.status, document, extra)


@dataclass
class _Armed:
    fault: Fault
    instance_id: str | None
    action: str | None
    workspace_id: str | None
    remaining: int | None

    @property
    def targeted(self) -> bool:
        return (self.instance_id, self.action, self.workspace_id) != (None, None, None)

    def matches(
        self, method: str, instance_id: str | None, action: str | None, workspace: str
    ) -> bool:
        if self.instance_id is not None and self.instance_id != instance_id:
            return False
        if self.action is not None and self.action != action:
            return False
        if self.workspace_id is not None and self.workspace_id != workspace:
            return False
        if self.fault.method is not None and self.fault.method.upper() != method:
            return False
        return self.fault.kind not in DELETE_FAULTS or method == "DELETE"


class Faults:
    """Armed faults, consulted per request: instance faults first, then global ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def add(
        self,
        fault: Fault,
        *,
        instance_id: str | None,
        action: str | None,
        workspace_id: str | None,
    ) -> None:
        """Arm a fault for the requests it names (instance, action, listed workspace), or all."""
        with self._lock:
            self._armed.append(_Armed(fault, instance_id, action, workspace_id, fault.times))

    def take(
        self, method: str, *, instance_id: str | None, action: str | None, workspace_id: str
    ) -> Fault | None:
        """The fault this request meets, if any, used up by one."""
        with self._lock:
            candidates = [a for a in self._armed if a.targeted] + [
                a for a in self._armed if not a.targeted
            ]
            for armed in candidates:
                if not armed.matches(method, instance_id, action, workspace_id):
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                return armed.fault
        return None


class TokenBucket:
    """Allows `rate` requests a second, bursts up to `max(1, rate)`."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._last = now

    def take(self, now: float) -> float | None:
        """Spend a token and return None, or return the seconds until one is available."""
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


def _html_page(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")
