"""Planning a run: dedupe, apply the policy, refuse the whole run above the cap (or defer what
is over it). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ..events.payload import Target
from .report import Outcome, Reason, Result

if TYPE_CHECKING:
    from ..events.rules import Selector


@dataclass(frozen=True)
class Policy:
    """What the function may touch."""

    allowed_projects: frozenset[str] = frozenset()
    protected_instances: frozenset[str] = frozenset()
    max_deletions: int = 50
    # Projects whose region could not be found (project ID -> why): never touched.
    unknown_regions: Mapping[str, str] = field(default_factory=dict)
    # Over the cap: "refuse" the whole run, or "defer" what is over it to a later run.
    over_cap: Literal["refuse", "defer"] = "refuse"


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
    # What the rules read of a selected instance (instances.describe), for its result.
    details: Mapping[str, Any] | None = None
    # What the run does: delete it, or (a rule's grace period) mark it, take its mark off, or
    # let its mark wait. `delete_after` is that mark; `reason` says why a mark comes off.
    action: Literal["delete", "mark", "unmark", "wait"] = "delete"
    delete_after: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Plan:
    """Which targets to act on, and which policy keeps, decided before any request."""

    # Deletions, and a grace period's marks and unmarks: each a write the cap counts.
    to_delete: tuple[Candidate, ...]
    refused: tuple[Result, ...]
    refused_run: str | None
    dry_run: bool
    order: tuple[Target, ...]


def make_plan(candidates: Sequence[Target | Candidate], policy: Policy, *, dry_run: bool) -> Plan:
    """Dedupe (first mention wins), apply the policy, refuse the whole run above the cap. Pure."""
    unique: dict[Target, Candidate] = {}
    for item in candidates:
        candidate = item if isinstance(item, Candidate) else Candidate(item)
        unique.setdefault(candidate.target, candidate)
    to_delete: list[Candidate] = []
    kept: list[Result] = []
    for candidate in unique.values():
        reason = _policy_reason(candidate.target, policy)
        if reason is Reason.REGION_UNKNOWN:
            why = policy.unknown_regions[candidate.target.project_id]
            kept.append(replace(refused(candidate, reason.value), error_msg=why))
        elif reason is not None:
            kept.append(refused(candidate, reason.value))
        elif candidate.refusal is not None:
            kept.append(refused(candidate, candidate.refusal))
        elif candidate.action == "wait":
            target = candidate.target
            waiting = Result(target.project_id, target.instance_id, Outcome.MARKED)
            kept.append(described(waiting, candidate))
        else:
            to_delete.append(candidate)
    refused_run = None
    if len(to_delete) > policy.max_deletions and policy.over_cap == "defer":
        ordered = sorted(to_delete, key=_cap_order)
        to_delete = ordered[: policy.max_deletions]
        kept.extend(deferred(c) for c in ordered[policy.max_deletions :])
    elif len(to_delete) > policy.max_deletions:
        marks = sum(1 for c in to_delete if c.action != "delete")
        what = "deletions" if not marks else f"deletions, marks and unmarks ({marks} of them tags)"
        refused_run = (
            f"{len(to_delete)} {what} planned, more than MODELARTS_CLEANUP_MAX_DELETIONS="
            f"{policy.max_deletions}: the whole run is refused"
        )
        kept.extend(refused(c, Reason.MAX_DELETIONS_EXCEEDED.value) for c in to_delete)
        to_delete = []
    return Plan(tuple(to_delete), tuple(kept), refused_run, dry_run, tuple(unique))


def _cap_order(candidate: Candidate) -> tuple[bool, bool, str]:
    """Which actions go first under the cap: named targets (in the payload's order), then
    selected ones, the longest idle (earliest `updated`) first, those with no time read last.
    The sort is stable, so equals keep the order they came in."""
    updated = (candidate.details or {}).get("updated")
    return (candidate.selector is not None, updated is None, updated or "")


def deferred(candidate: Candidate) -> Result:
    """The result of an action over the cap, left for a later run: nothing was sent for it."""
    target = candidate.target
    result = Result(
        target.project_id, target.instance_id, Outcome.NOT_ATTEMPTED, reason=Reason.CAP.value
    )
    return described(result, candidate)


def _policy_reason(target: Target, policy: Policy) -> Reason | None:
    if target.instance_id in policy.protected_instances:
        return Reason.PROTECTED
    if policy.allowed_projects and target.project_id not in policy.allowed_projects:
        return Reason.PROJECT_NOT_ALLOWED
    if target.project_id in policy.unknown_regions:
        return Reason.REGION_UNKNOWN
    return None


def refused(candidate: Candidate, reason: str) -> Result:
    """The result of a candidate the run keeps, and why."""
    target = candidate.target
    return described(
        Result(target.project_id, target.instance_id, Outcome.REFUSED, reason=reason), candidate
    )


def described(result: Result, candidate: Candidate) -> Result:
    """The result with what put its target in the run: the rule, the name, what was read."""
    return replace(
        result,
        matched_by=candidate.matched_by,
        instance_name=candidate.name,
        delete_after=candidate.delete_after,
        **(candidate.details or {}),
    )
