"""The run: plan (dedupe, policy, cap), then execute (bounded pool, deadline), then report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from .exceptions import ApiError, DeadlineExceeded
from .payload import Target
from .report import JsonLog, Outcome, Reason, Result
from .stopping import DEFAULT_STOP_POLICY, NOT_NOW_CODES, InstanceControl, StopPolicy, settle


class DeletingClient(InstanceControl, Protocol):
    """What the run needs from a ModelArts client."""

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> _Deletion: ...


class _Deletion(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def http_status(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def status(self) -> str | None: ...


@dataclass(frozen=True)
class Policy:
    """What the function may touch."""

    allowed_projects: frozenset[str] = frozenset()
    protected_instances: frozenset[str] = frozenset()
    max_deletions: int = 50


@dataclass(frozen=True)
class Plan:
    """Which targets to delete, and which policy keeps, decided before any request."""

    to_delete: tuple[Target, ...]
    refused: tuple[Result, ...]
    refused_run: str | None
    dry_run: bool
    order: tuple[Target, ...]


def make_plan(targets: Sequence[Target], policy: Policy, *, dry_run: bool) -> Plan:
    """Dedupe, apply the policy, and refuse the whole run above the cap. Pure."""
    order = tuple(dict.fromkeys(targets))
    to_delete: list[Target] = []
    refused: list[Result] = []
    for target in order:
        reason = _policy_reason(target, policy)
        if reason is None:
            to_delete.append(target)
        else:
            refused.append(_refused(target, reason))
    refused_run = None
    if len(to_delete) > policy.max_deletions:
        refused_run = (
            f"{len(to_delete)} deletions planned, more than MODELARTS_CLEANUP_MAX_DELETIONS="
            f"{policy.max_deletions}: the whole run is refused"
        )
        refused.extend(_refused(t, Reason.MAX_DELETIONS_EXCEEDED) for t in to_delete)
        to_delete = []
    return Plan(tuple(to_delete), tuple(refused), refused_run, dry_run, order)


def _policy_reason(target: Target, policy: Policy) -> Reason | None:
    if target.instance_id in policy.protected_instances:
        return Reason.PROTECTED
    if policy.allowed_projects and target.project_id not in policy.allowed_projects:
        return Reason.PROJECT_NOT_ALLOWED
    return None


def _refused(target: Target, reason: Reason) -> Result:
    return Result(target.project_id, target.instance_id, Outcome.REFUSED, reason=reason.value)


def execute(
    plan: Plan,
    client: DeletingClient,
    *,
    concurrency: int,
    deadline: float | None,
    log: JsonLog,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop_policy: StopPolicy = DEFAULT_STOP_POLICY,
) -> tuple[Result, ...]:
    """Carry the plan out; one result per target, in the payload's order, whatever happens."""
    done: dict[Target, Result] = {}
    for result in plan.refused:
        done[Target(project_id=result.project_id, instance_id=result.instance_id)] = result
        _log_result(log, result)

    def one(target: Target) -> Result:
        if plan.dry_run:
            result = Result(target.project_id, target.instance_id, Outcome.WOULD_DELETE)
        else:
            result = delete_one(
                client, target, deadline=deadline, clock=clock, sleep=sleep, stop_policy=stop_policy
            )
        _log_result(log, result)  # as it happens, so a run cut short still leaves its lines
        return result

    if plan.to_delete:
        workers = max(1, min(concurrency, len(plan.to_delete)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup") as pool:
            done.update(zip(plan.to_delete, pool.map(one, plan.to_delete), strict=True))
    return tuple(done[t] for t in plan.order)


def _log_result(log: JsonLog, result: Result) -> None:
    level = "ERROR" if result.outcome is Outcome.FAILED else "INFO"
    log.log(level, f"{result.instance_id}: {result.outcome.value}", **result.to_dict())


# A delete answered "not now" is retried after the instance settles, this many times at most.
MAX_DELETE_ROUNDS = 3


def delete_one(
    client: DeletingClient,
    target: Target,
    *,
    deadline: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop_policy: StopPolicy = DEFAULT_STOP_POLICY,
) -> Result:
    """Delete one instance, stopping it first when the API insists; never raises for a failure.

    `attempts` counts DELETE requests; stop and status requests are not counted.
    """
    started = clock()
    pid, iid = target.project_id, target.instance_id
    if deadline is not None and started >= deadline:
        return Result(pid, iid, Outcome.NOT_ATTEMPTED, reason=Reason.DEADLINE.value)
    attempts = 0
    try:
        for round_ in range(1, MAX_DELETE_ROUNDS + 1):
            try:
                deletion = client.delete_instance(pid, iid, deadline=deadline)
            except DeadlineExceeded:
                raise
            except ApiError as exc:
                if exc.error_code not in NOT_NOW_CODES or round_ == MAX_DELETE_ROUNDS:
                    raise
                attempts += exc.attempts
                try:
                    status = settle(
                        client,
                        pid,
                        iid,
                        deadline=deadline,
                        policy=stop_policy,
                        clock=clock,
                        sleep=sleep,
                    )
                except ApiError as stop_error:
                    late = isinstance(stop_error, DeadlineExceeded)
                    reason = Reason.DEADLINE.value if late else "stop_failed"
                    return _failed(target, stop_error, attempts, started, clock, reason=reason)
                if status is None:
                    return Result(
                        pid,
                        iid,
                        Outcome.ALREADY_ABSENT,
                        attempts=attempts,
                        duration_ms=_ms(clock() - started),
                    )
                continue
            return Result(
                pid,
                iid,
                Outcome(deletion.outcome),
                http_status=deletion.http_status,
                attempts=attempts + deletion.attempts,
                request_id=deletion.request_id,
                duration_ms=_ms(clock() - started),
                instance_status=deletion.status,
            )
        raise AssertionError("unreachable: the last round returns or raises")  # pragma: no cover
    except DeadlineExceeded as exc:
        if attempts + exc.attempts == 0:
            return Result(pid, iid, Outcome.NOT_ATTEMPTED, reason=Reason.DEADLINE.value)
        return _failed(target, exc, attempts + exc.attempts, started, clock, reason="deadline")
    except ApiError as exc:
        return _failed(target, exc, attempts + exc.attempts, started, clock)
    except Exception as exc:  # noqa: BLE001  (one target's bug must not cost the others their result)
        # Only the type: an unexpected exception's text could hold a URL or header.
        error = ApiError(
            "unexpected error", error_code="UnexpectedError", error_msg=type(exc).__name__
        )
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
