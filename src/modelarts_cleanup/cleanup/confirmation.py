"""Confirming deletions: read each deleted instance again until it is gone, boundedly.

ModelArts deletes asynchronously: a 2xx says the deletion was accepted, not that it finished.
Terraform's notebook resource polls after a DELETE until the notebook is gone, and treats
DELETE_FAILED or ERROR met on the way as a failure (modelarts-api.md, section 3); so does this,
within MODELARTS_CLEANUP_CONFIRM_SECONDS and the run's deadline. Loaded only by runs that
deleted something and confirm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Any, Protocol

from ..exceptions import AnswerLost, ApiError, DeadlineExceeded
from .report import Outcome, Reason, Result

# Statuses that say the deletion failed after it was accepted.
FAILED_DELETION_STATUSES = frozenset({"DELETE_FAILED", "ERROR"})


class ReadingClient(Protocol):
    """What confirming needs from a ModelArts client."""

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class ConfirmPolicy:
    """How often deleted instances are read again: at once, then backing off."""

    first_delay: float = 1.0
    max_delay: float = 10.0


@dataclass(frozen=True)
class Confirmation:
    """What confirming did: the results, how many reads it sent and how long it took."""

    results: tuple[Result, ...]
    reads: int
    seconds: float


_GONE = "gone"
_UNKNOWN = "unknown"  # the read failed, or its answer was lost: ask again next round
_NO_TIME = "no_time"  # the deadline kept the read from starting
_REFUSED = "refused"  # a read answered with an error asking again will not change: stop asking


def confirm(
    results: tuple[Result, ...],
    client: ReadingClient,
    *,
    seconds: float,
    deadline: float | None,
    concurrency: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    policy: ConfirmPolicy | None = None,
) -> Confirmation:
    """Each `deleted` result with `confirmed` set: True once its instance was seen gone, False
    when time ran out first; one seen DELETE_FAILED or ERROR becomes `failed` (`delete_failed`).

    Reads go out at once, then after 1, 2, 4... seconds (at most `max_delay`), each round
    `concurrency` at a time, while `seconds` and the deadline allow another round.
    """
    policy = policy or ConfirmPolicy()
    started = clock()
    # Each region's reads in turn, so that a pool's workers spread over the regions: each
    # region holds its own reads to its own concurrency, and a slow region listed first would
    # otherwise keep every worker waiting on it while the others' reads wait too.
    pending = _in_turns(
        [n for n, r in enumerate(results) if r.outcome is Outcome.DELETED],
        lambda n: results[n].region,
    )
    if seconds <= 0 or not pending:
        return Confirmation(results, 0, 0.0)
    limit = started + seconds if deadline is None else min(started + seconds, deadline)
    done = list(results)
    reads = 0
    delay = policy.first_delay
    while pending:
        seen = _read_round(client, [done[n] for n in pending], deadline, concurrency)
        reads += sum(1 for status in seen if status != _NO_TIME)
        still = []
        for n, status in zip(pending, seen, strict=True):
            if status == _GONE:
                done[n] = replace(done[n], confirmed=True)
            elif status in FAILED_DELETION_STATUSES:
                done[n] = _failed_after(done[n], status)
            elif status == _REFUSED:
                done[n] = replace(done[n], confirmed=False)
            else:
                still.append(n)
        pending = still
        if _NO_TIME in seen or clock() + delay > limit:
            break
        if pending:
            sleep(delay)
            delay = min(delay * 2, policy.max_delay)
    for n in pending:
        done[n] = replace(done[n], confirmed=False)
    return Confirmation(tuple(done), reads, clock() - started)


def _in_turns(items: list[int], group: Callable[[int], str | None]) -> list[int]:
    """The items one of each group at a time (the first of each, then the second, ...), each
    group's in its own order."""
    groups: dict[str | None, list[int]] = {}
    for item in items:
        groups.setdefault(group(item), []).append(item)
    turns = zip_longest(*groups.values())
    return [item for turn in turns for item in turn if item is not None]


def _read_round(
    client: ReadingClient, results: list[Result], deadline: float | None, concurrency: int
) -> list[str]:
    """What one read of each instance showed: gone, its status, unknown or no time."""

    def read(result: Result) -> str:
        try:
            instance = client.get_instance(result.project_id, result.instance_id, deadline=deadline)
        except DeadlineExceeded as exc:
            if not exc.attempts and not isinstance(exc, AnswerLost):
                return _NO_TIME
            return _UNKNOWN
        except ApiError as exc:
            # Refused for good (a 403 without the right to read, say): asking again is no use.
            return _UNKNOWN if exc.retryable else _REFUSED
        if instance is None:
            return _GONE
        status = instance.get("status")
        return status if isinstance(status, str) and status else _UNKNOWN

    workers = min(concurrency, len(results))
    if workers <= 1:
        return [read(r) for r in results]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="confirm") as pool:
        return list(pool.map(read, results))


def _failed_after(result: Result, status: str) -> Result:
    return replace(
        result,
        outcome=Outcome.FAILED,
        reason=Reason.DELETE_FAILED.value,
        error_msg=f"the deletion was accepted, then the instance went {status}",
        instance_status=status,
        confirmed=None,
    )
