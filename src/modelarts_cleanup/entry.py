"""The one entry function: event and context in, report (or APIG's answer) out.

The handler and the command line both call it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import requests

from .cleanup.execution import Recheck, execute
from .cleanup.planning import Candidate, Policy, make_plan
from .cleanup.report import JsonLog, Report, run_status, summary_log_fields
from .cloud.admission import Admission
from .cloud.client import ModelArtsClient
from .cloud.credentials import AkSk, Credentials, IamToken, resolve_credentials
from .cloud.iam import IamClient, ProjectRegionCache
from .cloud.regions import Located, RegionalTransport, locate
from .cloud.session import new_session
from .cloud.transport import RetryDetails, RetryPolicy, Timeouts, Transport
from .events.envelopes import Envelope, Received, receive, unwrap
from .events.payload import Payload
from .exceptions import ConfigurationError, PayloadError
from .functiongraph import FunctionContext
from .settings import Settings, function_environment, load_settings
from .vocabulary import ApiGeneration

if TYPE_CHECKING:
    from .cleanup.discovery import SelectorReport

# Requests cap their own timeouts at the deadline, so the margin only has to cover building and
# returning the report; a quarter of a very short budget at most, so a 3 s function still works.
DEADLINE_MARGIN_SECONDS = 2.0

SessionFactory = Callable[[int, requests.auth.AuthBase], requests.Session]

_cold_start = True


def _default_session(pool_size: int, auth: requests.auth.AuthBase) -> requests.Session:
    return new_session(pool_size, auth=auth)


def run_function(
    event: object,
    context: object | None,
    *,
    environ: Mapping[str, str] | None = None,
    log_stream: TextIO | None = None,
    deadline_seconds: float | None = None,
    force_dry_run: bool = False,
    session_factory: SessionFactory = _default_session,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    iam_cache: ProjectRegionCache | None = None,
) -> dict[str, Any]:
    """Run one invocation and return what the handler returns: the report, or APIG's answer.

    Invalid input deletes nothing and raises, except from API Gateway, whose caller gets an
    answer (400, 405, 413, 500) instead of the bare 500 a raised exception would give it.
    `on_report` receives the report of every run that produced one, whatever the envelope.
    """
    global _cold_start
    cold_start, _cold_start = _cold_start, False
    started = clock()
    function = FunctionContext(context)
    request_id = function.request_id() or str(uuid.uuid4())
    invocation = _Invocation(
        context=context,
        environ=environ,
        request_id=request_id,
        stream=sys.stdout if log_stream is None else log_stream,
        log_context={"function_request_id": request_id, "cold_start": cold_start},
        started=started,
        budget=deadline_seconds if deadline_seconds is not None else function.remaining_seconds(),
        force_dry_run=force_dry_run,
        session_factory=session_factory,
        clock=clock,
        sleep=sleep,
        wall_clock=wall_clock,
        on_report=on_report,
        iam_cache=IAM_CACHE if iam_cache is None else iam_cache,
    )
    log = JsonLog(invocation.stream, context=invocation.log_context)
    try:
        received = receive(event)
    except PayloadError as exc:
        log.error(str(exc), error_type=type(exc).__name__)
        raise
    if received.envelope is not Envelope.APIG:
        return _run(received, invocation)[1]

    # Only API Gateway events load its code (cold start).
    from .events.apig import error_answer, report_answer

    try:
        settings, report = _run(received, invocation)
    except Exception as exc:  # noqa: BLE001  (raised, it would reach the caller as a bare 500)
        if not isinstance(exc, (ConfigurationError, PayloadError)):  # logged already, with why
            _log_unexpected(log, exc)
        return error_answer(exc, request_id)
    return report_answer(report, endpoint=_endpoints_named(settings))


@dataclass(frozen=True)
class _Invocation:
    """One invocation's inputs, shared by its steps."""

    context: object | None
    environ: Mapping[str, str] | None
    request_id: str
    stream: TextIO
    log_context: Mapping[str, Any]
    started: float
    budget: float | None
    force_dry_run: bool
    session_factory: SessionFactory
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    wall_clock: Callable[[], float]
    on_report: Callable[[dict[str, Any]], None] | None
    iam_cache: ProjectRegionCache


def _endpoints_named(settings: Settings) -> list[str]:
    """Every endpoint a setting names, which an answer to API Gateway's caller does not."""
    named = [settings.endpoint, settings.base_url, *settings.endpoints.values(), settings.iam_url]
    return [url for url in dict.fromkeys(named) if url]


def _log_unexpected(log: JsonLog, exc: Exception) -> None:
    """Where it happened, not what it says: an unexpected exception's text could hold anything."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else None
    log.error("unexpected error", error_type=type(exc).__name__, where=where)


def _run(received: Received, invocation: _Invocation) -> tuple[Settings, dict[str, Any]]:
    """Settings, payload, credentials, then the run; invalid input is logged, then raised."""
    context, started, clock = invocation.context, invocation.started, invocation.clock
    sleep, wall_clock = invocation.sleep, invocation.wall_clock
    log = JsonLog(invocation.stream, context=invocation.log_context)
    try:
        settings = load_settings(function_environment(context, invocation.environ))
        log = JsonLog(invocation.stream, level=settings.log_level, context=invocation.log_context)
        payload = unwrap(
            received, default_targets=settings.targets, default_selectors=settings.selectors
        )
        _check_generation(payload, settings.api)
        credentials = resolve_credentials(settings, context)
        auth = credentials.auth()
    except (ConfigurationError, PayloadError) as exc:
        log.error(str(exc), error_type=type(exc).__name__, envelope=received.envelope.value)
        raise

    # Each source can only make the run safer: any one of them asking for a dry run wins.
    dry_run = settings.dry_run or payload.dry_run or invocation.force_dry_run
    budget = invocation.budget
    deadline = (
        None if budget is None else started + budget - min(DEADLINE_MARGIN_SECONDS, budget / 4)
    )
    # The allowlist comes first: a project outside it is not even looked up.
    projects = [
        p
        for p in dict.fromkeys(
            [t.project_id for t in payload.targets] + [s.project_id for s in payload.selectors]
        )
        if not settings.allowed_projects or p in settings.allowed_projects
    ]
    where = _locate(settings, credentials, projects, invocation, log, deadline)
    policy = _policy(settings, where.located)
    sessions: list[requests.Session] = []
    try:
        client, admissions = _client(
            settings, where, auth, invocation, credentials.secret_values(), log, sessions
        )
    except ConfigurationError as exc:
        for session in sessions:
            session.close()
        log.error(str(exc), error_type=type(exc).__name__, envelope=received.envelope.value)
        raise
    if deadline is not None and not all(a.admits(deadline) for a in admissions):
        needed = max(a.needed() for a in admissions)
        log.warning(
            f"{deadline - clock():.1f}s is less than the {needed:.1f}s a first request "
            "is allowed (MODELARTS_CLEANUP_CONNECT_TIMEOUT and a margin): no request will start; "
            "give the function more time or lower the connect timeout"
        )
    selected: list[Candidate] = []
    selector_reports: list[SelectorReport] = []
    recheck: Recheck | None = None
    try:
        if payload.selectors:
            # Only runs with selectors list anything.
            from .cleanup.discovery import discover, rechecker

            protect = settings.protect
            selected, selector_reports = discover(
                payload.selectors,
                client,
                policy=policy,
                deadline=deadline,
                now_ms=round(wall_clock() * 1000),
                scope=settings.list_scope,
                # Each region has its own `concurrency` requests in flight at most.
                concurrency=settings.concurrency * max(1, len(where.regions)),
                protect=protect,
            )
            selector_reports = [
                replace(r, region=where.region_of(r.project_id)) for r in selector_reports
            ]
            recheck = rechecker(client, deadline, wall_clock, protect)
        for selector_report in selector_reports:
            if selector_report.failed:
                log.error("selector not applied", **selector_report.to_dict())
        plan = make_plan([*payload.targets, *selected], policy, dry_run=dry_run)
        if plan.refused_run is not None:
            log.error(plan.refused_run)
        log.debug(
            "run planned",
            targets=len(plan.order),
            to_delete=len(plan.to_delete),
            dry_run=dry_run,
            credentials=credentials.source,
        )
        results = execute(
            plan,
            client,
            concurrency=settings.concurrency,
            deadline=deadline,
            log=log,
            recheck=recheck,
            clock=clock,
            sleep=sleep,
            region_of=where.region_of,
        )
    finally:
        for session in sessions:
            session.close()
    report = Report(
        status=run_status(
            results,
            refused=plan.refused_run is not None,
            failed_selectors=sum(1 for r in selector_reports if r.failed),
        ),
        dry_run=dry_run,
        api=settings.api.value,
        request_id=invocation.request_id,
        duration_ms=round((clock() - started) * 1000),
        results=results,
        selectors=tuple(r.to_dict() for r in selector_reports),
        regions=where.regions,
    )
    log.log(
        "INFO" if report.status.value == "succeeded" else "WARNING",
        "run finished",
        **summary_log_fields(report),
        envelope=received.envelope.value,
    )
    reported = report.to_dict()
    if invocation.on_report is not None:
        invocation.on_report(reported)
    return settings, reported


@dataclass(frozen=True)
class _Where:
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


def _locate(
    settings: Settings,
    credentials: Credentials,
    projects: Sequence[str],
    invocation: _Invocation,
    log: JsonLog,
    deadline: float | None,
) -> _Where:
    """Each project's region: the explicit map, the function's own, IAM; or one endpoint."""
    if settings.endpoint is not None:
        # One endpoint for everything, as configured: nothing is looked up, and a result's
        # region is the map's or the configured one, when either says.
        labels = {p: settings.project_regions.get(p) or settings.region for p in projects}
        known = {p: region for p, region in labels.items() if region is not None}
        return _Where(Located(known), settings.endpoint)
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
            return _ask_iam(settings, credentials, invocation, deadline)

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
    return _Where(located)


def _runtime_project(invocation: _Invocation) -> str | None:
    environ = os.environ if invocation.environ is None else invocation.environ
    value = environ.get("RUNTIME_PROJECT_ID", "").strip()
    return value or None


# IAM's answers, kept across the invocations of a warm container (ProjectRegionCache's clock).
IAM_CACHE = ProjectRegionCache()


def _ask_iam(
    settings: Settings,
    credentials: Credentials,
    invocation: _Invocation,
    deadline: float | None,
) -> Mapping[str, str]:
    """Project ID -> region from IAM, or from a recent enough answer; asked once per run."""
    caller = credentials.access_key if isinstance(credentials, AkSk) else ""
    cache = invocation.iam_cache
    kept = cache.get(settings.iam_url, caller)
    if kept is not None:
        return kept
    session = invocation.session_factory(1, credentials.auth())
    try:
        transport = Transport(
            session=session,
            endpoint=settings.iam_url,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
            clock=invocation.clock,
            sleep=invocation.sleep,
            secrets=credentials.secret_values(),
            admission=Admission(first_guess=settings.connect_timeout, clock=invocation.clock),
        )
        answer = IamClient(transport).project_regions(deadline=deadline)
    finally:
        session.close()
    cache.put(settings.iam_url, caller, answer)
    return answer


def _client(
    settings: Settings,
    where: _Where,
    auth: requests.auth.AuthBase,
    invocation: _Invocation,
    secrets: Sequence[str],
    log: JsonLog,
    sessions: list[requests.Session],
) -> tuple[ModelArtsClient, list[Admission]]:
    """A client whose requests go to each project's region: a transport (connection pool,
    admission) per endpoint. Sessions opened are added to `sessions`, for the caller to close."""

    def log_retry(retry: RetryDetails) -> None:
        log.debug(
            f"retrying {retry.request}",
            attempt=retry.attempt,
            max_attempts=retry.max_attempts,
            delay=round(retry.delay, 3),
            reason=retry.reason,
            http_status=retry.http_status,
        )

    clock = invocation.clock
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
        transports[key] = Transport(
            session=session,
            endpoint=url,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
            clock=clock,
            sleep=invocation.sleep,
            secrets=secrets,
            on_retry=log_retry,
            admission=admission,
        )
    routes = {} if where.single is not None else dict(where.located.regions)
    regional = RegionalTransport(
        transports,
        routes,
        limit=settings.concurrency,
        default="" if where.single is not None else None,
    )
    return ModelArtsClient(regional, api=settings.api), admissions


def _check_generation(payload: Payload, api: ApiGeneration) -> None:
    """What one API generation cannot do: 'DE-' IDs exist only in the old API (the new one would
    call them absent, which is a lie); grace periods need tags, which only the new one has."""
    if api is ApiGeneration.DEVENVIRON:
        problems = [
            f"selectors[{i}].grace_hours: a grace period marks notebooks with a tag, which only "
            "the notebook API has, but MODELARTS_CLEANUP_API is devenviron"
            for i, s in enumerate(payload.selectors)
            if s.grace_hours is not None
        ]
    else:
        problems = [
            f"targets[{i}].instance_id: 'DE-' IDs belong to the devenviron API, "
            f"but MODELARTS_CLEANUP_API is {api.value}"
            for i, t in enumerate(payload.targets)
            if t.instance_id.startswith("DE-")
        ]
    if problems:
        raise PayloadError(problems)


def _policy(settings: Settings, located: Located) -> Policy:
    return Policy(
        allowed_projects=settings.allowed_projects,
        protected_instances=settings.protected_instances,
        max_deletions=settings.max_deletions,
        unknown_regions=located.unknown,
    )
