"""Bringing an instance to a state in which it can be deleted: stop it, then wait, boundedly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exceptions import ApiError, DeadlineExceeded
from .vocabulary import IN_TARGET_STATE, RUNNING_STATUSES, TRANSITIONAL_STATUSES

if TYPE_CHECKING:
    from .execution import DeletingClient


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
    the stop is refused or the wait runs out, DeadlineExceeded when the deadline comes first.
    """
    policy = policy or DEFAULT_STOP_POLICY
    started = clock()
    limit = started + policy.max_wait
    if deadline is not None:
        limit = min(limit, deadline)
    delay = policy.first_delay
    stop_sent = False
    while True:
        instance = client.get_instance(project_id, instance_id, deadline=deadline)
        if instance is None:
            return None
        status = str(instance.get("status") or "")
        if status in RUNNING_STATUSES and not stop_sent:
            _stop(client, project_id, instance_id, deadline)
            stop_sent = True
        elif status not in RUNNING_STATUSES and status not in TRANSITIONAL_STATUSES:
            return status
        now = clock()
        if now + delay > limit:
            if deadline is not None and now + delay > deadline:
                raise DeadlineExceeded(
                    f"deadline reached while waiting for the instance to stop (status {status})",
                    error_code="StopTimeout",
                    error_msg=f"still {status} when the run's deadline came",
                )
            raise StopFailed(
                f"instance still {status} after {policy.max_wait:.0f} s",
                error_code="StopTimeout",
                error_msg=f"still {status} after waiting {now - started:.0f} s",
            )
        sleep(delay)
        delay = min(delay * 2, policy.max_delay)


def _stop(
    client: DeletingClient, project_id: str, instance_id: str, deadline: float | None
) -> None:
    try:
        client.stop_instance(project_id, instance_id, deadline=deadline)
    except DeadlineExceeded:
        raise
    except ApiError as exc:
        if exc.error_code == IN_TARGET_STATE:  # already stopping, or stopped: keep polling
            return
        raise StopFailed(
            f"stopping the instance failed: {exc}",
            http_status=exc.http_status,
            error_code=exc.error_code,
            error_msg=exc.error_msg or str(exc),
            request_id=exc.request_id,
            attempts=exc.attempts,
        ) from None
