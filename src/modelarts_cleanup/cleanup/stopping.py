"""Bringing an instance to a state in which it can be deleted: stop it, then wait, boundedly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import AnswerLost, ApiError, DeadlineExceeded
from ..vocabulary import RUNNING_STATUSES, STOP_UNDER_WAY_CODES, TRANSITIONAL_STATUSES

if TYPE_CHECKING:
    from ..cloud.interface import DeletingClient


@dataclass(frozen=True)
class StopPolicy:
    """How long and how often to poll while an instance stops."""

    first_delay: float = 1.0
    max_delay: float = 10.0
    # Without a deadline (a local run), waiting still ends: a stop that takes longer than this is
    # reported as failed rather than hanging the run.
    max_wait: float = 600.0


DEFAULT_STOP_POLICY = StopPolicy()


class StopFailed(ApiError):
    """The instance could not be stopped, or did not stop in time."""


class StopCut(DeadlineExceeded):
    """The deadline came while the instance was being stopped or waited for.

    `status` is the last status read (None if it was never read, or a stop was sent since whose
    answer the deadline cut: that one keeps the transport's code, `DeadlineExceeded`).
    """

    def __init__(
        self, message: str, *, status: str | None, error_code: str | None, error_msg: str
    ) -> None:
        super().__init__(message, error_code=error_code, error_msg=error_msg, attempts=0)
        self.status = status


def settle(
    client: DeletingClient,
    project_id: str,
    instance_id: str,
    *,
    deadline: float | None,
    policy: StopPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Stop the instance if it runs and wait until no transition is under way.

    Returns the status it settled in, or None when the instance is gone. Raises StopFailed when
    the stop is refused or the wait runs out, StopCut when the deadline comes first (a request
    the deadline keeps from starting, or cuts short, included).
    """
    policy = policy or DEFAULT_STOP_POLICY
    started = clock()
    limit = started + policy.max_wait
    if deadline is not None:
        limit = min(limit, deadline)
    delay = policy.first_delay
    stop_sent = False
    status: str | None = None
    while True:
        try:
            instance = client.get_instance(project_id, instance_id, deadline=deadline)
        except DeadlineExceeded as exc:
            if exc.attempts and not isinstance(exc, AnswerLost):
                raise  # answered, with an error: that answer is what stopped the wait
            # Not sent, or its answer lost: a read changes nothing, so the last status stands.
            raise _cut(status, f"{_still(status)} when the run's deadline came") from None
        if instance is None:
            return None
        status = str(instance.get("status") or "")
        if status in RUNNING_STATUSES and not stop_sent:
            _stop(client, project_id, instance_id, deadline, status)
            stop_sent = True
        elif status not in RUNNING_STATUSES and status not in TRANSITIONAL_STATUSES:
            return status
        now = clock()
        if now + delay > limit:
            if deadline is not None and now + delay > deadline:
                raise _cut(status, f"still {status} when the run's deadline came")
            raise StopFailed(
                f"instance still {status} after {policy.max_wait:.0f} s",
                error_code="StopTimeout",
                error_msg=f"still {status} after waiting {now - started:.0f} s",
            )
        sleep(delay)
        delay = min(delay * 2, policy.max_delay)


def _stop(
    client: DeletingClient, project_id: str, instance_id: str, deadline: float | None, status: str
) -> None:
    try:
        client.stop_instance(project_id, instance_id, deadline=deadline)
    except AnswerLost as exc:
        raise StopCut(
            f"stopping the instance: {exc}",
            status=None,  # the stop may have gone through: it may be stopping by now
            error_code=exc.error_code,
            error_msg=exc.error_msg or str(exc),
        ) from None
    except ApiError as exc:
        if isinstance(exc, DeadlineExceeded) and not exc.attempts:
            message = f"still {status}: the run's deadline came before it could be stopped"
            raise _cut(status, message) from None
        if exc.error_code in STOP_UNDER_WAY_CODES:  # already stopped, or stopping: keep polling
            return
        raise StopFailed(
            f"stopping the instance failed: {exc}",
            http_status=exc.http_status,
            error_code=exc.error_code,
            error_msg=exc.error_msg or str(exc),
            request_id=exc.request_id,
            attempts=exc.attempts,
        ) from None


def _still(status: str | None) -> str:
    return "not yet read" if status is None else f"still {status}"


def _cut(status: str | None, error_msg: str) -> StopCut:
    return StopCut(
        f"deadline reached while stopping the instance: {error_msg}",
        status=status,
        error_code="StopTimeout",
        error_msg=error_msg,
    )
