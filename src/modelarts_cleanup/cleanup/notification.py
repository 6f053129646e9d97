"""Telling people: the run's digest published to an SMN topic, after everything else is done.

Whatever happens here, the run's results stand: a publish that fails, is cut by the deadline or
raises something unexpected becomes the report's `notification` entry and an ERROR log line,
never a change to a result or to the run's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from ..cloud.notify import SmnPublisher
from ..exceptions import AnswerLost, ApiError, DeadlineExceeded
from .digest import NotifyOn, digest, should_notify
from .report import JsonLog

NotificationStatus = Literal["sent", "failed", "skipped", "not_attempted"]


def notify(
    report: Mapping[str, Any],
    publisher: SmnPublisher,
    *,
    mode: NotifyOn,
    started: datetime,
    region: str | None,
    protect_tags: Sequence[str],
    deadline: float | None,
    log: JsonLog,
) -> dict[str, Any]:
    """Publish the run's digest when `mode` says the run has something to say; the report's
    `notification` entry."""
    topic = str(publisher.topic)
    if not should_notify(mode, report):
        log.debug("notification skipped", topic=topic, notify_on=mode)
        return _entry(topic, "skipped")
    try:
        message = digest(report, started=started, region=region, protect_tags=protect_tags)
        published = publisher.publish(message.subject, message.message, deadline=deadline)
    except DeadlineExceeded as exc:
        if exc.attempts == 0 and not isinstance(exc, AnswerLost):
            log.error(
                "notification not sent: the run's deadline came before it could start",
                topic=topic,
            )
            return _entry(topic, "not_attempted", error_code=exc.error_code, error_msg=str(exc))
        return _failed(topic, exc, log)
    except ApiError as exc:
        return _failed(topic, exc, log)
    except Exception as exc:  # noqa: BLE001  (nothing here may undo what the run did)
        log.error("notification failed", topic=topic, error_type=type(exc).__name__)
        return _entry(topic, "failed", error_code="UnexpectedError", error_msg=type(exc).__name__)
    log.info(
        "notification sent",
        topic=topic,
        message_id=published.message_id,
        request_id=published.request_id,
        attempts=published.attempts,
    )
    return _entry(topic, "sent", message_id=published.message_id)


def _failed(topic: str, exc: ApiError, log: JsonLog) -> dict[str, Any]:
    message = exc.error_msg or str(exc)
    log.error(
        "notification failed",
        topic=topic,
        error_code=exc.error_code,
        error_msg=message,
        http_status=exc.http_status,
        attempts=exc.attempts,
        request_id=exc.request_id,
    )
    return _entry(topic, "failed", error_code=exc.error_code, error_msg=message)


def _entry(
    topic: str,
    status: NotificationStatus,
    *,
    message_id: str | None = None,
    error_code: str | None = None,
    error_msg: str | None = None,
) -> dict[str, Any]:
    return {
        "topic": topic,
        "status": status,
        "message_id": message_id,
        "error_code": error_code,
        "error_msg": error_msg,
    }
