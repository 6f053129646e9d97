"""The local ModelArts-compatible endpoint: an HTTP server on 127.0.0.1 in a background thread.

It serves both API generations (`notebook` and the old `devenviron`), checks `SDK-HMAC-SHA256`
signatures and IAM tokens the way the API gateway does, and injects faults on request: error
statuses, reset connections, slow answers, bodies that stall or drip in, broken bodies,
throttling.
"""

from __future__ import annotations

import math
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

from .api import IAM_ACTIONS, ModelArtsApi, Route, match_route
from .console import Console
from .faults import ANSWER_FAULTS, BODY_FAULTS, Fault, Faults
from .gateway import Gateway
from .http_server import Listener, Served
from .recording import RecordedRequest, RequestLog, redacted
from .replies import (
    BUSY,
    FOREIGN_PROJECT,
    NO_SUCH_API,
    NOT_AUTHORISED,
    PROJECT_MISMATCH,
    Reply,
    gateway_error,
)
from .smn import Topics
from .state import CALLER, DEFAULT_WORKSPACE, Fleet, User


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FakeModelArts(Console, Served):
    """Local ModelArts endpoint on 127.0.0.1 (OS-chosen port); use as a context manager.

    `stop_seconds`: how long a stop takes; `delete_seconds`: how long an accepted deletion stays
    `DELETING` (listed, readable, a second DELETE answered `ModelArts.6357`) before the instance
    is gone; both on the injected `clock`.
    """

    def __init__(
        self,
        *,
        access_key: str = "fake-ak",
        secret_key: str = "fake-sk",  # noqa: S107  (a fake key for a fake endpoint)
        security_token: str | None = None,
        tokens: Iterable[str] = ("fake-iam-token",),
        latency: float = 0.0,
        stop_before_delete: bool = False,
        stop_seconds: float = 0.0,
        delete_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: float | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        token_error_code: str = "APIGW.0307",  # noqa: S107  (an error code, not a token)
        caller: User = CALLER,
        legacy_error_message: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        permissions: Iterable[str] | None = None,
        projects: Iterable[str] | None = None,
    ) -> None:
        """`projects`, when given, are this region's: a request for any other is refused (403),
        as a region's gateway refuses a project of another region."""
        self._projects = None if projects is None else frozenset(projects)
        self._gateway = Gateway(
            access_key=access_key,
            secret_key=secret_key,
            security_token=security_token,
            tokens=tokens,
            token_error_code=token_error_code,
            rate_limit=rate_limit,
            permissions=permissions,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._latency = latency
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._caller = caller
        # Requests being handled (from arrival until their answer is ready), and a condition
        # that tells when there are none.
        self._in_hand = 0
        self._idle = threading.Condition(self._lock)
        self._fleet = Fleet(
            clock=clock,
            now_ms=self._now_ms,
            stop_seconds=stop_seconds,
            delete_seconds=delete_seconds,
        )
        self._api = ModelArtsApi(
            self._fleet,
            caller=caller,
            stop_before_delete=stop_before_delete,
            legacy_error_message=legacy_error_message,
        )
        self._topics = Topics()
        self._faults = Faults()
        self._before_read: dict[tuple[str, str], Callable[[], None]] = {}
        self._log = RequestLog()
        # Serves HTTPS with `ssl_context` (server-side) instead of plain HTTP: for TLS tests.
        self._listener = Listener(self, ssl_context)

    def __repr__(self) -> str:
        where = self._listener.address or "not started"
        return f"{type(self).__name__}({where})"

    @property
    def rate_limit(self) -> float | None:
        """Requests a second above which the endpoint answers 429 (None: unlimited)."""
        return self._gateway.rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        self._gateway.rate_limit = value

    @property
    def projects(self) -> frozenset[str] | None:
        """The projects this region serves (None: every project, as one endpoint for all)."""
        return self._projects

    @projects.setter
    def projects(self, value: Iterable[str] | None) -> None:
        self._projects = None if value is None else frozenset(value)

    @property
    def permissions(self) -> frozenset[str] | None:
        """The IAM actions the caller's policies allow (None: all, as for the account itself).

        A request whose action is not among them is refused, 403 `ModelArts.0108`, after its
        signature is checked and before anything is done.
        """
        return self._gateway.permissions

    @permissions.setter
    def permissions(self, value: Iterable[str] | None) -> None:
        self._gateway.permissions = value

    def add_fault(
        self,
        fault: Fault,
        *,
        instance_id: str | None = None,
        action: str | None = None,
        workspace_id: str | None = None,
    ) -> None:
        """Arm a fault for the requests it names, or for every request when it names none.

        `instance_id`: requests on that instance. `action`: one kind of request, by route
        (`notebook_list_all`, `workspace_list`, `notebook_delete`, ...). `workspace_id`: listings
        of that workspace. Faults that name something are consulted before global ones; among
        each, the oldest armed first.
        """
        self._faults.add(fault, instance_id=instance_id, action=action, workspace_id=workspace_id)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request served so far, in the order they were answered (a copy)."""
        return self._log.all()

    def iam_actions(self) -> set[str]:
        """The IAM actions the requests served so far needed (answered or refused)."""
        return {r.iam_action for r in self.requests if r.iam_action is not None}

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled; False if one still is after `timeout` s.

        A request a client gave up on is still carried out when its latency has passed: the
        endpoint's state and request log are final only once it is idle.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_hand == 0, timeout)

    # -- request handling (called from handler threads) ------------------------------------------

    def _now_ms(self) -> int:
        return int(self._wall_clock().timestamp() * 1000)

    def pause(self, seconds: float) -> None:
        """Wait while an answer's body is held back (called by the HTTP server)."""
        self._sleep(seconds)

    def serve(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """Answer one request and record it; None: reset the connection (called per request)."""
        with self._lock:
            self._in_hand += 1
        try:
            return self._serve(method, target, headers, body)
        finally:
            with self._idle:
                self._in_hand -= 1
                self._idle.notify_all()

    def _serve(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        split = urlsplit(target)
        request_id = str(uuid.uuid4())
        route = match_route(method, split.path)
        fault = self._delay_and_fault(method, route, split.query)
        if fault is not None and fault.kind in ANSWER_FAULTS and not fault.carried_out:
            reply = fault.reply()
        else:
            reply = self._handle(
                method, split.path, split.query, headers, body, route, request_id, fault
            )
        if reply is not None and fault is not None and fault.kind in BODY_FAULTS:
            reply = replace(reply, body_delay=fault.delay, drip=fault.kind == "slow_body")
        recorded = RecordedRequest(
            method=method,
            path=split.path,
            query=split.query,
            headers=redacted(headers),
            body=body,
            status=None if reply is None else reply.status,
            instance_id=route.instance_id if route is not None else None,
            iam_action=IAM_ACTIONS[route.action] if route is not None else None,
        )
        # Recorded before answering, so a client that has its answer finds it recorded.
        self._log.add(recorded)
        if reply is None:
            return None
        return replace(reply, headers=(("X-Request-Id", request_id), *reply.headers))

    def _delay_and_fault(self, method: str, route: Route | None, query: str) -> Fault | None:
        """Wait the latency (and a `slow` fault's delay); the fault this request meets, if any."""
        if self._latency > 0:
            self._sleep(self._latency)
        fault = self._faults.take(
            method,
            instance_id=route.instance_id if route is not None else None,
            action=route.action if route is not None else None,
            workspace_id=_query_value(query, "workspace_id", DEFAULT_WORKSPACE),
        )
        if fault is not None and fault.kind == "slow":
            self._sleep(fault.delay)
        return fault

    def _handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        route: Route | None,
        request_id: str,
        fault: Fault | None,
    ) -> Reply | None:
        """The service's (or the gateway's) answer, or None when the connection must be reset."""
        wait = self._gateway.throttle()
        if wait is not None:
            retry_after = str(max(1, math.ceil(wait)))
            return self._api.error(route, 429, *BUSY, headers=(("Retry-After", retry_after),))
        if route is None:
            return gateway_error(404, *NO_SUCH_API, request_id)
        if route.action in ("notebook_show", "de_show"):
            with self._lock:
                act = self._before_read.pop((route.project_id, route.instance_id or ""), None)
            if act is not None:
                act()
        denied = self._gateway.authenticate(method, path, query, headers, body, request_id)
        if denied is not None:
            return denied
        claimed = {k.lower(): v for k, v in headers.items()}.get("x-project-id")
        if claimed is not None and claimed.strip() != route.project_id:
            return self._api.error(route, 403, *PROJECT_MISMATCH)
        if self._projects is not None and route.project_id not in self._projects:
            return self._api.error(route, 403, *FOREIGN_PROJECT)
        if not self._gateway.allows(IAM_ACTIONS[route.action]):
            return self._api.error(route, 403, *NOT_AUTHORISED)
        with self._lock:
            key = (route.project_id, route.instance_id or "")
            before = self._fleet.instances.get(key)
            if route.action == "smn_publish":
                reply = self._topics.publish(route.project_id, key[1], body, request_id)
            else:
                reply = self._api.handle(route, query, body)
            accepted = before is not None and method == "DELETE" and reply.status == 200
            if accepted and before is not None and fault is not None:
                # Accepted and answered as usual, then never finished (it stays DELETING), or
                # failed once under way (DELETE_FAILED).
                ends = {"stuck_delete": "never", "failed_delete": "failed"}.get(fault.kind)
                if ends is not None:
                    self._fleet.change_deletion(route.project_id, before, ends=ends)
        if fault is not None and fault.carried_out:
            return fault.reply()
        return reply


def _query_value(query: str, name: str, default: str) -> str:
    return next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == name), default)
