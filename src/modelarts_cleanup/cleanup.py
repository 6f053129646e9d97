"""The run: discover (selectors), plan (dedupe, policy, cap), execute (bounded pool, deadline)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from .exceptions import ApiError, DeadlineExceeded
from .instances import DeleteResult, ListedInstance
from .payload import Selector, Target
from .report import JsonLog, Outcome, Reason, Result
from .selection import select
from .stopping import DEFAULT_STOP_POLICY, InstanceControl, StopPolicy, settle
from .vocabulary import NOT_NOW_CODES, is_instance_id


class DeletingClient(InstanceControl, Protocol):
    """What the run needs from a ModelArts client."""

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> DeleteResult: ...


@dataclass(frozen=True)
class Policy:
    """What the function may touch."""

    allowed_projects: frozenset[str] = frozenset()
    protected_instances: frozenset[str] = frozenset()
    max_deletions: int = 50


@dataclass(frozen=True)
class Candidate:
    """A target and what put it in the run."""

    target: Target
    matched_by: str = "targets"  # or "selectors[i]"
    # Set for selected instances: the rule is checked again just before deleting.
    selector: Selector | None = None
    # A selector kept it back (pre-paid, unreadable state): refused, never sent.
    refusal: str | None = None
    name: str | None = None


class ListingClient(Protocol):
    """What selectors need from a ModelArts client."""

    def list_instances(
        self, project_id: str, *, deadline: float | None = None
    ) -> Sequence[ListedInstance]: ...


@dataclass(frozen=True)
class SelectorReport:
    """What one selector found: how many instances were listed and picked, or why none were."""

    selector: str
    project_id: str
    listed: int | None
    picked: int
    error_code: str | None = None
    error_msg: str | None = None
    http_status: int | None = None

    @property
    def failed(self) -> bool:
        """Whether the selector could not be applied."""
        return self.error_code is not None

    def to_dict(self) -> dict[str, Any]:
        """As it appears in the report."""
        return asdict(self)


def discover(
    selectors: Sequence[Selector],
    client: ListingClient,
    *,
    policy: Policy,
    deadline: float | None,
    now_ms: int,
) -> tuple[list[Candidate], list[SelectorReport]]:
    """List each selector's project once and apply the selector.

    Fails closed per project: if its listing fails, no selector deletes anything in it, and the
    selector's report says why. Explicit targets are not affected.
    """
    listings: dict[str, Sequence[ListedInstance] | ApiError] = {}
    candidates: list[Candidate] = []
    reports: list[SelectorReport] = []
    for index, selector in enumerate(selectors):
        label, project = f"selectors[{index}]", selector.project_id
        if policy.allowed_projects and project not in policy.allowed_projects:
            reports.append(
                SelectorReport(
                    label,
                    project,
                    None,
                    0,
                    error_code=Reason.PROJECT_NOT_ALLOWED.value,
                    error_msg="project not in MODELARTS_CLEANUP_ALLOWED_PROJECTS: not listed",
                )
            )
            continue
        if project not in listings:
            try:
                listings[project] = client.list_instances(project, deadline=deadline)
            except ApiError as exc:
                listings[project] = exc
            except Exception as exc:  # noqa: BLE001  (one project's surprise must not stop the run)
                # Only the type: an unexpected exception's text could hold a URL or header.
                listings[project] = ApiError(
                    "unexpected error", error_code="UnexpectedError", error_msg=type(exc).__name__
                )
        listing = listings[project]
        if isinstance(listing, ApiError):
            reports.append(
                SelectorReport(
                    label,
                    project,
                    None,
                    0,
                    error_code=listing.error_code or "ListingFailed",
                    error_msg=listing.error_msg or str(listing),
                    http_status=listing.http_status,
                )
            )
            continue
        picks = [
            p for p in select(selector, listing, now_ms=now_ms) if is_instance_id(p.instance_id)
        ]
        candidates.extend(
            Candidate(
                Target(project_id=project, instance_id=p.instance_id),
                matched_by=label,
                selector=selector,
                refusal=p.refusal,
                name=p.name,
            )
            for p in picks
        )
        reports.append(SelectorReport(label, project, len(listing), len(picks)))
    return candidates, reports


@dataclass(frozen=True)
class Plan:
    """Which targets to delete, and which policy keeps, decided before any request."""

    to_delete: tuple[Candidate, ...]
    refused: tuple[Result, ...]
    refused_run: str | None
    dry_run: bool
    order: tuple[Target, ...]


Recheck = Callable[[Candidate], "str | None"]


def make_plan(candidates: Sequence[Target | Candidate], policy: Policy, *, dry_run: bool) -> Plan:
    """Dedupe (first mention wins), apply the policy, refuse the whole run above the cap. Pure."""
    unique: dict[Target, Candidate] = {}
    for item in candidates:
        candidate = item if isinstance(item, Candidate) else Candidate(item)
        unique.setdefault(candidate.target, candidate)
    to_delete: list[Candidate] = []
    refused: list[Result] = []
    for candidate in unique.values():
        reason = _policy_reason(candidate.target, policy)
        if reason is not None:
            refused.append(_refused(candidate, reason.value))
        elif candidate.refusal is not None:
            refused.append(_refused(candidate, candidate.refusal))
        else:
            to_delete.append(candidate)
    refused_run = None
    if len(to_delete) > policy.max_deletions:
        refused_run = (
            f"{len(to_delete)} deletions planned, more than MODELARTS_CLEANUP_MAX_DELETIONS="
            f"{policy.max_deletions}: the whole run is refused"
        )
        refused.extend(_refused(c, Reason.MAX_DELETIONS_EXCEEDED.value) for c in to_delete)
        to_delete = []
    return Plan(tuple(to_delete), tuple(refused), refused_run, dry_run, tuple(unique))


def _policy_reason(target: Target, policy: Policy) -> Reason | None:
    if target.instance_id in policy.protected_instances:
        return Reason.PROTECTED
    if policy.allowed_projects and target.project_id not in policy.allowed_projects:
        return Reason.PROJECT_NOT_ALLOWED
    return None


def _refused(candidate: Candidate, reason: str) -> Result:
    target = candidate.target
    return Result(
        target.project_id,
        target.instance_id,
        Outcome.REFUSED,
        reason=reason,
        matched_by=candidate.matched_by,
        instance_name=candidate.name,
    )


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
    stop_policy: StopPolicy = DEFAULT_STOP_POLICY,
) -> tuple[Result, ...]:
    """Carry the plan out; one result per target, in the payload's order, whatever happens.

    `recheck` is asked about each selected instance just before it is deleted; a reason it
    gives keeps the instance (refused), and a failure to ask fails that target only.
    """
    done: dict[Target, Result] = {}
    for result in plan.refused:
        done[Target(project_id=result.project_id, instance_id=result.instance_id)] = result
        _log_result(log, result)

    def one(candidate: Candidate) -> Result:
        started = clock()
        try:
            result = _carry_out(candidate)
        except Exception as exc:  # noqa: BLE001  (one target's surprise must not cost the others)
            result = _unexpected(candidate.target, exc, started, clock)
        result = replace(result, matched_by=candidate.matched_by, instance_name=candidate.name)
        _log_result(log, result)  # as it happens, so a run cut short still leaves its lines
        return result

    def _carry_out(candidate: Candidate) -> Result:
        target = candidate.target
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
            except DeadlineExceeded:
                return _not_attempted(target)
            except ApiError as exc:
                return _failed(target, exc, 0, clock(), clock, reason=Reason.RECHECK_FAILED.value)
            if reason is not None:
                return _refused(candidate, reason)
        return delete_one(
            client,
            target,
            deadline=deadline,
            clock=clock,
            sleep=sleep,
            stop_policy=stop_policy,
            before_stopping=guard,
        )

    if plan.to_delete:
        workers = max(1, min(concurrency, len(plan.to_delete)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup") as pool:
            results = pool.map(one, plan.to_delete)
            done.update(zip((c.target for c in plan.to_delete), results, strict=True))
    return tuple(done[t] for t in plan.order)


def _not_attempted(target: Target) -> Result:
    return Result(
        target.project_id, target.instance_id, Outcome.NOT_ATTEMPTED, reason=Reason.DEADLINE.value
    )


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
    before_stopping: Callable[[], str | None] | None = None,
) -> Result:
    """Delete one instance, stopping it first when the API insists; never raises for a failure.

    A "not now" answer means the instance is busy or running. For a selected instance that is
    itself news: `before_stopping` is asked first, and a reason from it (or a failure to ask)
    leaves the instance alone instead of stopping it. `attempts` counts DELETE requests.
    """
    started = clock()
    pid, iid = target.project_id, target.instance_id
    if deadline is not None and started >= deadline:
        return _not_attempted(target)
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
                if before_stopping is not None:
                    try:
                        changed = before_stopping()
                    except ApiError as recheck_error:
                        reason = Reason.RECHECK_FAILED.value
                        return _failed(
                            target, recheck_error, attempts, started, clock, reason=reason
                        )
                    if changed is not None:
                        return Result(pid, iid, Outcome.REFUSED, reason=changed, attempts=attempts)
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
                    reason = (Reason.DEADLINE if late else Reason.STOP_FAILED).value
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
            return _not_attempted(target)
        return _failed(
            target, exc, attempts + exc.attempts, started, clock, reason=Reason.DEADLINE.value
        )
    except ApiError as exc:
        return _failed(target, exc, attempts + exc.attempts, started, clock)
    except Exception as exc:  # noqa: BLE001  (one target's bug must not cost the others their result)
        return _unexpected(target, exc, started, clock, attempts=attempts)


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
