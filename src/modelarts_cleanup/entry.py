"""The one entry function: event and context in, report (or APIG's answer) out.

The handler and the command line both call it.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import requests

from .cleanup.execution import Recheck, execute
from .cleanup.planning import Candidate, Policy, make_plan
from .cleanup.report import (
    JsonLog,
    Outcome,
    Report,
    run_status,
    summary_log_fields,
)
from .cloud.client import ModelArtsClient
from .cloud.credentials import resolve_credentials
from .cloud.iam import ProjectRegionCache
from .cloud.regions import Located
from .cloud.session import new_session
from .environment import function_environment
from .events.envelopes import Envelope, Received
from .events.intake import Expectations, accept, receive
from .exceptions import ConfigurationError, PayloadError, RunNotClean
from .followup import confirmed, notified
from .functiongraph import FunctionContext
from .routing import IAM_CACHE, SessionFactory, locate_projects, regional_client
from .settings import Settings, load_settings, text_logs
from .vocabulary import ApiGeneration

if TYPE_CHECKING:
    from .cleanup.discovery import SelectorReport
    from .cleanup.guard import ReadNamed

# Requests cap their own timeouts at the deadline, so the margin only has to cover building and
# returning the report; a quarter of a very short budget at most, so a 3 s function still works.
DEADLINE_MARGIN_SECONDS = 2.0

_cold_start = True
# Envelopes whose invocations are asynchronous: their status is what FunctionGraph counts.
_ASYNC = frozenset({Envelope.TIMER, Envelope.SMN})


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
    publish: bool = True,
) -> dict[str, Any]:
    """Run one invocation and return what the handler returns: the report, or APIG's answer.

    Invalid input deletes nothing and raises, except from API Gateway, whose caller gets an
    answer (400, 405, 413, 500) instead of the bare 500 a raised exception would give it.
    `on_report` receives the report of every run that produced one, whatever the envelope.
    `publish=False` sends no digest to the topic set (a preview for one person: `plan`).
    """
    global _cold_start
    cold_start, _cold_start = _cold_start, False
    started = clock()
    function = FunctionContext(context)
    request_id = function.request_id() or str(uuid.uuid4())
    # Read once: the log format is wanted before the settings are, and both come from here.
    variables = _variables(context, environ)
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
        publish=publish,
        variables=variables,
        text_logs=not isinstance(variables, ConfigurationError) and text_logs(variables),
    )
    log = JsonLog(invocation.stream, context=invocation.log_context, text=invocation.text_logs)
    try:
        received = receive(event)
    except PayloadError as exc:
        log.error(str(exc), error_type=type(exc).__name__)
        raise
    if received.envelope is not Envelope.APIG:
        settings, report = _run(received, invocation)
        if received.envelope in _ASYNC and report["status"] in settings.fail_on:
            # Asynchronous invocations: only an error reaches FunctionGraph's error metrics,
            # retries and failure destination. The report and summary are logged already.
            error = RunNotClean(report["status"], report)
            log.error(str(error), error_type=type(error).__name__, status=error.status)
            raise error
        return report

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
    publish: bool
    # The variables the settings are read from, or why they could not be read.
    variables: Mapping[str, str] | ConfigurationError
    text_logs: bool


def _endpoints_named(settings: Settings) -> list[str]:
    """Every endpoint a setting names, which an answer to API Gateway's caller does not."""
    named = [
        settings.endpoint,
        settings.base_url,
        *settings.endpoints.values(),
        settings.iam_url,
        settings.smn_base_url,
    ]
    return [url for url in dict.fromkeys(named) if url]


def _variables(
    context: object | None, environ: Mapping[str, str] | None
) -> dict[str, str] | ConfigurationError:
    """The function's variables; RUNTIME_USERDATA unreadable is kept, for `_run` to report with
    the rest (in JSON, the format asked for being unknown)."""
    try:
        return function_environment(context, environ)
    except ConfigurationError as exc:
        return exc


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
    text = invocation.text_logs
    log = JsonLog(invocation.stream, context=invocation.log_context, text=text)
    try:
        if isinstance(invocation.variables, ConfigurationError):
            raise invocation.variables
        settings = load_settings(invocation.variables)
        log = JsonLog(
            invocation.stream, level=settings.log_level, context=invocation.log_context, text=text
        )
        payload = accept(received, Expectations(settings.api, settings.targets, settings.selectors))
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
    began = wall_clock()  # when the run ran, as its digest tells people
    where = locate_projects(settings, credentials, projects, invocation, log, deadline)
    policy = _policy(settings, where.located)
    sessions: list[requests.Session] = []
    try:
        client, admissions = regional_client(
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
        read_named = _named_reader(settings, client, deadline, dry_run=dry_run)
        for selector_report in selector_reports:
            if selector_report.failed:
                log.error("selector not applied", **selector_report.to_dict())
            elif selector_report.incomplete:
                log.warning("selector applied without some workspaces", **selector_report.to_dict())
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
            read_named=read_named,
        )
        if settings.confirm_seconds > 0 and any(r.outcome is Outcome.DELETED for r in results):
            results = confirmed(
                results, client, settings, deadline, clock, sleep, log, len(where.regions)
            )
        status = run_status(
            results,
            refused=plan.refused_run is not None,
            failed_selectors=sum(1 for r in selector_reports if r.failed),
            incomplete_selectors=sum(1 for r in selector_reports if r.incomplete),
        )
        selectors = tuple(r.to_dict() for r in selector_reports)

        def report_of(notification: Mapping[str, Any] | None) -> Report:
            return Report(
                status=status,
                dry_run=dry_run,
                api=settings.api.value,
                request_id=invocation.request_id,
                duration_ms=round((clock() - started) * 1000),
                results=results,
                selectors=selectors,
                regions=where.regions,
                notification=notification,
            )

        notification = None
        topic, smn_url = settings.topic, settings.smn_base_url
        if topic is not None and smn_url is not None and invocation.publish:
            # After everything else, and whatever becomes of it the results stand.
            notification = notified(
                report_of(None).to_dict(),
                settings,
                topic,
                smn_url,
                invocation,
                credentials,
                log,
                deadline,
                began,
                sessions,
            )
    finally:
        for session in sessions:
            session.close()
    report = report_of(notification)
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


def _policy(settings: Settings, located: Located) -> Policy:
    return Policy(
        allowed_projects=settings.allowed_projects,
        protected_instances=settings.protected_instances,
        max_deletions=settings.max_deletions,
        unknown_regions=located.unknown,
        over_cap=settings.over_cap,
    )


def _named_reader(
    settings: Settings, client: ModelArtsClient, deadline: float | None, *, dry_run: bool
) -> ReadNamed | None:
    """Whether named targets are read first: in every dry run (a plan says what the run would
    do), and while protect tags are set on the notebook API. The old API shows no tags: there
    the guard has nothing to read, and named targets go straight to DELETE."""
    guarded = bool(settings.protect) and settings.api is ApiGeneration.NOTEBOOK
    if not (dry_run or guarded):
        return None
    from .cleanup.guard import named_reader

    return named_reader(client, deadline, settings.protect if guarded else ())
