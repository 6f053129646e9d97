"""Reports for people: the command line's `plan` (table, CSV, Markdown) and the demo."""

from __future__ import annotations

import csv
import io
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ..cloud.instances import from_iso

FORMATS = ("table", "json", "csv", "markdown")
# A terminal's width the plan's table keeps to, unless asked for everything.
TABLE_WIDTH = 120
DEFAULT_WORKSPACE_NAME = "default"  # workspace "0", whether or not ListWorkspace named it

# The plan's columns: what the rules read of each instance, so a person can check a rule picked
# right. `idle_days` is since the instance's last update, `age_days` since its creation.
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
# --wide and CSV: these too, then every other field of the results, whatever they are.
WIDE_COLUMNS = ("project_id", *PLAN_COLUMNS[:4], "owner_id", "workspace", "workspace_id")
_SHOWN_ALREADY = frozenset(
    {
        "project_id",
        "instance_id",
        "instance_name",
        "listed_status",
        "owner",
        "workspace_id",
        "outcome",
        "reason",
        "matched_by",
    }
)
# Columns the narrow table may cut (longest first), and how narrow each may get.
_SHRINKABLE = {"name": 8, "workspace": 9, "owner": 6, "reason": 9, "matched_by": 8}
_ID_SHOWN = 8  # characters of an instance ID the narrow table keeps when it must
MISSING = "-"


def render_table(
    results: Sequence[Mapping[str, Any]], columns: Sequence[str], *, width: int | None = None
) -> str:
    """Results as a fixed-width table for people; a missing value shows as '-'.

    With `width`, long values of the columns in _SHRINKABLE are cut (ending in '~') until the
    table fits, as far as their minimum widths allow.
    """
    rows = [[_text(r.get(c)) or MISSING for c in columns] for r in results]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    if width is not None:
        _fit(columns, widths, width)
    lines = [list(columns), ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(_cut(v, w).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _held(workspace: Mapping[str, Any]) -> str:
    """How many instances a workspace held, or that it could not be listed (and was kept out)."""
    if workspace.get("listed") is not None:
        return str(workspace["listed"])
    return f"not listed ({workspace.get('error_code')}), nothing in it is deleted"


def render_plan(
    report: Mapping[str, Any],
    *,
    form: str = "table",
    wide: bool = False,
    now: datetime | None = None,
) -> str:
    """A dry-run report for people: what would go, what stays and why.

    `table` fits TABLE_WIDTH columns unless `wide`; `markdown` is the same table to paste;
    `csv` has every column, one row per result and nothing else.
    """
    now = now or datetime.now(timezone.utc)
    names = workspace_names(report)
    rows = [plan_row(r, now, names) for r in report["results"]]
    if form == "csv":
        return _csv(rows, _wide_columns(report["results"]))
    columns = _wide_columns(report["results"]) if wide else _narrow_columns(rows)
    notes = _notes(report, names)
    if form == "markdown":
        table = _markdown(rows, columns) if rows else "Nothing selected."
        return "\n".join([table, "", *(f"- {line}" for line in notes)])
    if not wide and rows and _table_width(rows, columns) > TABLE_WIDTH:
        rows = [{**row, "instance_id": _short_id(row["instance_id"])} for row in rows]
    table = render_table(rows, columns, width=None if wide else TABLE_WIDTH)
    limit = None if wide else TABLE_WIDTH
    return "\n".join([table if rows else "nothing selected", *_wrapped(notes, limit)])


def plan_row(
    result: Mapping[str, Any], now: datetime, names: Mapping[tuple[str, str], str]
) -> dict[str, Any]:
    """One result as a row of the plan: every field, flattened, and the plan's own columns."""
    owner = result.get("owner") or {}
    project, workspace = result.get("project_id"), result.get("workspace_id")
    name = names.get((project, workspace)) if project and workspace else None
    row = {key: value for key, value in result.items() if key not in _SHOWN_ALREADY}
    row.update(
        {
            "project_id": project,
            "instance_id": result["instance_id"],
            "name": result.get("instance_name"),
            "status": result.get("listed_status"),
            "owner": owner.get("name") or owner.get("id"),
            "owner_id": owner.get("id"),
            "workspace": name or workspace,
            "workspace_id": workspace,
            "idle_days": _days_since(result.get("updated"), now),
            "age_days": _days_since(result.get("created"), now),
            "outcome": result["outcome"],
            "reason": result.get("reason"),
            "matched_by": result.get("matched_by"),
        }
    )
    return row


def workspace_names(report: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(project, workspace ID) -> name, as the selectors' listings found them."""
    names: dict[tuple[str, str], str] = {}
    for selector in report.get("selectors") or ():
        for covered in selector.get("workspaces") or ():
            name = covered.get("workspace_name")
            if name:
                names[(selector["project_id"], covered["workspace_id"])] = name
    for result in report.get("results") or ():
        if result.get("workspace_id") == "0":
            names.setdefault((result["project_id"], "0"), DEFAULT_WORKSPACE_NAME)
    return names


def _notes(report: Mapping[str, Any], names: Mapping[tuple[str, str], str]) -> list[str]:
    lines = []
    for selector in report["selectors"]:
        project = selector["project_id"]
        where = f"{selector['selector']} ({project})"
        if selector["error_code"] is not None:
            failed = selector.get("failed_workspace")
            scope = (
                f"workspace {_workspace(names, project, failed)}" if failed else "its workspaces"
            )
            lines.append(
                f"{where}: not applied, listing {scope} failed with {selector['error_code']}: "
                f"{selector['error_msg']}; nothing is deleted by it"
            )
            continue
        covered = selector.get("workspaces") or []
        spread = ", ".join(
            f"{_workspace(names, project, w['workspace_id'])}: {_held(w)}" for w in covered
        )
        lines.append(
            f"{where}: {selector['listed']} listed, {selector['picked']} picked"
            + (f" (by workspace: {spread})" if spread else "")
        )
    lines.append(summary_line(report))
    return lines


def _workspace(names: Mapping[tuple[str, str], str], project: str, workspace: str) -> str:
    return names.get((project, workspace)) or (
        DEFAULT_WORKSPACE_NAME if workspace == "0" else workspace
    )


def _narrow_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plan's columns, less those no row has a value in (named targets have no owner...)."""
    always = {"instance_id", "outcome"}
    return [c for c in PLAN_COLUMNS if c in always or any(r.get(c) is not None for r in rows)]


def _wide_columns(results: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = list(dict.fromkeys([*WIDE_COLUMNS, *PLAN_COLUMNS]))
    for result in results:
        columns.extend(k for k in result if k not in _SHOWN_ALREADY and k not in columns)
    return columns


def _table_width(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> int:
    widths = [max([len(c), *(len(_text(r.get(c)) or MISSING) for r in rows)]) for c in columns]
    return sum(widths) + 2 * (len(widths) - 1)


def _fit(columns: Sequence[str], widths: list[int], width: int) -> None:
    """Narrow the widest cuttable column, one character at a time, until the table fits."""
    while sum(widths) + 2 * (len(widths) - 1) > width:
        cuttable = [
            i for i, c in enumerate(columns) if c in _SHRINKABLE and widths[i] > _SHRINKABLE[c]
        ]
        if not cuttable:
            return
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "~"


def _short_id(instance_id: str) -> str:
    return instance_id if len(instance_id) <= _ID_SHOWN else instance_id[:_ID_SHOWN] + "~"


def _wrapped(lines: Sequence[str], width: int | None) -> list[str]:
    if width is None:
        return list(lines)
    return [textwrap.fill(line, width, subsequent_indent="    ") for line in lines]


def _markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    body = [line([_escape_markdown(_text(row.get(c)) or MISSING) for c in columns]) for row in rows]
    return "\n".join([line(columns), line(["---"] * len(columns)), *body])


def _escape_markdown(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_text(row.get(c)) for c in columns] for row in rows)
    return out.getvalue().rstrip("\n")


def _text(value: Any) -> str:
    """A value as one cell: nested ones flattened (`k=v; ...`, a pool or owner by its name)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if value.get("name") is not None:
            return str(value["name"])
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return "; ".join(_tag(v) if isinstance(v, Mapping) else _text(v) for v in value)
    return " ".join(str(value).split())  # one line, whatever the value held


def _tag(item: Mapping[str, Any]) -> str:
    if set(item) <= {"key", "value"} and "key" in item:
        value = item.get("value")
        return f"{item['key']}={value}" if value not in (None, "") else str(item["key"])
    return _text(item)


def summary_line(report: Mapping[str, Any]) -> str:
    """The run in one line: deletions, marks (with the earliest `delete_after`), unmarks,
    refusals, and what was left; a dry run says what would be done."""
    counts = Counter(report["counts"])  # an outcome not counted is none
    when = report.get("earliest_delete_after")
    first = f" (earliest delete_after {when})" if when else ""
    if report.get("dry_run"):
        parts = [
            f"would delete {counts['would_delete']}",
            f"would mark {counts['would_mark']}{first}",
            f"marks waiting {counts['marked']}",
            f"would unmark {counts['would_unmark']}",
        ]
    else:
        parts = [
            f"deleted {counts['deleted']}",
            f"marked {counts['marked']}{first}",
            f"unmarked {counts['unmarked']}",
        ]
    parts.append(f"refused {counts['refused']}")
    for outcome in ("already_absent", "failed", "not_attempted"):
        if counts[outcome]:
            parts.append(f"{outcome.replace('_', ' ')} {counts[outcome]}")
    return ", ".join(parts) + f"; status {report['status']}"


def _days_since(when: str | None, now: datetime) -> str | None:
    then = from_iso(when)
    return None if then is None else f"{(now - then).total_seconds() / 86400:.1f}"
