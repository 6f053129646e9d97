"""A local IAM endpoint: `GET /v3/auth/projects` (KeystoneListAuthProjects), signatures checked
like every route of the local ModelArts endpoint, and refusals on request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import urlsplit

from .gateway import Gateway
from .http_server import Listener, Served
from .recording import RecordedRequest, RequestLog, redacted
from .replies import NO_SUCH_API, Reply, gateway_error, json_reply

AUTH_PROJECTS = "/v3/auth/projects"
DOMAIN_ID = "d78cbac186b744899480f25bd022f468"
# IAM's own refusals carry Keystone's error shape.
_REFUSALS = {
    401: "The request you have made requires authentication.",
    403: "You are not authorized to perform the requested action.",
}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FakeIam(Served):
    """Local IAM on 127.0.0.1 (OS-chosen port); use as a context manager."""

    def __init__(
        self,
        *,
        access_key: str = "fake-ak",
        secret_key: str = "fake-sk",  # noqa: S107  (a fake key for a fake endpoint)
        security_token: str | None = None,
        tokens: Iterable[str] = ("fake-iam-token",),
        projects: Mapping[str, str] | None = None,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gateway = Gateway(
            access_key=access_key,
            secret_key=secret_key,
            security_token=security_token,
            tokens=tokens,
            token_error_code="APIGW.0307",  # noqa: S106  (an error code, not a token)
            rate_limit=None,
            permissions=None,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._lock = threading.Lock()
        # Project ID -> (name, parent ID): what KeystoneListAuthProjects lists.
        self._projects: dict[str, tuple[str, str]] = {}
        for project_id, name in (projects or {}).items():
            self.add_project(project_id, name)
        self._refusal: int | None = None
        self._latency = latency
        self._sleep = sleep
        self._log = RequestLog()
        self._listener = Listener(self)

    def add_project(self, project_id: str, name: str, parent_id: str | None = None) -> None:
        """A project the caller may use: a region's (`cn-north-4`), a subproject
        (`cn-north-4_team`, its parent the region's project) or another (`MOS`)."""
        with self._lock:
            self._projects[project_id] = (name, parent_id or DOMAIN_ID)

    def refuse(self, status: int | None) -> None:
        """Answer every request with IAM's 401 or 403 (None: answer normally again)."""
        if status is not None and status not in _REFUSALS:
            raise ValueError("IAM refuses with 401 or 403")
        self._refusal = status

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request served, secret headers redacted."""
        return self._log.all()

    def pause(self, seconds: float) -> None:
        """Wait while an answer's body is held back (called by the HTTP server)."""
        self._sleep(seconds)

    def serve(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        """Answer one request and record it (called by the HTTP server)."""
        if self._latency > 0:
            self._sleep(self._latency)
        split = urlsplit(target)
        request_id = uuid.uuid4().hex
        reply = self._answer(method, split.path, split.query, headers, body, request_id)
        self._log.add(
            RecordedRequest(
                method=method,
                path=split.path,
                query=split.query,
                headers=redacted(headers),
                body=body,
                status=reply.status,
                instance_id=None,
                iam_action=None,
            )
        )
        return replace(reply, headers=(("X-Request-Id", request_id), *reply.headers))

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str,
    ) -> Reply:
        if method != "GET" or path.rstrip("/") != AUTH_PROJECTS:
            return gateway_error(404, *NO_SUCH_API, request_id)
        denied = self._gateway.authenticate(method, path, query, headers, body, request_id)
        if denied is not None:
            return denied
        refusal = self._refusal
        if refusal is not None:
            error = {"code": refusal, "message": _REFUSALS[refusal], "title": "Forbidden"}
            return json_reply(refusal, {"error": error})
        with self._lock:
            listed = [
                {
                    "id": project_id,
                    "name": name,
                    "domain_id": DOMAIN_ID,
                    "enabled": True,
                    "parent_id": parent,
                    "is_domain": False,
                    "description": "",
                    "links": {"self": f"{self.url}/v3/projects/{project_id}"},
                }
                for project_id, (name, parent) in self._projects.items()
            ]
        return json_reply(
            200, {"projects": listed, "links": {"self": f"{self.url}{AUTH_PROJECTS}"}}
        )
