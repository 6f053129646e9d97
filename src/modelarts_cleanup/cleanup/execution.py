"""Carrying a plan out: a bounded pool of workers, the deadline, stop-then-delete, one result
per target whatever happens."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..events.payload import Target
from ..exceptions import AnswerLost, ApiError, DeadlineExceeded, EffectUnknown
from ..vocabulary import IN_TARGET_STATE, MARK_KEY, NOT_NOW_CODES
from .planning import Candidate, Plan, described, refused
from .report import JsonLog, Outcome, Reason, Result

if TYPE_CHECKING:
    from ..cloud.interface import DeletingClient
    from .guard import ReadNamed
    from .stopping import StopPolicy


Recheck = Callable[[Candidate], "str | None"]


def execute(
    plan: Plan,
    client: DeletingClient,
    *,
    concurrency: int,
    deadline: float | None,
    log: JsonLog,
    recheck: Recheck | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop_policy: StopPolicy | None = None,
    region_of: Callable[[str], str | None] | None = None,
    read_named: ReadNamed | None = None,
) -> tuple[Result, ...]:
    """Carry the plan out; one result per target, in the payload's order, whatever happens.

    `recheck` is asked about each selected instance just before it is deleted; a reason it
    gives keeps the instance (refused), and a failure to ask fails that target only.
    `region_of` names each project's region: each region has its own `concurrency` workers,
    so that one region's slow answers hold up no other, and each result says its region.
    `read_named` reads each named target first: one gone is `already_absent` (no DELETE), one
    it gives a reason for is `refused`, and the others carry what the read gave.
    """

    def regional(result: Result) -> Result:
        return result if region_of is None else replace(result, region=region_of(result.project_id))

    done: dict[Target, Result] = {}
    for result in map(regional, plan.refused):
        done[Target(project_id=result.project_id, instance_id=result.instance_id)] = result
        _log_result(log, result)

    def one(candidate: Candidate) -> Result:
        started = clock()
        try:
            candidate, early = _read_first(candidate)
            result = early if early is not None else _carry_out(candidate)
        except Exception as exc:  # noqa: BLE001  (one target's surprise must not cost the others)
            result = _unexpected(candidate.target, exc, started, clock)
        result = regional(described(result, candidate))
        _log_result(log, result)  # as it happens, so a run cut short still leaves its lines
        return result

    def _read_first(candidate: Candidate) -> tuple[Candidate, Result | None]:
        """A named target read before anything else: its result when the read decides it."""
        if read_named is None or candidate.selector is not None or candidate.action != "delete":
            return candidate, None
        target, started = candidate.target, clock()
        if deadline is not None and started >= deadline:
            return candidate, _not_attempted(target)
        try:
            reading = read_named(target)
        except ApiError as exc:
            if not _deadline_ended(exc):
                reason = Reason.RECHECK_FAILED.value
                return candidate, _failed(target, exc, 0, started, clock, reason=reason)
            if not exc.attempts:
                return candidate, _not_attempted(target)  # nothing was sent
            return candidate, _cut(target, exc, 0, started, clock, "reading it")
        if reading is None:
            absent = Outcome.ALREADY_ABSENT
            duration = _ms(clock() - started)
            return candidate, Result(
                target.project_id, target.instance_id, absent, duration_ms=duration
            )
        candidate = replace(candidate, name=reading.name, details=reading.details)
        if reading.reason is not None:
            return candidate, refused(candidate, reading.reason)
        return candidate, None

    def _carry_out(candidate: Candidate) -> Result:
        target = candidate.target
        if candidate.action != "delete":
            return _write_mark(
                client, candidate, dry_run=plan.dry_run, deadline=deadline, clock=clock
            )
        if plan.dry_run:
            return Result(target.project_id, target.instance_id, Outcome.WOULD_DELETE)
        if deadline is not None and clock() >= deadline:
            return _not_attempted(target)
        guard = None
        if candidate.selector is not None and recheck is not None:

            def guard() -> str | None:
                return recheck(candidate)

            try:
                reason = guard()
            except ApiError as exc:
                if not _deadline_ended(exc):
                    return _failed(
                        target, exc, 0, clock(), clock, reason=Reason.RECHECK_FAILED.value
                    )
                if not exc.attempts:
                    return _not_attempted(target)  # nothing was sent
                return _cut(target, exc, 0, clock(), clock, "reading it again")
            if reason is not None:
                return refused(candidate, reason)
        return delete_one(
            client,
            target,
            deadline=deadline,
            clock=clock,
            sleep=sleep,
            stop_policy=stop_policy,
            before_stopping=guard,
        )

    lanes: dict[str | None, list[Candidate]] = {}
    for candidate in plan.to_delete:
        key = None if region_of is None else region_of(candidate.target.project_id)
        lanes.setdefault(key, []).append(candidate)
    workers = sum(min(concurrency, len(lane)) for lane in lanes.values())
    if workers <= 1 or (plan.dry_run and read_named is None):
        # One at a time, or a dry run that sends nothing, needs no pool: this thread, in order.
        done.update((c.target, one(c)) for c in plan.to_delete)
    else:
        done.update(_in_lanes(one, list(lanes.values()), concurrency))
    return tuple(done[t] for t in plan.order)


def _in_lanes(
    one: Callable[[Candidate], Result], lanes: list[list[Candidate]], concurrency: int
) -> dict[Target, Result]:
    """Each lane (a region) worked by its own `concurrency` workers, every lane at once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    finished: dict[Target, Result] = {}
    lock = threading.Lock()

    def drain(queue: list[Candidate], taken: list[int]) -> None:
        while True:
            with lock:
                if taken[0] >= len(queue):
                    return
                candidate = queue[taken[0]]
                taken[0] += 1
            result = one(candidate)
            with lock:
                finished[candidate.target] = result

    jobs = [(lane, [0]) for lane in lanes]
    workers = [job for job in jobs for _ in range(min(concurrency, len(job[0])))]
    with ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="cleanup") as pool:
        futures = [pool.submit(drain, queue, taken) for queue, taken in workers]
        for future in futures:
            future.result()
    return finished


def _write_mark(
    client: DeletingClient,
    candidate: Candidate,
    *,
    dry_run: bool,
    deadline: float | None,
    clock: Callable[[], float],
) -> Result:
    """A grace period's tag write: the mark put on (`mark`) or taken off (`unmark`)."""
    target, marking = candidate.target, candidate.action == "mark"
    pid, iid = target.project_id, target.instance_id
    if dry_run:
        outcome = Outcome.WOULD_MARK if marking else Outcome.WOULD_UNMARK
        return Result(pid, iid, outcome, reason=candidate.reason)
    started = clock()
    if deadline is not None and started >= deadline:
        return _not_attempted(target)
    workspace = (candidate.details or {}).get("workspace_id") or "0"
    tags: dict[str, str | None] = {MARK_KEY: candidate.delete_after if marking else None}
    try:
        there = client.tag(
            pid, iid, tags, workspace_id=workspace, remove=not marking, deadline=deadline
        )
    except ApiError as exc:
        if not _deadline_ended(exc):
            return _failed(target, exc, 0, started, clock)
        if not exc.attempts:
            return _not_attempted(target)  # nothing was sent
        return _cut(target, exc, 0, started, clock, "the tag write", hint=_LOST_MARK_HINT)
    if not there:
        return Result(pid, iid, Outcome.ALREADY_ABSENT, duration_ms=_ms(clock() - started))
    outcome = Outcome.MARKED if marking else Outcome.UNMARKED
    return Result(pid, iid, outcome, reason=candidate.reason, duration_ms=_ms(clock() - started))


def _not_attempted(target: Target) -> Result:
    return Result(
        target.project_id, target.instance_id, Outcome.NOT_ATTEMPTED, reason=Reason.DEADLINE.value
    )


def _log_result(log: JsonLog, result: Result) -> None:
    level = "ERROR" if result.outcome is Outcome.FAILED else "INFO"
    log.log(level, f"{result.instance_id}: {result.outcome.value}", **result.to_dict())


# A delete answered "not now" is retried after the instance settles, this many times at most.
MAX_DELETE_ROUNDS = 3
_LOST_DELETE_HINT = "; if it went through, the next run reports already_absent"
_LOST_MARK_HINT = "; the next run reads the tag again and writes it if it is not as it should be"


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
        return _not_attempted(target)
    deletion = _Deletion(
        client, target, deadline, clock, sleep, stop_policy, before_stopping, started
    )
    try:
        return deletion.run()
    except Exception as exc:  # noqa: BLE001  (one target's bug must not cost the others their result)
        return _unexpected(target, exc, started, clock, attempts=deletion.attempts)


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
                if _deadline_ended(exc):
                    if self.attempts == 0:
                        return _not_attempted(self.target)
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
                duration_ms=_ms(self.clock() - self.started),
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
            duration_ms=_ms(self.clock() - self.started),
            instance_status=None if instance is None else "DELETING",
        )

    def make_deletable(self) -> Result | None:
        """After a "not now": None once the instance has settled, else the target's result."""
        pid, iid = self.target.project_id, self.target.instance_id
        if self.before_stopping is not None:
            try:
                changed = self.before_stopping()
            except ApiError as exc:
                if _deadline_ended(exc):
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
                duration_ms=_ms(self.clock() - self.started),
            )
        return None

    def cut(self, exc: ApiError, step: str, *, hint: str = "") -> Result:
        target, attempts, started, clock = self.target, self.attempts, self.started, self.clock
        # A status the API left out is unknown, not "".
        status = self.settled or None
        return _cut(target, exc, attempts, started, clock, step, status=status, hint=hint)

    def failed(self, exc: ApiError, *, reason: Reason | None = None) -> Result:
        value = None if reason is None else reason.value
        return _failed(self.target, exc, self.attempts, self.started, self.clock, reason=value)


def _deadline_ended(exc: ApiError) -> bool:
    """Whether the deadline, not an answer, ended a call: nothing sent, or the answer lost."""
    return isinstance(exc, AnswerLost) or (isinstance(exc, DeadlineExceeded) and not exc.attempts)


def _cut(
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
        code, message, status = exc.error_code, (exc.error_msg or str(exc)) + hint, None
    else:
        code, message = None, f"the run's deadline came before {step} could start"
    return Result(
        target.project_id,
        target.instance_id,
        Outcome.FAILED,
        error_code=code,
        error_msg=message,
        reason=Reason.DEADLINE.value,
        attempts=attempts,
        duration_ms=_ms(clock() - started),
        instance_status=status,
    )


def _unexpected(
    target: Target,
    exc: Exception,
    started: float,
    clock: Callable[[], float],
    *,
    attempts: int = 0,
) -> Result:
    # Only the type: an unexpected exception's text could hold a URL or header.
    error = ApiError("unexpected error", error_code="UnexpectedError", error_msg=type(exc).__name__)
    return _failed(target, error, attempts, started, clock)


def _failed(
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
        duration_ms=_ms(clock() - started),
    )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
