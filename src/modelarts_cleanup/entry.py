"""The one entry function: event and context in, report (or APIG's answer) out.

The handler and the command line both call it.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import requests

from .cleanup.execution import Recheck, execute
from .cleanup.planning import Candidate, Policy, make_plan
from .cleanup.report import (
    JsonLog,
    Outcome,
    Reason,
    Report,
    Result,
    run_status,
    summary_log_fields,
)
from .cloud.admission import Admission
from .cloud.client import ModelArtsClient
from .cloud.credentials import resolve_credentials
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
    return report_answer(report, endpoint=settings.base_url)


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
        session = invocation.session_factory(settings.concurrency, auth)
        # Until a request has been answered, one may take as long as connecting may.
        admission = Admission(first_guess=settings.connect_timeout, clock=clock)
        try:
            client = _client(
                settings, session, clock, sleep, credentials.secret_values(), log, admission
            )
        except ConfigurationError:
            session.close()
            raise
    except (ConfigurationError, PayloadError) as exc:
        log.error(str(exc), error_type=type(exc).__name__, envelope=received.envelope.value)
        raise

    # Each source can only make the run safer: any one of them asking for a dry run wins.
    dry_run = settings.dry_run or payload.dry_run or invocation.force_dry_run
    policy = _policy(settings)
    budget = invocation.budget
    deadline = (
        None if budget is None else started + budget - min(DEADLINE_MARGIN_SECONDS, budget / 4)
    )
    if deadline is not None and not admission.admits(deadline):
        log.warning(
            f"{deadline - clock():.1f}s is less than the {admission.needed():.1f}s a first request "
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
                concurrency=settings.concurrency,
                protect=protect,
            )
            recheck = rechecker(client, deadline, wall_clock, protect)
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
        )
        if settings.confirm_seconds > 0 and any(r.outcome is Outcome.DELETED for r in results):
            results = _confirmed(results, client, settings, deadline, clock, sleep, log)
    finally:
        session.close()
    report = Report(
        status=run_status(
            results,
            refused=plan.refused_run is not None,
            failed_selectors=sum(1 for r in selector_reports if r.failed),
            incomplete_selectors=sum(1 for r in selector_reports if r.incomplete),
        ),
        dry_run=dry_run,
        api=settings.api.value,
        request_id=invocation.request_id,
        duration_ms=round((clock() - started) * 1000),
        results=results,
        selectors=tuple(r.to_dict() for r in selector_reports),
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


def _confirmed(
    results: tuple[Result, ...],
    client: ModelArtsClient,
    settings: Settings,
    deadline: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    log: JsonLog,
) -> tuple[Result, ...]:
    """The results once the deleted instances were read again until gone (CONFIRM_SECONDS)."""
    from .cleanup.confirmation import confirm  # only runs that deleted something

    confirmation = confirm(
        results,
        client,
        seconds=settings.confirm_seconds,
        deadline=deadline,
        concurrency=settings.concurrency,
        clock=clock,
        sleep=sleep,
    )
    for before, after in zip(results, confirmation.results, strict=True):
        if after.outcome is not before.outcome:  # accepted, then failed: logged again
            log.error(f"{after.instance_id}: {after.outcome.value}", **after.to_dict())
    confirmed = [r.confirmed for r in confirmation.results if r.outcome is Outcome.DELETED]
    log.info(
        "deletions confirmed",
        confirmed=confirmed.count(True),
        unconfirmed=confirmed.count(False),
        delete_failed=sum(1 for r in confirmation.results if r.reason == Reason.DELETE_FAILED),
        reads=confirmation.reads,
        duration_ms=round(confirmation.seconds * 1000),
    )
    return confirmation.results


def _client(
    settings: Settings,
    session: requests.Session,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    secrets: Sequence[str],
    log: JsonLog,
    admission: Admission,
) -> ModelArtsClient:
    def log_retry(retry: RetryDetails) -> None:
        log.debug(
            f"retrying {retry.request}",
            attempt=retry.attempt,
            max_attempts=retry.max_attempts,
            delay=round(retry.delay, 3),
            reason=retry.reason,
            http_status=retry.http_status,
        )

    transport = Transport(
        session=session,
        endpoint=settings.base_url,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        clock=clock,
        sleep=sleep,
        secrets=secrets,
        on_retry=log_retry,
        admission=admission,
    )
    return ModelArtsClient(transport, api=settings.api)


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


def _policy(settings: Settings) -> Policy:
    return Policy(
        allowed_projects=settings.allowed_projects,
        protected_instances=settings.protected_instances,
        max_deletions=settings.max_deletions,
    )
