"""What follows a run's deletions: reading the deleted instances again until they are gone, and
telling people by SMN. Each only adds to the report; neither changes what was done."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests

from .cleanup.report import JsonLog, Outcome, Reason, Result
from .cloud.admission import Admission
from .cloud.client import ModelArtsClient
from .cloud.credentials import Credentials
from .exceptions import ConfigurationError
from .routing import Reach, transport_to
from .settings import Settings, variable

if TYPE_CHECKING:
    from .cloud.notify import TopicUrn


def confirmed(
    results: tuple[Result, ...],
    client: ModelArtsClient,
    settings: Settings,
    deadline: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    log: JsonLog,
    regions: int,
) -> tuple[Result, ...]:
    """The results once the deleted instances were read again until gone (CONFIRM_SECONDS)."""
    from .cleanup.confirmation import confirm  # only runs that deleted something

    confirmation = confirm(
        results,
        client,
        seconds=settings.confirm_seconds,
        deadline=deadline,
        # Each region has its own `concurrency` reads in flight at most (the client holds it to
        # that), so that a slow region's reads do not wait for a near one's.
        concurrency=settings.concurrency * max(1, regions),
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


def notified(
    report: Mapping[str, Any],
    settings: Settings,
    topic: TopicUrn,
    base_url: str,
    invocation: Reach,
    credentials: Credentials,
    log: JsonLog,
    deadline: float | None,
    began: float,
    sessions: list[requests.Session],
) -> dict[str, Any]:
    """The run's digest published to the topic set: the report's `notification` entry."""
    from datetime import datetime, timezone

    from .cleanup.notification import notify
    from .cloud.notify import SmnPublisher

    session = invocation.session_factory(1, credentials.auth())
    sessions.append(session)
    admission = Admission(first_guess=settings.connect_timeout, clock=invocation.clock)
    try:
        origin = f"{variable('notify_topic')} (its region) or {variable('smn_endpoint')}"
        transport = transport_to(
            settings,
            base_url,
            session,
            invocation,
            credentials.secret_values(),
            log,
            admission,
            origin,
        )
    except ConfigurationError as exc:  # checked with the settings; were it not, results stand
        log.error("notification failed", topic=str(topic), error_type=type(exc).__name__)
        return {
            "topic": str(topic),
            "status": "failed",
            "message_id": None,
            "error_code": "ConfigurationError",
            "error_msg": "the SMN endpoint could not be used",
        }
    return notify(
        report,
        SmnPublisher(transport, topic),
        mode=settings.notify_on,
        started=datetime.fromtimestamp(began, tz=timezone.utc),
        region=settings.region,
        protect_tags=[str(condition) for condition in settings.protect],
        deadline=deadline,
        log=log,
    )
