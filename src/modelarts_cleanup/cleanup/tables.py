"""Reports as tables for people: the command line's `plan` and the demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

PLAN_COLUMNS = (
    "instance_id",
    "name",
    "status",
    "owner",
    "workspace",
    "idle_days",
    "age_days",
    "outcome",
    "reason",
    "matched_by",
)


def render_table(results: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Results as a fixed-width table for people; a missing value shows as '-'."""
    rows = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    lines = [list(columns), ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _held(workspace: Mapping[str, Any]) -> str:
    """How many instances a workspace held, or that it could not be listed (and was kept out)."""
    if workspace.get("listed") is not None:
        return str(workspace["listed"])
    return f"not listed ({workspace.get('error_code')}), nothing in it is deleted"


def render_plan(report: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """A dry-run report as a table for people: what would go, what stays and why.

    Each row shows what the rules read of a selected instance (status, owner, workspace, days
    since its last update and since its creation), so a person can check the rule picked right.
    """
    now = now or datetime.now(timezone.utc)
    rows = [_plan_row(r, now) for r in report["results"]]
    lines = [render_table(rows, PLAN_COLUMNS)] if rows else ["nothing selected"]
    for selector in report["selectors"]:
        where = f"{selector['selector']} ({selector['project_id']})"
        if selector["error_code"] is not None:
            failed = selector.get("failed_workspace")
            scope = f"workspace {failed}" if failed else "its workspaces"
            lines.append(
                f"{where}: not applied, listing {scope} failed with {selector['error_code']}: "
                f"{selector['error_msg']}; nothing is deleted by it"
            )
            continue
        covered = selector.get("workspaces") or []
        spread = ", ".join(f"{w['workspace_id']}: {_held(w)}" for w in covered)
        lines.append(
            f"{where}: {selector['listed']} listed, {selector['picked']} picked"
            + (f" (by workspace: {spread})" if spread else "")
        )
    counts = report["counts"]
    lines.append(
        f"would delete {counts['would_delete']}, refused {counts['refused']}; "
        f"status {report['status']}"
    )
    return "\n".join(lines)


def _plan_row(result: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    owner = result.get("owner") or {}
    return {
        "instance_id": result["instance_id"],
        "name": result.get("instance_name"),
        "status": result.get("listed_status"),
        "owner": owner.get("name") or owner.get("id"),
        "workspace": result.get("workspace_id"),
        "idle_days": _days_since(result.get("updated"), now),
        "age_days": _days_since(result.get("created"), now),
        "outcome": result["outcome"],
        "reason": result.get("reason"),
        "matched_by": result.get("matched_by"),
    }


def _days_since(when: str | None, now: datetime) -> str | None:
    if not when:
        return None
    # Python 3.10's fromisoformat does not read a trailing "Z".
    then = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return f"{(now - then).total_seconds() / 86400:.1f}"
