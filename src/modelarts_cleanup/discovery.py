"""Discovery: the instances selectors pick from their projects' listings, read fail-closed.

Imported only by runs that have selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .exceptions import ApiError
from .instances import ListedInstance
from .payload import Target
from .planning import Candidate, Policy
from .report import Reason
from .rules import Selector
from .selection import recheck, select
from .vocabulary import is_instance_id


class ListingClient(Protocol):
    """What selectors need from a ModelArts client."""

    def list_instances(
        self, project_id: str, *, deadline: float | None = None
    ) -> Sequence[ListedInstance]: ...


class RecheckClient(Protocol):
    """What reading an instance again before deleting it needs from a client."""

    def get_listed_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> ListedInstance | None: ...


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


def rechecker(
    client: RecheckClient, deadline: float | None, wall_clock: Callable[[], float]
) -> Callable[[Candidate], str | None]:
    """Reads a selected instance again just before deleting it: its state may have changed."""

    def recheck_one(candidate: Candidate) -> str | None:
        target, selector = candidate.target, candidate.selector
        if selector is None:
            return None
        fresh = client.get_listed_instance(target.project_id, target.instance_id, deadline=deadline)
        if fresh is None:
            return None  # gone: the delete itself will say already_absent
        return recheck(selector, fresh, now_ms=round(wall_clock() * 1000))

    return recheck_one
