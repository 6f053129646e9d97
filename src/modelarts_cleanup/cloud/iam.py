"""IAM: which region each project the caller may use belongs to (KeystoneListAuthProjects).

A project is named after its region (`cn-north-4`); a subproject `<region>_<name>`. Other names
(OBS's `MOS`, say) are not regions and are left out. The answer is asked for at most once per
run, and a warm container may reuse it for a while (`ProjectRegionCache`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

from ..exceptions import ApiError
from ..vocabulary import is_project_id
from .answers import MALFORMED_RESPONSE
from .transport import Answer, Sender

IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
AUTH_PROJECTS_PATH = "/v3/auth/projects"
# How long a warm container may trust the answer: projects rarely move, and a project created
# since is simply looked up again once this has passed.
CACHE_SECONDS = 600.0

# A region ID as IAM names region projects (cn-north-4, ap-southeast-1, eu-west-101), then,
# for a subproject, `_` and its own name.
_PROJECT_NAME = re.compile(r"([a-z]{2,}(?:-[a-z]+)+-[0-9]+)(?:_.+)?", re.DOTALL)


def region_of_project_name(name: object) -> str | None:
    """The region a project of this name belongs to, or None when the name is not a region's."""
    if not isinstance(name, str):
        return None
    match = _PROJECT_NAME.fullmatch(name)
    return match.group(1) if match else None


def project_regions(body: object) -> dict[str, str]:
    """Project ID -> region from a KeystoneListAuthProjects answer; ValueError if malformed."""
    projects = body.get("projects") if isinstance(body, dict) else None
    if not isinstance(projects, list):
        raise ValueError("the answer has no `projects` list")
    found: dict[str, str] = {}
    for project in projects:
        if not isinstance(project, dict):
            raise ValueError("a project is not an object")
        project_id, region = project.get("id"), region_of_project_name(project.get("name"))
        if isinstance(project_id, str) and is_project_id(project_id) and region is not None:
            found[project_id] = region
    return found


class IamClient:
    """Asks IAM for the projects the caller may use."""

    def __init__(self, transport: Sender) -> None:
        self._transport = transport

    def project_regions(self, *, deadline: float | None = None) -> dict[str, str]:
        """Project ID -> region of every project the caller may use (GET /v3/auth/projects)."""
        answer = self._transport.send("GET", AUTH_PROJECTS_PATH, project_id=None, deadline=deadline)
        what = f"GET {AUTH_PROJECTS_PATH}"
        if answer.absent:
            raise _malformed(answer, what, "IAM answered that the list does not exist")
        try:
            return project_regions(answer.reply.json_object())
        except ValueError as exc:
            raise _malformed(answer, what, str(exc)) from None


def _malformed(answer: Answer, what: str, why: str) -> ApiError:
    return ApiError(
        f"{what}: {why}",
        http_status=answer.reply.status,
        error_code=MALFORMED_RESPONSE,
        error_msg=why,
        request_id=answer.reply.request_id,
        attempts=answer.attempts,
    )


class ProjectRegionCache:
    """IAM's answers kept for CACHE_SECONDS, per IAM endpoint and caller. Thread-safe.

    Module state on purpose: a warm container reuses it across invocations. Only answers are
    kept; a failure is asked about again by the next run.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[float, Mapping[str, str]]] = {}

    def get(self, endpoint: str, caller: str) -> Mapping[str, str] | None:
        """The answer IAM gave this caller at this endpoint, if it is recent enough."""
        with self._lock:
            kept = self._answers.get((endpoint, caller))
            if kept is None:
                return None
            at, answer = kept
            if self._clock() - at >= self._ttl:
                del self._answers[(endpoint, caller)]
                return None
            return answer

    def put(self, endpoint: str, caller: str, answer: Mapping[str, str]) -> None:
        """Keep an answer."""
        with self._lock:
            self._answers[(endpoint, caller)] = (self._clock(), dict(answer))

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._answers.clear()
