"""Deleting one instance: the DELETE, the service's "not now" answers, stop-then-delete, and
one result whatever happens; and the result a target gets when a step fails or cannot start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..events.payload import Target
from ..exceptions import AnswerLost, ApiError, DeadlineExceeded, EffectUnknown
from ..vocabulary import IN_TARGET_STATE, NOT_NOW_CODES
from .report import Outcome, Reason, Result

if TYPE_CHECKING:
    from ..cloud.interface import DeletingClient
    from .stopping import StopPolicy


def not_attempted(target: Target) -> Result:
    return Result(
        target.project_id, target.instance_id, Outcome.NOT_ATTEMPTED, reason=Reason.DEADLINE.value
    )


# A delete answered "not now" is retried after the instance settles, this many times at most.
MAX_DELETE_ROUNDS = 3
_LOST_DELETE_HINT = "; if it went through, the next run reports already_absent"


def delete_one(
    client: DeletingClient,
    target: Target,
    *,
    deadline: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop_policy: StopPolicy | None = None,
    before_stopping: Callable[[], str | None] | None = None,
) -> Result:
    """Delete one instance, stopping it first when the API insists; never raises for a failure.

    A "not now" answer means the instance is busy or running. For a selected instance that is
    itself news: `before_stopping` is asked first, and a reason from it (or a failure to ask)
    leaves the instance alone instead of stopping it. `attempts` counts DELETE requests.

    The deadline: with nothing sent yet the target is `not_attempted`. Once something was sent,
    a request it cut short, or a step it kept from starting, makes the target `failed` with
    reason `deadline`; an error answer that came back before it stands as that answer.
    """
    started = clock()
    if deadline is not None and started >= deadline:
        return not_attempted(target)
    deletion = _Deletion(
        client, target, deadline, clock, sleep, stop_policy, before_stopping, started
    )
    try:
        return deletion.run()
    except Exception as exc:  # noqa: BLE001  (one target's bug must not cost the others their result)
        return unexpected(target, exc, started, clock, attempts=deletion.attempts)


@dataclass
class _Deletion:
    """One target's way through stop-then-delete."""

    client: DeletingClient
    target: Target
    deadline: float | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    stop_policy: StopPolicy | None
    before_stopping: Callable[[], str | None] | None
    started: float
    attempts: int = 0  # DELETE requests sent
    settled: str | None = None  # the status stop-then-delete left the instance in

    def run(self) -> Result:
        pid, iid = self.target.project_id, self.target.instance_id
        for round_ in range(1, MAX_DELETE_ROUNDS + 1):
            try:
                deletion = self.client.delete_instance(pid, iid, deadline=self.deadline)
            except ApiError as exc:
                self.attempts += exc.attempts
                if deadline_ended(exc):
                    if self.attempts == 0:
                        return not_attempted(self.target)
                    step = "the delete" if self.settled is None else "the delete after stopping"
                    return self.cut(exc, step, hint=_LOST_DELETE_HINT)
                if isinstance(exc, EffectUnknown):
                    failed = self.failed(exc)
                    return replace(failed, error_msg=f"{failed.error_msg}{_LOST_DELETE_HINT}")
                if exc.error_code not in NOT_NOW_CODES or round_ == MAX_DELETE_ROUNDS:
                    return self.failed(exc)
                if exc.error_code == IN_TARGET_STATE:
                    seen = self.under_way(exc)
                    if seen is not None:
                        return seen
                kept = self.make_deletable()
                if kept is not None:
                    return kept
                continue
            return Result(
                pid,
                iid,
                Outcome(deletion.outcome),
                http_status=deletion.http_status,
                attempts=self.attempts + deletion.attempts,
                request_id=deletion.request_id,
                duration_ms=elapsed_ms(self.clock() - self.started),
                instance_status=deletion.status,
            )
        raise AssertionError("unreachable: the last round returns")  # pragma: no cover

    def under_way(self, refusal: ApiError) -> Result | None:
        """After a DELETE answered 6357: the deletion itself may be what is under way (a DELETE
        sent before, whose answer was lost). None when the instance is doing something else.

        Terraform's notebook resource counts 6357 to a DELETE as done; a read tells which.
        """
        pid, iid = self.target.project_id, self.target.instance_id
        try:
            instance = self.client.get_instance(pid, iid, deadline=self.deadline)
        except ApiError:
            return None  # the wait that follows reads it again, or says why it cannot
        if instance is not None and instance.get("status") != "DELETING":
            return None
        return Result(
            pid,
            iid,
            Outcome.ALREADY_ABSENT if instance is None else Outcome.DELETED,
            http_status=refusal.http_status if instance is None else None,
            attempts=self.attempts,
            request_id=refusal.request_id,
            duration_ms=elapsed_ms(self.clock() - self.started),
            instance_status=None if instance is None else "DELETING",
        )

    def make_deletable(self) -> Result | None:
        """After a "not now": None once the instance has settled, else the target's result."""
        pid, iid = self.target.project_id, self.target.instance_id
        if self.before_stopping is not None:
            try:
                changed = self.before_stopping()
            except ApiError as exc:
                if deadline_ended(exc):
                    return self.cut(exc, "reading it again")
                return self.failed(exc, reason=Reason.RECHECK_FAILED)
            if changed is not None:
                return Result(pid, iid, Outcome.REFUSED, reason=changed, attempts=self.attempts)
        # Only a busy or running instance needs this, so only then is it loaded.
        from .stopping import StopCut, settle

        try:
            self.settled = settle(
                self.client,
                pid,
                iid,
                deadline=self.deadline,
                policy=self.stop_policy,
                clock=self.clock,
                sleep=self.sleep,
            )
        except StopCut as cut:
            return replace(self.failed(cut, reason=Reason.DEADLINE), instance_status=cut.status)
        except ApiError as exc:
            return self.failed(exc, reason=Reason.STOP_FAILED)
        if self.settled is None:
            return Result(
                pid,
                iid,
                Outcome.ALREADY_ABSENT,
                attempts=self.attempts,
                duration_ms=elapsed_ms(self.clock() - self.started),
            )
        return None

    def cut(self, exc: ApiError, step: str, *, hint: str = "") -> Result:
        target, attempts, started, clock = self.target, self.attempts, self.started, self.clock
        # A status the API left out is unknown, not "".
        status = self.settled or None
        return cut_short(target, exc, attempts, started, clock, step, status=status, hint=hint)

    def failed(self, exc: ApiError, *, reason: Reason | None = None) -> Result:
        value = None if reason is None else reason.value
        return failed_result(
            self.target, exc, self.attempts, self.started, self.clock, reason=value
        )


def read_failed(
    target: Target, exc: ApiError, started: float, clock: Callable[[], float]
) -> Result:
    """A read before acting failed: `recheck_failed` for an answer, the deadline's otherwise
    (`not_attempted` when nothing was sent, the answer lost when it was)."""
    if not deadline_ended(exc):
        reason = Reason.RECHECK_FAILED.value
        return failed_result(target, exc, 0, started, clock, reason=reason)
    if not exc.attempts:
        return not_attempted(target)  # nothing was sent
    return answer_lost(target, exc, 0, started, clock)


def deadline_ended(exc: ApiError) -> bool:
    """Whether the deadline, not an answer, ended a call: nothing sent, or the answer lost."""
    return isinstance(exc, AnswerLost) or (isinstance(exc, DeadlineExceeded) and not exc.attempts)


def cut_short(
    target: Target,
    exc: ApiError,
    attempts: int,
    started: float,
    clock: Callable[[], float],
    step: str,
    *,
    status: str | None = None,
    hint: str = "",
) -> Result:
    """Failed for the deadline: the answer to what was sent was lost, or `step` never started.

    `status`, where the instance was left, is told only when nothing was lost after it was read.
    """
    if isinstance(exc, AnswerLost):
        return answer_lost(target, exc, attempts, started, clock, hint=hint)
    return Result(
        target.project_id,
        target.instance_id,
        Outcome.FAILED,
        error_msg=f"the run's deadline came before {step} could start",
        reason=Reason.DEADLINE.value,
        attempts=attempts,
        duration_ms=elapsed_ms(clock() - started),
        instance_status=status,
    )


def answer_lost(
    target: Target,
    exc: ApiError,
    attempts: int,
    started: float,
    clock: Callable[[], float],
    *,
    hint: str = "",
) -> Result:
    """Failed for the deadline, which cut the answer to what was sent: its effect is unknown
    (the error's own words say so), and where the instance was left is not told."""
    return Result(
        target.project_id,
        target.instance_id,
        Outcome.FAILED,
        error_code=exc.error_code,
        error_msg=(exc.error_msg or str(exc)) + hint,
        reason=Reason.DEADLINE.value,
        attempts=attempts,
        duration_ms=elapsed_ms(clock() - started),
    )


def unexpected(
    target: Target,
    exc: Exception,
    started: float,
    clock: Callable[[], float],
    *,
    attempts: int = 0,
) -> Result:
    # Only the type: an unexpected exception's text could hold a URL or header.
    error = ApiError("unexpected error", error_code="UnexpectedError", error_msg=type(exc).__name__)
    return failed_result(target, error, attempts, started, clock)


def failed_result(
    target: Target,
    exc: ApiError,
    attempts: int,
    started: float,
    clock: Callable[[], float],
    *,
    reason: str | None = None,
) -> Result:
    return Result(
        target.project_id,
        target.instance_id,
        Outcome.FAILED,
        http_status=exc.http_status,
        error_code=exc.error_code,
        error_msg=exc.error_msg or str(exc),
        reason=reason,
        attempts=attempts,
        request_id=exc.request_id,
        duration_ms=elapsed_ms(clock() - started),
    )


def elapsed_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
