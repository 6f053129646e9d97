"""Where a run's requests go: each project's region, found from the settings, the function's
own project or IAM, and a client whose transports reach each region (or the one endpoint set).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import requests

from .cleanup.report import JsonLog
from .cloud.admission import Admission
from .cloud.client import ModelArtsClient
from .cloud.credentials import AkSk, Credentials, IamToken
from .cloud.iam import IamClient, ProjectRegionCache
from .cloud.regions import Located, RegionalTransport, locate
from .cloud.transport import RetryDetails, RetryPolicy, Timeouts, Transport
from .functiongraph import FunctionContext
from .settings import Settings, variable

SessionFactory = Callable[[int, requests.auth.AuthBase], requests.Session]


class Reach(Protocol):
    """What of an invocation reaching the cloud needs: its context, sessions, clock and cache."""

    @property
    def context(self) -> object | None: ...
    @property
    def environ(self) -> Mapping[str, str] | None: ...
    @property
    def session_factory(self) -> SessionFactory: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def sleep(self) -> Callable[[float], None]: ...
    @property
    def iam_cache(self) -> ProjectRegionCache: ...


@dataclass(frozen=True)
class Where:
    """Where the run's requests go: each project's region, or the one endpoint if set."""

    located: Located
    # Every project to this one endpoint (MODELARTS_CLEANUP_ENDPOINT), no lookup made.
    single: str | None = None

    def region_of(self, project_id: str) -> str | None:
        """The region a project's results report."""
        return self.located.region(project_id)

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions the run's requests go to."""
        return tuple(sorted(set(self.located.regions.values())))


def locate_projects(
    settings: Settings,
    credentials: Credentials,
    projects: Sequence[str],
    invocation: Reach,
    log: JsonLog,
    deadline: float | None,
) -> Where:
    """Each project's region: the explicit map, the function's own, IAM; or one endpoint."""
    if settings.endpoint is not None:
        # One endpoint for everything, as configured: nothing is looked up, and a result's
        # region is the map's or the configured one, when either says.
        labels = {p: settings.project_regions.get(p) or settings.region for p in projects}
        known = {p: region for p, region in labels.items() if region is not None}
        return Where(Located(known), settings.endpoint)
    own_project = FunctionContext(invocation.context).project_id() or _runtime_project(invocation)
    own = None if own_project is None or settings.region is None else (own_project, settings.region)
    token = isinstance(credentials, IamToken)
    reachable: frozenset[str] | None = None
    unreachable = ""
    if token:
        only = settings.region or "none"
        no_iam = (
            "an IAM token is scoped to one project and region, and IAM is not asked with one; "
            f"with MODELARTS_CLEANUP_AUTH_TOKEN only {only}'s projects are reachable: map this "
            "project in MODELARTS_CLEANUP_PROJECT_REGIONS, or use AK/SK (an agency) for others"
        )
        reachable = frozenset() if settings.region is None else frozenset({settings.region})
        unreachable = (
            "in region {region}, but an IAM token is scoped to one project: with "
            f"MODELARTS_CLEANUP_AUTH_TOKEN only {only} is reachable; use AK/SK (an agency)"
        )
        log.info(
            f"an IAM token works in one region only: requests go to {only}; "
            "projects in other regions are refused (region_unknown)"
        )
        ask = None
    else:
        no_iam = ""

        def ask() -> Mapping[str, str]:
            return _ask_iam(settings, credentials, invocation, deadline, log)

    located = locate(
        projects,
        explicit=settings.project_regions,
        own=own,
        ask_iam=ask,
        no_iam=no_iam,
        reachable=reachable,
        unreachable=unreachable,
    )
    for project, why in located.unknown.items():
        log.warning(f"project {project}: region unknown, not touched: {why}", project_id=project)
    return Where(located)


def _runtime_project(invocation: Reach) -> str | None:
    environ = os.environ if invocation.environ is None else invocation.environ
    value = environ.get("RUNTIME_PROJECT_ID", "").strip()
    return value or None


# IAM's answers, kept across the invocations of a warm container (ProjectRegionCache's clock).
IAM_CACHE = ProjectRegionCache()


def _ask_iam(
    settings: Settings,
    credentials: Credentials,
    invocation: Reach,
    deadline: float | None,
    log: JsonLog,
) -> Mapping[str, str]:
    """Project ID -> region from IAM, or from a recent enough answer; asked once per run."""
    caller = credentials.access_key if isinstance(credentials, AkSk) else ""
    cache = invocation.iam_cache
    kept = cache.get(settings.iam_url, caller)
    if kept is not None:
        return kept
    session = invocation.session_factory(1, credentials.auth())
    try:
        transport = transport_to(
            settings,
            settings.iam_url,
            session,
            invocation,
            credentials.secret_values(),
            log,
            Admission(first_guess=settings.connect_timeout, clock=invocation.clock),
            variable("iam_endpoint"),
        )
        answer = IamClient(transport).project_regions(deadline=deadline)
    finally:
        session.close()
    cache.put(settings.iam_url, caller, answer)
    return answer


def regional_client(
    settings: Settings,
    where: Where,
    auth: requests.auth.AuthBase,
    invocation: Reach,
    secrets: Sequence[str],
    log: JsonLog,
    sessions: list[requests.Session],
) -> tuple[ModelArtsClient, list[Admission]]:
    """A client whose requests go to each project's region: a transport (connection pool,
    admission) per endpoint. Sessions opened are added to `sessions`, for the caller to close."""

    clock = invocation.clock
    if where.single is not None:
        origin = variable("endpoint")
    else:
        named = ("region", "project_regions", "endpoints")
        origin = ", ".join(variable(name) for name in named[:-1]) + f" or {variable(named[-1])}"
    urls = (
        {"": where.single}
        if where.single is not None
        else {region: settings.region_url(region) for region in where.regions}
    )
    if not urls:
        # Nothing reachable: a transport that is never used keeps the client whole.
        urls = {"": settings.base_url or settings.iam_url}
    transports: dict[str, Transport] = {}
    admissions: list[Admission] = []
    for key, url in urls.items():
        session = invocation.session_factory(settings.concurrency, auth)
        sessions.append(session)
        # Until a request has been answered, one may take as long as connecting may.
        admission = Admission(first_guess=settings.connect_timeout, clock=clock)
        admissions.append(admission)
        transports[key] = transport_to(
            settings, url, session, invocation, secrets, log, admission, origin
        )
    routes = {} if where.single is not None else dict(where.located.regions)
    regional = RegionalTransport(
        transports,
        routes,
        limit=settings.concurrency,
        default="" if where.single is not None else None,
    )
    return ModelArtsClient(regional, api=settings.api), admissions


def transport_to(
    settings: Settings,
    url: str,
    session: requests.Session,
    invocation: Reach,
    secrets: Sequence[str],
    log: JsonLog,
    admission: Admission,
    origin: str,
) -> Transport:
    """A transport to `url` on a session, with the run's retry policy, timeouts and admission;
    `origin` names the settings the URL comes from."""

    def log_retry(retry: RetryDetails) -> None:
        log.debug(
            f"retrying {retry.request}",
            attempt=retry.attempt,
            max_attempts=retry.max_attempts,
            delay=round(retry.delay, 3),
            reason=retry.reason,
            http_status=retry.http_status,
        )

    return Transport(
        session=session,
        endpoint=url,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        clock=invocation.clock,
        sleep=invocation.sleep,
        secrets=secrets,
        on_retry=log_retry,
        admission=admission,
        origin=origin,
    )
