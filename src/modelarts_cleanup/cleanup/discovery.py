"""Discovery: the instances selectors pick from their projects' fleets, read fail-closed.

Each selector covers the workspaces it names, or every workspace of its project. All the listing
it needs is one concurrent operation (workspaces first, then every page of every workspace); a
selector any of whose workspaces could not be listed picks nothing, and its report says which
workspace and why. Imported only by runs that have selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..cloud.instances import ListedInstance, describe
from ..events.payload import Target
from ..events.rules import Selector
from ..exceptions import ApiError, DeadlineExceeded
from ..vocabulary import DEADLINE_EXCEEDED, is_instance_id
from .grace import carries_mark, decide, mark_on, still_due
from .planning import Candidate, Policy
from .report import Reason
from .selection import Pick, recheck, select

if TYPE_CHECKING:
    from ..cloud.listing import FleetLister, Scope, WorkspaceListing
    from ..events.tags import TagCondition


class FleetClient(Protocol):
    """What discovery needs from a ModelArts client."""

    def fleet(self, *, scope: Scope, concurrency: int, deadline: float | None) -> FleetLister: ...

    def get_listed_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> ListedInstance | None: ...


@dataclass(frozen=True)
class WorkspaceState:
    """One covered workspace: how many instances it held, or why it could not be listed."""

    workspace_id: str
    listed: int | None
    error_code: str | None = None
    error_msg: str | None = None
    http_status: int | None = None
    workspace_name: str | None = None  # as ListWorkspace gave it; None: not listed by name

    @classmethod
    def of(cls, listing: WorkspaceListing, name: str | None = None) -> WorkspaceState:
        """The state of one workspace's listing."""
        error = listing.error
        if error is None:
            return cls(listing.workspace_id, len(listing.instances), workspace_name=name)
        return cls(
            listing.workspace_id,
            None,
            workspace_name=name,
            error_code=_code_of(error),
            error_msg=error.error_msg or str(error),
            http_status=error.http_status,
        )

    def to_dict(self) -> dict[str, Any]:
        """As it appears in a selector's entry."""
        return {
            "workspace_id": self.workspace_id,
            "workspace_name": self.workspace_name,
            "listed": self.listed,
            "error_code": self.error_code,
            "error_msg": self.error_msg,
            "http_status": self.http_status,
        }


@dataclass(frozen=True)
class SelectorReport:
    """What one selector covered and picked, or why it picked nothing."""

    selector: str
    project_id: str
    listed: int | None
    picked: int
    workspaces: tuple[WorkspaceState, ...] | None = None  # every workspace covered
    error_code: str | None = None
    error_msg: str | None = None
    http_status: int | None = None
    failed_workspace: str | None = None  # the first workspace whose listing failed, if one did
    region: str | None = None  # the project's region, when it is known

    @property
    def failed(self) -> bool:
        """Whether the selector could not be applied."""
        return self.error_code is not None

    @property
    def incomplete(self) -> bool:
        """Whether it was applied without some of its workspaces (they could not be listed)."""
        return not self.failed and self.failed_workspace is not None

    def to_dict(self) -> dict[str, Any]:
        """As it appears in the report."""
        return {
            "selector": self.selector,
            "project_id": self.project_id,
            "listed": self.listed,
            "picked": self.picked,
            "workspaces": None
            if self.workspaces is None
            else [w.to_dict() for w in self.workspaces],
            "error_code": self.error_code,
            "error_msg": self.error_msg,
            "http_status": self.http_status,
            "failed_workspace": self.failed_workspace,
            "region": self.region,
        }


def discover(
    selectors: Sequence[Selector],
    client: FleetClient,
    *,
    policy: Policy,
    deadline: float | None,
    now_ms: int,
    scope: Scope = "all",
    concurrency: int = 1,
    protect: Sequence[TagCondition] = (),
) -> tuple[list[Candidate], list[SelectorReport]]:
    """List what the selectors cover, once each, and apply them.

    Fails closed per selector: if any workspace it covers cannot be listed (or the workspaces
    themselves cannot), it picks nothing and its report says why. Explicit targets are not
    affected. Projects outside the allowlist are not even listed.
    """
    labels = [f"selectors[{i}]" for i in range(len(selectors))]
    allowed = [
        (label, s)
        for label, s in zip(labels, selectors, strict=True)
        if (not policy.allowed_projects or s.project_id in policy.allowed_projects)
        and s.project_id not in policy.unknown_regions
    ]
    lister = client.fleet(scope=scope, concurrency=concurrency, deadline=deadline)
    every = lister.workspaces({s.project_id for _, s in allowed if not s.workspace_ids})
    covered = {label: _covered(s, every) for label, s in allowed}
    # Each (project, workspace) is listed once, however many selectors cover it.
    pairs = list(
        dict.fromkeys(
            (s.project_id, w) for label, s in allowed for w in _workspaces(covered[label])
        )
    )
    listings = {
        (listing.project_id, listing.workspace_id): listing for listing in lister.instances(pairs)
    }

    candidates: list[Candidate] = []
    reports: list[SelectorReport] = []
    unmarks: list[tuple[str, Selector, ListedInstance]] = []
    for label, selector in zip(labels, selectors, strict=True):
        project = selector.project_id
        if label not in covered and project in policy.unknown_regions:
            why = policy.unknown_regions[project]
            reports.append(
                SelectorReport(
                    label,
                    project,
                    None,
                    0,
                    error_code=Reason.REGION_UNKNOWN.value,
                    error_msg=f"project {project}: {why}; not listed",
                )
            )
            continue
        if label not in covered:
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
        workspaces = covered[label]
        if isinstance(workspaces, ApiError):
            reports.append(_failed(label, project, workspaces, None))
            continue
        mine = [listings[(project, w)] for w in workspaces]
        states = tuple(
            WorkspaceState.of(x, lister.workspace_name(project, x.workspace_id)) for x in mine
        )
        broken = [(x.workspace_id, x.error) for x in mine if x.error is not None]
        if broken and len(broken) == len(mine):
            workspace, error = broken[0]
            reports.append(replace(_failed(label, project, error, workspace), workspaces=states))
            continue
        # A workspace that could not be listed keeps only its own instances out.
        instances = [i for listing in mine for i in listing.instances]
        picks = [
            p
            for p in select(selector, instances, now_ms=now_ms, protect=protect)
            if is_instance_id(p.instance_id)
        ]
        candidates.extend(_candidate(label, selector, p, now_ms) for p in picks)
        if selector.grace_hours is not None:
            # Marked, but this rule does not pick them (any more): their marks may come off.
            picked = {p.instance_id for p in picks}
            unmarks.extend(
                (label, selector, i)
                for i in instances
                if i.instance_id not in picked and is_instance_id(i.instance_id) and carries_mark(i)
            )
        reports.append(
            SelectorReport(
                label,
                project,
                len(instances),
                len(picks),
                workspaces=states,
                failed_workspace=broken[0][0] if broken else None,
            )
        )
    # A mark comes off only where no rule of this run acts on the instance otherwise: these
    # come last, and a plan keeps the first mention of a target.
    kept_by_a_rule = {c.target.instance_id for c in candidates if c.action != "unmark"}
    candidates.extend(
        _unmark(label, selector, instance, Reason.STATE_CHANGED.value)
        for label, selector, instance in unmarks
        if instance.instance_id not in kept_by_a_rule
    )
    return candidates, reports


def _candidate(label: str, selector: Selector, pick: Pick, now_ms: int) -> Candidate:
    chosen = Candidate(
        Target(project_id=selector.project_id, instance_id=pick.instance_id),
        matched_by=label,
        selector=selector,
        refusal=pick.refusal,
        name=pick.name,
        details=describe(pick.instance),
    )
    if selector.grace_hours is None:
        return chosen
    decision = decide(pick.instance, pick.refusal, grace_hours=selector.grace_hours, now_ms=now_ms)
    if decision.action == "keep":
        return replace(chosen, refusal=decision.reason)
    if decision.action == "unmark":
        return _unmark(label, selector, pick.instance, decision.reason)
    return replace(chosen, action=decision.action, delete_after=decision.delete_after)


def _unmark(
    label: str, selector: Selector, instance: ListedInstance, reason: str | None
) -> Candidate:
    """Take the mark off; the result shows the mark that was there, where it can be read."""
    return Candidate(
        Target(project_id=selector.project_id, instance_id=instance.instance_id),
        matched_by=label,
        selector=selector,
        name=instance.name,
        details=describe(instance),
        action="unmark",
        delete_after=mark_on(instance),
        reason=reason,
    )


def _covered(
    selector: Selector, every: Mapping[str, list[str] | ApiError]
) -> Sequence[str] | ApiError:
    return selector.workspace_ids or every[selector.project_id]


def _workspaces(covered: Sequence[str] | ApiError) -> Sequence[str]:
    return () if isinstance(covered, ApiError) else covered


def _code_of(error: ApiError) -> str:
    return error.error_code or (
        DEADLINE_EXCEEDED if isinstance(error, DeadlineExceeded) else "ListingFailed"
    )


def _failed(label: str, project: str, error: ApiError, workspace: str | None) -> SelectorReport:
    return SelectorReport(
        label,
        project,
        None,
        0,
        error_code=_code_of(error),
        error_msg=error.error_msg or str(error),
        http_status=error.http_status,
        failed_workspace=workspace,
    )


def rechecker(
    client: FleetClient,
    deadline: float | None,
    wall_clock: Callable[[], float],
    protect: Sequence[TagCondition] = (),
) -> Callable[[Candidate], str | None]:
    """Reads a selected instance again just before deleting it: its state may have changed."""

    def recheck_one(candidate: Candidate) -> str | None:
        target, selector = candidate.target, candidate.selector
        if selector is None:
            return None
        fresh = client.get_listed_instance(target.project_id, target.instance_id, deadline=deadline)
        if fresh is None:
            return None  # gone: the delete itself will say already_absent
        now_ms = round(wall_clock() * 1000)
        if selector.grace_hours is not None and not still_due(fresh, now_ms=now_ms):
            return Reason.STATE_CHANGED.value  # its owner took the mark off, or changed it
        return recheck(selector, fresh, now_ms=now_ms, protect=protect)

    return recheck_one
