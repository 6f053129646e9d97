"""A local ModelArts-compatible HTTP endpoint for the demo, end-to-end tests and benchmarks.

It serves both API generations (`notebook` and the old `devenviron`), checks `SDK-HMAC-SHA256`
signatures and IAM tokens the way the API gateway does, and injects faults on request: error
statuses, reset connections, slow answers, broken bodies, throttling. It listens on 127.0.0.1
only. Response bodies follow the public API reference (OTC `api-ref/source/
development_environment_management/*.rst`, `historical_apis/devenviron_old_version/*.rst`) and
the SDK models (`huaweicloudsdkmodelarts/v1/model/notebook_resp.py`, `lease.py`).
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import math
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit

from modelarts_cleanup.signer import verify

__all__ = ["DEVENVIRON", "NOTEBOOK", "FakeModelArts", "Fault", "RecordedRequest"]

NOTEBOOK = "notebook"
DEVENVIRON = "devenviron"

FaultKind = Literal["status", "reset", "slow", "malformed", "empty", "html", "stuck_delete"]
_FAULT_KINDS = frozenset({"status", "reset", "slow", "malformed", "empty", "html", "stuck_delete"})
# Faults that take the place of the normal answer (`carried_out` decides whether the request is
# carried out first); `slow` delays the normal answer and `stuck_delete` changes what it does.
_ANSWER_FAULTS = frozenset({"status", "reset", "malformed", "empty", "html"})

REDACTED = "***"
_SECRET_HEADERS = frozenset({"x-security-token", "x-auth-token"})
# The gateway rejects a signature whose X-Sdk-Date is further than this from its own clock.
_MAX_CLOCK_SKEW = timedelta(minutes=15)
_HANDSHAKE_TIMEOUT = 10.0
_SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# ListNotebooks: "limit ... [10,20,50]" (SDK ListNotebooksRequest); Terraform pages with 50.
_NOTEBOOK_PAGE_SIZES = (10, 20, 50)
_NOTEBOOK_SORT_KEYS = frozenset(
    {"id", "name", "description", "status", "feature", "flavor", "create_at", "update_at"}
)
_DEVENVIRON_SORT_KEYS = frozenset({"name", "creation_timestamp"})
# Statuses in which the service refuses a delete when it insists on a stop first (6304).
_MUST_STOP_FIRST = frozenset(
    {
        "INIT",
        "CREATING",
        "CREATE_QUEUING",
        "STARTING",
        "START_QUEUING",
        "READY_TO_START",
        "RESTARTING",
        "RUNNING",
        "STOPPING",
        "SNAPSHOTTING",
        "RESIZING",
    }
)
_ALREADY_STOPPING = frozenset({"STOPPED", "STOPPING"})
_ALREADY_STARTING = frozenset({"RUNNING", "STARTING"})

# Codes and messages from OTC `api-ref/source/appendix/error_codes.rst` and the APIG error list.
_PARAMETER_ERROR = ("ModelArts.0104", "Parameter error.")
_NO_SORTING = ("ModelArts.6303", "The field does not support sorting.")
_STOP_FIRST = ("ModelArts.6304", "Please stop the instance before deleting.")
_ALREADY_RUNNING = ("ModelArts.6305", "The instance is already running.")
_IN_TARGET_STATE = ("ModelArts.6357", "The instance is already in the target state.")
_DE_NOT_FOUND = ("ModelArts.6309", "The instance does not exist.")
_NOTEBOOK_NOT_FOUND = "ModelArts.6404"
_PROJECT_MISMATCH = ("ModelArts.0210", "The project ID in the URL does not match the token.")
_BUSY = ("ModelArts.6101", "The system is busy. Please try again later.")
_NO_SUCH_API = (
    "APIGW.0101",
    "The API does not exist or has not been published in the environment.",
)
_BAD_SIGNATURE = "APIGW.0301"
# Used when a `status` fault names no code of its own.
_DEFAULT_FAULT_CODES = {
    408: ("ModelArts.6100", "Request timed out."),
    429: _BUSY,
}
_DEFAULT_FAULT_CODE = ("ModelArts.6102", "Internal server error.")


@dataclass(frozen=True)
class Fault:
    """Something to go wrong instead of (or, for `slow`, before) the normal answer.

    `status`: answer `status` with an `error_code`/`error_msg` body. `reset`: close the connection
    with an RST and no answer. `slow`: sleep `delay` seconds, then answer normally. `malformed`,
    `empty`, `html`: answer `status` with a body that is not JSON (under `application/json`), an
    empty body, or a gateway's HTML error page. `stuck_delete`: a DELETE is answered as accepted
    (200, the instance `DELETING`) but the instance stays, listed as `DELETING`: a deletion the
    service accepted and never finished; it matches DELETE requests only.
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
        if self.carried_out and self.kind not in _ANSWER_FAULTS:
            raise ValueError(f"a {self.kind!r} fault has no answer of its own to replace")
        if self.kind == "stuck_delete" and (self.method or "DELETE").upper() != "DELETE":
            raise ValueError("a 'stuck_delete' fault applies to DELETE requests only")
        if not 100 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP status code (100-599)")
        if self.times is not None and self.times < 1:
            raise ValueError("fault times must be at least 1, or None for every request")
        if self.delay < 0:
            raise ValueError("fault delay must not be negative")


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


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Route:
    action: str
    project_id: str
    instance_id: str | None


@dataclass
class _Instance:
    api: str
    body: dict[str, Any]
    # When a STOPPING/STARTING instance began that transition, on the injected clock.
    since: float | None = None


@dataclass
class _ArmedFault:
    fault: Fault
    instance_id: str | None
    remaining: int | None


class _TokenBucket:
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


_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action)
    for method, pattern, action in (
        ("GET", r"/v1/(?P<project>[^/]+)/notebooks", "notebook_list"),
        ("GET", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)", "notebook_show"),
        ("DELETE", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)", "notebook_delete"),
        ("POST", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/stop", "notebook_stop"),
        ("POST", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/start", "notebook_start"),
        ("GET", r"/v1/(?P<project>[^/]+)/demanager/instances", "de_list"),
        ("GET", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)", "de_show"),
        ("DELETE", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)", "de_delete"),
        ("POST", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)/action", "de_action"),
    )
)


def _match_route(method: str, path: str) -> _Route | None:
    for route_method, pattern, action in _ROUTES:
        found = pattern.fullmatch(path)
        if found is not None and route_method == method:
            return _Route(action, found["project"], found.groupdict().get("id"))
    return None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _json_reply(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(document).encode("utf-8"), headers=headers)


def _notebook_body(
    instance_id: str, name: str, status: str, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    # Shape of the DeleteNotebook/ShowNotebook examples; `create_at`/`update_at` appear both at the
    # top level (examples) and in `lease` (SDK Lease model, what Terraform reads).
    return {
        "id": instance_id,
        "name": name,
        "description": "",
        "status": status,
        "feature": "NOTEBOOK",
        "flavor": "modelarts.vm.cpu.2u",
        "billing_items": ["ALL"],
        "image": {
            "id": "e1a07296-22a8-4f05-8bc8-e936c8e54090",
            "name": "notebook2.0-mul-kernel-cpu-cp36",
            "swr_path": "swr.example.com/atelier/notebook2.0-mul-kernel-cpu-cp36:3.3.2-release_v1",
            "tag": "3.3.2-release_v1",
            "type": "BUILD_IN",
        },
        "lease": {
            "create_at": created_ms,
            "duration": 3600000,
            "enable": True,
            "type": "TIMING",
            "update_at": updated_ms,
        },
        "create_at": created_ms,
        "update_at": updated_ms,
        "token": str(uuid.uuid4()),
        "url": f"https://authoring-modelarts.example.com/{instance_id}/lab",
        "volume": {
            "category": "EVS",
            "ownership": "MANAGED",
            "mount_path": "/home/ma-user/work/",
            "capacity": 5,
        },
        "workspace_id": "0",
        "action_progress": [],
        "endpoints": [],
    }


def _devenviron_body(
    instance_id: str, name: str, status: str, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    # Shape of the "Obtaining Details About a Development Environment Instance" sample response.
    return {
        "id": instance_id,
        "name": name,
        "description": "",
        "status": status,
        "creation_timestamp": str(created_ms),
        "latest_update_timestamp": str(updated_ms),
        "flavor": "modelarts.vm.cpu.2u",
        "flavor_details": {
            "name": "modelarts.vm.cpu.2u",
            "params": {"CPU": 2, "memory": "8GiB"},
            "status": "onSale",
            "type": "CPU",
        },
        "profile": {
            "de_type": "Notebook",
            "description": "multi engine, cpu, python 3.6 for notebook",
            "flavor_type": "CPU",
            "id": "Multi-Engine 1.0 (python3)-cpu",
            "name": "Multi-Engine 1.0 (python3)-cpu",
            "provision": {
                "spec": {
                    "engine": "CCE",
                    "params": {
                        "annotations": None,
                        "image_name": "mul-kernel-cpu-cp36",
                        "image_tag": "2.0.5-B003",
                        "namespace": "atelier",
                    },
                },
                "type": "Docker",
            },
        },
        "spec": {
            "annotations": {"target_domain": "https://modelarts-notebook.example.com"},
            "auto_stop": {"duration": 3600, "enable": True, "prompt": True},
            "extend_params": None,
            "failed_reasons": None,
            "repository": None,
            "storage": {
                "location": {"path": "/home/ma-user/work", "volume_size": 5},
                "type": "evs",
            },
        },
        "ai_project": {"id": "default-ai-project"},
        "workspace": {"id": "0"},
    }


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


class FakeModelArts:
    """Local ModelArts endpoint on 127.0.0.1 (OS-chosen port); use as a context manager."""

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
        clock: Callable[[], float] = time.monotonic,
        rate_limit: float | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        token_error_code: str = "APIGW.0307",  # noqa: S107  (an error code, not a token)
        legacy_error_message: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._security_token = security_token
        self._tokens = tuple(tokens)
        self._latency = latency
        self._stop_before_delete = stop_before_delete
        self._stop_seconds = stop_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._token_error_code = token_error_code
        # The old API's own examples spell the message `error_message`; the SDK says `error_msg`.
        self._de_msg_key = "error_message" if legacy_error_message else "error_msg"
        # Serves HTTPS with this (server-side) context instead of plain HTTP: for TLS tests.
        self._ssl_context = ssl_context
        self._rate_limit: float | None = None
        self.rate_limit = rate_limit
        self._bucket: _TokenBucket | None = None
        self._lock = threading.Lock()
        self._instances: dict[tuple[str, str], _Instance] = {}
        self._faults: list[_ArmedFault] = []
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self._server.server_address if self._server is not None else "not started"
        return f"{type(self).__name__}({where})"

    @property
    def rate_limit(self) -> float | None:
        """Requests a second above which the endpoint answers 429 (None: unlimited)."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError("rate_limit must be positive, or None for no limit")
        self._rate_limit = value

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (`https://` with TLS); only once started."""
        if self._server is None:
            raise RuntimeError("the fake endpoint is not running: call start() first")
        host, port = self._server.server_address[:2]
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{host!s}:{port}"

    def start(self) -> FakeModelArts:
        """Bind to a free loopback port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the fake endpoint is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        if self._ssl_context is not None:
            # The handshake runs in each connection's own thread (see _Handler.setup), so a
            # client that fails it, or never starts it, cannot stall the accept loop.
            server.socket = self._ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits for the loop's next poll: a short one keeps teardown fast.
            kwargs={"poll_interval": 0.01},
            name=f"fake-modelarts-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (keep-alive ones included)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Wakes handler threads blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeModelArts:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------

    def add_instance(
        self,
        project_id: str,
        instance_id: str | None = None,
        *,
        api: str = NOTEBOOK,
        status: str = "STOPPED",
        name: str | None = None,
        created_ms: int | None = None,
        updated_ms: int | None = None,
        **extra: Any,
    ) -> str:
        """Create an instance; `extra` overrides top-level body fields. Returns its ID."""
        if api not in (NOTEBOOK, DEVENVIRON):
            raise ValueError(f"api must be {NOTEBOOK!r} or {DEVENVIRON!r}, not {api!r}")
        instance_id = str(uuid.uuid4()) if instance_id is None else instance_id
        created = self._now_ms() if created_ms is None else created_ms
        updated = created if updated_ms is None else updated_ms
        name = f"notebook-{instance_id.replace('-', '')[-4:]}" if name is None else name
        build = _notebook_body if api == NOTEBOOK else _devenviron_body
        body = build(instance_id, name, status, created, updated)
        body.update(copy.deepcopy(extra))
        # An instance seeded mid-transition finishes it like one the fake moved there itself.
        since = self._clock() if status in ("STOPPING", "STARTING") else None
        with self._lock:
            if (project_id, instance_id) in self._instances:
                raise ValueError(f"instance {instance_id} already exists in project {project_id}")
            self._instances[(project_id, instance_id)] = _Instance(api, body, since)
        return instance_id

    def seed_fleet(
        self, project_id: str, count: int, *, api: str = NOTEBOOK, seed: int = 0
    ) -> list[dict[str, Any]]:
        """`count` instances as a team leaves them; returns their bodies as first served.

        Mixed statuses (mostly stopped or running), names of a few kinds (`tmp-`, `tmp-keep-`,
        `course-`, `prod-`), created up to 90 days ago and last updated since; with the notebook
        API one in ten is a free CodeLab instance (`feature` DEFAULT). The same seed gives the
        same fleet.
        """
        rng = random.Random(seed)  # noqa: S311  (a reproducible fleet, not a secret)
        now = self._now_ms()
        day = 24 * 3_600_000
        statuses = ["STOPPED"] * 8 + ["RUNNING"] * 5 + ["ERROR", "CREATE_FAILED", "STARTING"]
        seeded = []
        for n in range(count):
            created = now - rng.randint(1, 90 * day)
            extra: dict[str, Any] = {}
            if api == NOTEBOOK and rng.random() < 0.1:
                extra["feature"] = "DEFAULT"
            prefix = "DE-" if api == DEVENVIRON else ""
            instance_id = self.add_instance(
                project_id,
                prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                api=api,
                status=rng.choice(statuses),
                name=f"{rng.choice(['tmp-', 'tmp-keep-', 'course-', 'prod-'])}{n:04d}",
                created_ms=created,
                updated_ms=rng.randint(created, now),
                **extra,
            )
            seeded.append(self.instance(project_id, instance_id) or {})
        return seeded

    def instance(self, project_id: str, instance_id: str) -> dict[str, Any] | None:
        """The instance as the API would show it now, or None when it does not exist."""
        with self._lock:
            found = self._instances.get((project_id, instance_id))
            if found is None:
                return None
            self._settle(found)
            return copy.deepcopy(found.body)

    def instance_ids(self, project_id: str | None = None) -> set[tuple[str, str]]:
        """(project_id, instance_id) of every instance present, optionally in one project."""
        with self._lock:
            return {key for key in self._instances if project_id in (None, key[0])}

    def add_fault(self, fault: Fault, *, instance_id: str | None = None) -> None:
        """Arm a fault for requests on one instance, or on every request when no ID is given.

        Instance faults are consulted before global ones; among each, the oldest armed first.
        """
        with self._lock:
            self._faults.append(_ArmedFault(fault, instance_id, fault.times))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request served so far, in the order they were answered (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    # -- request handling (called from handler threads) ------------------------------------------

    def _now_ms(self) -> int:
        return int(self._wall_clock().timestamp() * 1000)

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        route: _Route | None,
        request_id: str,
    ) -> _Reply | None:
        """The answer to one request, or None when the connection must be reset."""
        if self._latency > 0:
            self._sleep(self._latency)
        fault = self._take_fault(method, route.instance_id if route is not None else None)
        if fault is not None:
            if fault.kind == "slow":
                self._sleep(fault.delay)
            elif fault.kind in _ANSWER_FAULTS and not fault.carried_out:
                return self._fault_reply(fault)
        wait = self._throttle()
        if wait is not None:
            retry_after = str(max(1, math.ceil(wait)))
            return self._error(route, 429, *_BUSY, headers=(("Retry-After", retry_after),))
        if route is None:
            return self._gateway_error(404, *_NO_SUCH_API, request_id)
        denied = self._authenticate(method, path, query, headers, body, request_id)
        if denied is not None:
            return denied
        claimed = {k.lower(): v for k, v in headers.items()}.get("x-project-id")
        if claimed is not None and claimed.strip() != route.project_id:
            return self._error(route, 403, *_PROJECT_MISMATCH)
        with self._lock:
            key = (route.project_id, route.instance_id or "")
            before = self._instances.get(key)
            reply = cast("_Reply", getattr(self, f"_do_{route.action}")(route, query, body))
            stuck = fault is not None and fault.kind == "stuck_delete"
            if stuck and before is not None and key not in self._instances:
                # Accepted and answered as usual, then never finished: it stays, DELETING.
                self._set_status(before, "DELETING")
                self._instances[key] = before
        if fault is not None and fault.carried_out:
            return self._fault_reply(fault)
        return reply

    def _take_fault(self, method: str, instance_id: str | None) -> Fault | None:
        with self._lock:
            candidates = [a for a in self._faults if a.instance_id is not None] + [
                a for a in self._faults if a.instance_id is None
            ]
            for armed in candidates:
                if armed.instance_id is not None and armed.instance_id != instance_id:
                    continue
                if armed.fault.method is not None and armed.fault.method.upper() != method:
                    continue
                if armed.fault.kind == "stuck_delete" and method != "DELETE":
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._faults.remove(armed)
                return armed.fault
        return None

    def _fault_reply(self, fault: Fault) -> _Reply | None:
        if fault.kind == "reset":
            return None
        extra = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
        if fault.kind == "empty":
            return _Reply(fault.status, b"", headers=extra)
        if fault.kind == "html":
            return _Reply(fault.status, _html_page(fault.status), "text/html", extra)
        if fault.kind == "malformed":
            # A JSON error body cut short, as a proxy dropping the backend half-way would leave.
            return _Reply(fault.status, b'{"error_code": "ModelArts.61', headers=extra)
        code, msg = _DEFAULT_FAULT_CODES.get(fault.status, _DEFAULT_FAULT_CODE)
        document = {
            "error_code": fault.error_code if fault.error_code is not None else code,
            "error_msg": fault.error_msg if fault.error_msg is not None else msg,
        }
        return _json_reply(fault.status, document, extra)

    def _throttle(self) -> float | None:
        with self._lock:
            rate = self._rate_limit
            if rate is None:
                self._bucket = None
                return None
            now = self._clock()
            if self._bucket is None or self._bucket.rate != rate:
                self._bucket = _TokenBucket(rate, now)
            return self._bucket.take(now)

    def _authenticate(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str,
    ) -> _Reply | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        token = lowered.get("x-auth-token")
        if token is not None:
            sent = token.strip().encode("utf-8", "surrogatepass")
            if any(hmac.compare_digest(sent, t.encode("utf-8")) for t in self._tokens):
                return None
            return self._gateway_error(
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
            reason = self._date_problem(lowered["x-sdk-date"].strip())
        if reason is None and self._security_token is not None:
            sent = lowered.get("x-security-token", "").strip().encode("utf-8", "surrogatepass")
            if not hmac.compare_digest(sent, self._security_token.encode("utf-8")):
                reason = "security token missing or invalid"
        if reason is None:
            return None
        message = f"Incorrect IAM authentication information: {reason}"
        return self._gateway_error(401, _BAD_SIGNATURE, message, request_id)

    def _date_problem(self, sdk_date: str) -> str | None:
        try:
            signed_at = datetime.strptime(sdk_date, _SDK_DATE_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            return "X-Sdk-Date malformed"
        if abs(self._wall_clock() - signed_at) > _MAX_CLOCK_SKEW:
            return "X-Sdk-Date is more than 15 minutes from the server time"
        return None

    def _gateway_error(self, status: int, code: str, msg: str, request_id: str) -> _Reply:
        # The API gateway's own errors carry the request ID in the body as well.
        return _json_reply(status, {"error_code": code, "error_msg": msg, "request_id": request_id})

    def _error(
        self,
        route: _Route | None,
        status: int,
        code: str,
        msg: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> _Reply:
        devenviron = route is not None and route.action.startswith("de_")
        key = self._de_msg_key if devenviron else "error_msg"
        return _json_reply(status, {"error_code": code, key: msg}, headers)

    # -- state machine (called with the lock held) ---------------------------------------------

    def _settle(self, instance: _Instance) -> None:
        """Finish a STOPPING/STARTING transition whose time has come."""
        status = instance.body["status"]
        if instance.since is None or status not in ("STOPPING", "STARTING"):
            return
        if self._clock() - instance.since >= self._stop_seconds:
            self._set_status(instance, "STOPPED" if status == "STOPPING" else "RUNNING")

    def _set_status(self, instance: _Instance, status: str) -> None:
        instance.body["status"] = status
        instance.since = self._clock() if status in ("STOPPING", "STARTING") else None
        now = self._now_ms()
        if instance.api == NOTEBOOK:
            instance.body["update_at"] = now
            if isinstance(instance.body.get("lease"), dict):
                instance.body["lease"]["update_at"] = now
        else:
            instance.body["latest_update_timestamp"] = str(now)

    def _lookup(self, route: _Route, api: str) -> _Instance | None:
        found = self._instances.get((route.project_id, route.instance_id or ""))
        if found is None or found.api != api:
            return None
        self._settle(found)
        return found

    def _notebook_missing(self, route: _Route) -> _Reply:
        return self._error(
            route, 404, _NOTEBOOK_NOT_FOUND, f"Notebook {route.instance_id} not found."
        )

    def _settled_bodies(self, project_id: str, api: str) -> list[dict[str, Any]]:
        bodies = []
        for (project, _), instance in self._instances.items():
            if project == project_id and instance.api == api:
                self._settle(instance)
                bodies.append(instance.body)
        return bodies

    # notebook API

    def _do_notebook_show(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, NOTEBOOK)
        if found is None:
            return self._notebook_missing(route)
        return _json_reply(200, found.body)

    def _do_notebook_delete(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, NOTEBOOK)
        if found is None:
            return self._notebook_missing(route)
        if self._stop_before_delete and found.body["status"] in _MUST_STOP_FIRST:
            return self._error(route, 400, *_STOP_FIRST)
        self._set_status(found, "DELETING")
        del self._instances[(route.project_id, route.instance_id or "")]
        return _json_reply(200, found.body)

    def _do_notebook_stop(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, NOTEBOOK)
        if found is None:
            return self._notebook_missing(route)
        if found.body["status"] in _ALREADY_STOPPING:
            return self._error(route, 400, *_IN_TARGET_STATE)
        self._set_status(found, "STOPPING")
        return _json_reply(200, found.body)

    def _do_notebook_start(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, NOTEBOOK)
        if found is None:
            return self._notebook_missing(route)
        if found.body["status"] in _ALREADY_STARTING:
            return self._error(route, 400, *_ALREADY_RUNNING)
        self._set_status(found, "STARTING")
        return _json_reply(200, found.body)

    def _do_notebook_list(self, route: _Route, query: str, body: bytes) -> _Reply:
        params = _first_values(query)
        limit = _int_param(params, "limit", 10)
        offset = _int_param(params, "offset", 0)
        sort_dir = params.get("sort_dir", "DESC").upper()
        if limit not in _NOTEBOOK_PAGE_SIZES or offset is None or offset < 0:
            return self._error(route, 400, *_PARAMETER_ERROR)
        if sort_dir not in ("ASC", "DESC"):
            return self._error(route, 400, *_PARAMETER_ERROR)
        sort_keys = [k for k in params.get("sort_key", "create_at").split(",") if k]
        if not sort_keys or any(k not in _NOTEBOOK_SORT_KEYS for k in sort_keys):
            return self._error(route, 400, *_NO_SORTING)
        feature = params.get("feature", "NOTEBOOK")
        workspace = params.get("workspace_id", params.get("workspaceId"))
        name = params.get("name")
        matching = [
            b
            for b in self._settled_bodies(route.project_id, NOTEBOOK)
            if b.get("feature") == feature
            and params.get("status", b.get("status")) == b.get("status")
            and params.get("id", b.get("id")) == b.get("id")
            and workspace in (None, b.get("workspace_id"))
            and (name is None or name.lower() in str(b.get("name", "")).lower())
        ]
        matching.sort(key=lambda b: _sort_key(b, sort_keys), reverse=sort_dir == "DESC")
        # `offset` counts records, not pages: the docs call it the "start offset of the records"
        # and Terraform's data source pages with offset += len(page). `current` is 0-based.
        return _json_reply(
            200,
            {
                "current": offset // limit,
                "data": matching[offset : offset + limit],
                "pages": math.ceil(len(matching) / limit),
                "size": limit,
                "total": len(matching),
            },
        )

    # devenviron API

    def _do_de_show(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, DEVENVIRON)
        if found is None:
            return self._error(route, 400, *_DE_NOT_FOUND)
        return _json_reply(200, found.body)

    def _do_de_delete(self, route: _Route, query: str, body: bytes) -> _Reply:
        found = self._lookup(route, DEVENVIRON)
        if found is None:
            return self._error(route, 400, *_DE_NOT_FOUND)
        if self._stop_before_delete and found.body["status"] in _MUST_STOP_FIRST:
            return self._error(route, 400, *_STOP_FIRST)
        del self._instances[(route.project_id, route.instance_id or "")]
        return _json_reply(200, {"instance_id": route.instance_id})

    def _do_de_action(self, route: _Route, query: str, body: bytes) -> _Reply:
        try:
            action = json.loads(body.decode("utf-8")).get("action") if body else None
        except (ValueError, AttributeError):
            action = None
        if action not in ("start", "stop"):
            return self._error(route, 400, *_PARAMETER_ERROR)
        found = self._lookup(route, DEVENVIRON)
        if found is None:
            return self._error(route, 400, *_DE_NOT_FOUND)
        previous = found.body["status"]
        if action == "stop" and previous in _ALREADY_STOPPING:
            return self._error(route, 400, *_IN_TARGET_STATE)
        if action == "start" and previous in _ALREADY_STARTING:
            return self._error(route, 400, *_ALREADY_RUNNING)
        self._set_status(found, "STOPPING" if action == "stop" else "STARTING")
        return _json_reply(
            200, {"current_status": found.body["status"], "previous_state": previous}
        )

    def _do_de_list(self, route: _Route, query: str, body: bytes) -> _Reply:
        params = _first_values(query)
        limit = _int_param(params, "limit", 0)
        offset = _int_param(params, "offset", 0)
        sortby = params.get("sortby", "name")
        order = params.get("order", "asc").lower()
        # `de_type` is mandatory and case-sensitive; `limit=0` (the default) means "all".
        if params.get("de_type") != "Notebook" or limit is None or offset is None:
            return self._error(route, 400, *_PARAMETER_ERROR)
        if limit < 0 or offset < 0 or order not in ("asc", "desc"):
            return self._error(route, 400, *_PARAMETER_ERROR)
        if sortby not in _DEVENVIRON_SORT_KEYS:
            return self._error(route, 400, *_NO_SORTING)
        matching = [
            b
            for b in self._settled_bodies(route.project_id, DEVENVIRON)
            if params.get("status", b.get("status")) == b.get("status")
        ]

        def by(b: dict[str, Any]) -> tuple[int, str]:
            if sortby == "creation_timestamp":
                return (int(b.get("creation_timestamp") or 0), "")
            return (0, str(b.get("name", "")))

        matching.sort(key=by, reverse=order == "desc")
        page = matching[offset:] if limit == 0 else matching[offset : offset + limit]
        return _json_reply(200, {"total_count": len(matching), "instances": page})


def _first_values(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _int_param(params: Mapping[str, str], name: str, default: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    return int(raw) if re.fullmatch(r"-?\d{1,9}", raw) else None


def _sort_key(body: Mapping[str, Any], keys: list[str]) -> tuple[tuple[int, Any], ...]:
    # Absent values sort together, apart from present ones, so mixed types never meet.
    return tuple((1, "") if body.get(k) is None else (0, body.get(k)) for k in keys)


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: REDACTED if k.lower() in _SECRET_HEADERS else v for k, v in headers.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 1024
    fake: FakeModelArts

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (read timeout, reset) is business as usual here; anything else
        # is a bug in the fake and keeps the standard traceback on stderr.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    # http.server writes headers and body separately: with Nagle on, each answer stalls ~40 ms.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "FakeModelArts"

    @property
    def _fake(self) -> FakeModelArts:
        return cast("_Server", self.server).fake

    def setup(self) -> None:
        connection: socket.socket = self.request  # `self.connection` once super().setup() ran
        self._fake._track(connection, add=True)
        if isinstance(connection, ssl.SSLSocket):
            try:
                connection.settimeout(_HANDSHAKE_TIMEOUT)
                connection.do_handshake()
                connection.settimeout(None)
            except OSError:  # ssl.SSLError included: the client refused our certificate
                self._fake._track(connection, add=False)
                raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length", "0").strip()
        return self.rfile.read(int(length)) if length.isdigit() and int(length) > 0 else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        method = self.command
        body = self._read_body()
        headers = dict(self.headers.items())
        request_id = str(uuid.uuid4())
        route = _match_route(method, split.path)
        reply = self._fake._handle(
            method, split.path, split.query, headers, body, route, request_id
        )
        # Recorded before answering, so a client that has its answer always finds it recorded.
        self._fake._record(
            RecordedRequest(
                method=method,
                path=split.path,
                query=split.query,
                headers=_redacted(headers),
                body=body,
                status=None if reply is None else reply.status,
                instance_id=route.instance_id if route is not None else None,
            )
        )
        if reply is None:
            self._reset()
        else:
            self._send(reply, request_id)

    def _send(self, reply: _Reply, request_id: str) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Request-Id", request_id)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        # Linger 0 turns the close into an RST. Closing here, before socketserver's own
        # shutdown(SHUT_WR), keeps a FIN from going out first and looking like a clean EOF.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
