"""Carrying a plan out: a bounded pool of workers per region, the deadline, a read before a named
DELETE or a recheck before a selected one, marks written or taken off; one result per target
whatever happens. Deleting one instance is `deletion`'s."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..events.payload import Target
from ..exceptions import ApiError
from ..vocabulary import MARK_KEY
from .deletion import (
    answer_lost,
    deadline_ended,
    delete_one,
    elapsed_ms,
    failed_result,
    not_attempted,
    read_failed,
    unexpected,
)
from .planning import Candidate, Plan, described, refused
from .report import JsonLog, Outcome, Result

if TYPE_CHECKING:
    from ..cloud.interface import DeletingClient
    from .guard import ReadNamed
    from .stopping import StopPolicy


Recheck = Callable[[Candidate], "str | None"]

_LOST_MARK_HINT = "; the next run reads the tag again and writes it if it is not as it should be"


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
            result = unexpected(candidate.target, exc, started, clock)
        result = regional(described(result, candidate))
        _log_result(log, result)  # as it happens, so a run cut short still leaves its lines
        return result

    def _read_first(candidate: Candidate) -> tuple[Candidate, Result | None]:
        """A named target read before anything else: its result when the read decides it."""
        if read_named is None or candidate.selector is not None or candidate.action != "delete":
            return candidate, None
        target, started = candidate.target, clock()
        if deadline is not None and started >= deadline:
            return candidate, not_attempted(target)
        try:
            reading = read_named(target)
        except ApiError as exc:
            return candidate, read_failed(target, exc, started, clock)
        if reading is None:
            absent = Outcome.ALREADY_ABSENT
            duration = elapsed_ms(clock() - started)
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
            return not_attempted(target)
        guard = None
        if candidate.selector is not None and recheck is not None:

            def guard() -> str | None:
                return recheck(candidate)

            started = clock()
            try:
                reason = guard()
            except ApiError as exc:
                return read_failed(target, exc, started, clock)
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
        return not_attempted(target)
    workspace = (candidate.details or {}).get("workspace_id") or "0"
    tags: dict[str, str | None] = {MARK_KEY: candidate.delete_after if marking else None}
    try:
        there = client.tag(
            pid, iid, tags, workspace_id=workspace, remove=not marking, deadline=deadline
        )
    except ApiError as exc:
        if not deadline_ended(exc):
            return failed_result(target, exc, 0, started, clock)
        if not exc.attempts:
            return not_attempted(target)  # nothing was sent
        return answer_lost(target, exc, 0, started, clock, hint=_LOST_MARK_HINT)
    if not there:
        return Result(pid, iid, Outcome.ALREADY_ABSENT, duration_ms=elapsed_ms(clock() - started))
    outcome = Outcome.MARKED if marking else Outcome.UNMARKED
    return Result(
        pid, iid, outcome, reason=candidate.reason, duration_ms=elapsed_ms(clock() - started)
    )


def _log_result(log: JsonLog, result: Result) -> None:
    level = "ERROR" if result.outcome is Outcome.FAILED else "INFO"
    log.log(level, f"{result.instance_id}: {result.outcome.value}", **result.to_dict())
