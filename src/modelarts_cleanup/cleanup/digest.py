"""A run's digest for people: the subject and plain-text message published to an SMN topic. Pure.

Written from the report (its JSON form), so it says only what the report says, and nothing the
report keeps out (a credential, a setting's value). Sections come in the order people need them:
what will be deleted and when, what was deleted, what was kept back and why, what failed, what
waits for a later run, whose mark came off; within each, grouped by owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from ..cloud.instances import from_iso
from ..cloud.notify import MAX_MESSAGE_BYTES, MAX_SUBJECT_BYTES

NotifyOn = Literal["changes", "problems", "always"]

# Outcomes that change something (or, in a dry run, would), or that someone should look at.
_CHANGES = frozenset(
    {
        "deleted",
        "marked",
        "unmarked",
        "refused",
        "failed",
        "not_attempted",
        "would_delete",
        "would_mark",
        "would_unmark",
    }
)
_PROBLEMS = frozenset({"partial", "failed", "refused"})

# Reasons in words; a reason not listed here is shown as it is.
REASON_WORDS: Mapping[str, str] = {
    "protected": "protected (a protect tag, or listed in MODELARTS_CLEANUP_PROTECTED_INSTANCES)",
    "project_not_allowed": "its project is not in MODELARTS_CLEANUP_ALLOWED_PROJECTS",
    "max_deletions_exceeded": "the run would have changed more notebooks than "
    "MODELARTS_CLEANUP_MAX_DELETIONS allows, so it changed none",
    "cap": "more than MODELARTS_CLEANUP_MAX_DELETIONS allows in one run; a later run takes it",
    "prepaid": "it is billed yearly/monthly (pre-paid)",
    "billing_unreadable": "its billing could not be read",
    "state_unreadable": "something the rule needs could not be read",
    "state_changed": "it changed since it was listed and no longer matches",
    "deadline": "the run ran out of time",
    "stop_failed": "it could not be stopped first",
    "recheck_failed": "it could not be read again just before deletion",
    "mark_unreadable": "its deletion mark could not be read",
    "region_unknown": "its project's region is not known",
}


@dataclass(frozen=True)
class Digest:
    """One message: a one-line subject and a plain-text body, within SMN's limits."""

    subject: str
    message: str


@dataclass(frozen=True)
class _Section:
    key: str
    title: str  # "{n}" is the count
    dry_title: str
    outcomes: frozenset[str]


_SECTIONS = (
    _Section(
        "marked",
        "Will be deleted ({n}), each after its date unless it is kept",
        "Would be marked for deletion ({n}), each after the date shown",
        frozenset({"marked", "would_mark"}),
    ),
    _Section(
        "deleted", "Deleted ({n})", "Would be deleted ({n})", frozenset({"deleted", "would_delete"})
    ),
    _Section("refused", "Kept back ({n})", "Would be kept back ({n})", frozenset({"refused"})),
    _Section("failed", "Failed ({n})", "Failed ({n})", frozenset({"failed"})),
    _Section(
        "deferred",
        "Deferred to a later run ({n})",
        "Deferred to a later run ({n})",
        frozenset({"not_attempted"}),
    ),
    _Section(
        "unmarked",
        "No longer marked for deletion ({n})",
        "Would no longer be marked for deletion ({n})",
        frozenset({"unmarked", "would_unmark"}),
    ),
)

# Subject counts: (outcome, words), in the sections' order.
_SUBJECT_COUNTS = (
    ("marked", "marked"),
    ("would_mark", "would mark"),
    ("deleted", "deleted"),
    ("would_delete", "would delete"),
    ("already_absent", "already gone"),
    ("refused", "kept back"),
    ("failed", "failed"),
    ("not_attempted", "deferred"),
    ("unmarked", "unmarked"),
    ("would_unmark", "would unmark"),
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_ERROR_TEXT = 300
# Room kept for the line that says how many more there were.
_TRAILER_ROOM = 600


def should_notify(mode: NotifyOn, report: Mapping[str, Any]) -> bool:
    """Whether a run with this report has something to say, by MODELARTS_CLEANUP_NOTIFY_ON."""
    status = report["status"]
    if mode == "always":
        return True
    if mode == "problems":
        return status in _PROBLEMS
    return status != "succeeded" or any(r["outcome"] in _CHANGES for r in report["results"])


def digest(
    report: Mapping[str, Any],
    *,
    started: datetime,
    region: str | None,
    protect_tags: Sequence[str],
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> Digest:
    """The subject and message for a run's report.

    `started` is when the run began (idle days are counted to it); `region` the configured one
    (a result that names its own region adds it); `protect_tags` the conditions that keep a
    notebook, as people write them.
    """
    dry_run = bool(report["dry_run"])
    results: list[Mapping[str, Any]] = list(report["results"])
    projects = sorted(
        {r["project_id"] for r in results}
        | {s["project_id"] for s in report.get("selectors", ()) if s.get("project_id")}
    )
    several = len(projects) > 1
    header = _header(report, started, region, projects, results)
    footer = _footer(report, protect_tags)
    rules = _selector_lines(report)
    fixed = sum(_size(line) for line in (*header, *rules, *footer))
    budget = max_message_bytes - fixed - _TRAILER_ROOM
    body: list[str] = []
    left: dict[str, int] = {}
    for section in _SECTIONS:
        members = [r for r in results if r["outcome"] in section.outcomes]
        if not members:
            continue
        if left:  # the message is full: only the count of what is not listed
            left[section.key] = len(members)
            continue
        title = (section.dry_title if dry_run else section.title).format(n=len(members))
        shown = 0
        for line, notebook in _section_lines(
            title, members, section.key, started, dry_run, several
        ):
            if _size(line) > budget:
                left[section.key] = len(members) - shown
                break
            body.append(line)
            budget -= _size(line)
            shown += notebook
    body.extend(rules)
    if left:
        more = ", ".join(f"{n} {_MORE_WORDS[key]}" for key, n in left.items())
        body.extend(
            [
                "",
                f"... and {sum(left.values())} more not listed here ({more}): the "
                "function's report and log lines list every one.",
            ]
        )
    message = "\n".join([*header, *body, *footer]) + "\n"
    return Digest(subject=_subject(report, results, dry_run), message=message)


_MORE_WORDS = {
    "marked": "marked",
    "deleted": "deleted",
    "refused": "kept back",
    "failed": "failed",
    "deferred": "deferred",
    "unmarked": "no longer marked",
}


def _section_lines(
    title: str,
    members: Sequence[Mapping[str, Any]],
    section: str,
    started: datetime,
    dry_run: bool,
    several_projects: bool,
) -> Iterator[tuple[str, bool]]:
    """A section's lines, made as they are needed, each with whether it is a notebook's."""
    yield "", False
    yield title, False
    for owner, owned in _by_owner(members):
        yield f"  {owner}", False
        for r in owned:
            yield "    - " + _line(r, section, started, dry_run, several_projects), True


def _header(
    report: Mapping[str, Any],
    started: datetime,
    region: str | None,
    projects: Sequence[str],
    results: Sequence[Mapping[str, Any]],
) -> list[str]:
    named = {str(r["region"]) for r in results if r.get("region")}
    regions = sorted(named | {region} if region else named)
    where = ", ".join(regions) if regions else "the one MODELARTS_CLEANUP_ENDPOINT serves"
    status = report["status"]
    lines = [
        f"ModelArts notebook cleanup: the run {_STATUS_WORDS.get(status, status)}.",
        f"When: {_when(started)}.",
        f"Region{'s' if len(regions) > 1 else ''}: {where}.",
        f"Project{'s' if len(projects) != 1 else ''}: {', '.join(projects) or 'none'}.",
    ]
    if report["dry_run"]:
        lines.append("Dry run: nothing was changed; this says what a real run would do.")
    else:
        lines.append("Not a dry run: what is listed below was done.")
    return lines


_STATUS_WORDS = {
    "succeeded": "succeeded",
    "partial": "did part of its work (partial)",
    "failed": "failed",
    "refused": "was refused and changed nothing",
}


def _footer(report: Mapping[str, Any], protect_tags: Sequence[str]) -> list[str]:
    if protect_tags:
        tags = " or ".join(protect_tags)
        keep = f"To keep a notebook, give it the tag {tags} before its deletion date."
    else:
        keep = "No protect tag is set: to keep a notebook, ask whoever runs this cleanup."
    return [
        "",
        keep,
        "To find this run's log lines, search the function's logs for "
        f'function_request_id:"{report["request_id"]}".',
    ]


def _subject(report: Mapping[str, Any], results: Sequence[Mapping[str, Any]], dry_run: bool) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    parts = [f"{counts[o]} {words}" for o, words in _SUBJECT_COUNTS if counts.get(o)]
    dates = [
        r["delete_after"]
        for r in results
        if r["outcome"] in ("marked", "would_mark") and r.get("delete_after")
    ]
    if dates:
        parts.append(f"first deletion {_moment(min(dates))}")
    kind = "dry run" if dry_run else "run"
    subject = f"ModelArts cleanup {kind} {report['status']}: " + (
        ", ".join(parts) if parts else "nothing to do"
    )
    return _clip_bytes(_one_line(subject), MAX_SUBJECT_BYTES)


def _line(
    r: Mapping[str, Any], section: str, started: datetime, dry_run: bool, with_project: bool
) -> str:
    parts = [_one_line(r["instance_name"])] if r.get("instance_name") else []
    parts.append(f"ID {r['instance_id']}")
    if with_project:
        parts.append(f"project {r['project_id']}")
    if r.get("region"):
        parts.append(f"region {r['region']}")
    if r.get("workspace_id"):
        parts.append(f"workspace {r['workspace_id']}")
    status = r.get("listed_status") or r.get("instance_status")
    if status:
        parts.append(str(status))
    idle = _idle_days(r.get("updated"), started)
    if idle is not None:
        parts.append(f"idle {idle} day{'s' if idle != 1 else ''}")
    line = ", ".join(parts)
    detail = _detail(r, section, dry_run)
    return f"{line}: {detail}" if detail else line


def _detail(r: Mapping[str, Any], section: str, dry_run: bool) -> str | None:
    reason = r.get("reason")
    words = REASON_WORDS.get(reason, reason) if isinstance(reason, str) else None
    if section == "marked":
        when = r.get("delete_after")
        if not when:
            return None
        return f"{'would be deleted' if dry_run else 'to be deleted'} after {_moment(when)}"
    if section == "deleted":
        return None
    if section == "failed":
        said = [str(r["error_code"])] if r.get("error_code") else []
        if r.get("http_status"):
            said.append(f"(HTTP {r['http_status']})")
        text = " ".join(said)
        if r.get("error_msg"):
            text = f"{text}: {_error_text(r['error_msg'])}" if text else _error_text(r["error_msg"])
        return f"{words}; {text}" if words and text else (words or text or None)
    if section == "deferred":
        return words or "a later run takes it"
    if section == "unmarked":
        return words or "no rule picks it any more"
    return words


def _selector_lines(report: Mapping[str, Any]) -> list[str]:
    """Rules that could not be applied: they deleted nothing, and the run is partial."""
    failed = [s for s in report.get("selectors", ()) if s.get("error_code") or s.get("error_msg")]
    if not failed:
        return []
    lines = ["", f"Rules not applied ({len(failed)}): they changed nothing"]
    for s in failed:
        where = f"project {s.get('project_id')}"
        if s.get("failed_workspace"):
            where += f", workspace {s['failed_workspace']}"
        said = " ".join(x for x in (s.get("error_code"), _error_text(s.get("error_msg"))) if x)
        lines.append(f"  - {s.get('selector')}, {where}: {said}")
    return lines


def _by_owner(
    results: Iterable[Mapping[str, Any]],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(_owner(r), []).append(r)
    return [
        (owner, sorted(owned, key=lambda r: (r.get("instance_name") or "", r["instance_id"])))
        for owner, owned in sorted(groups.items(), key=lambda g: (g[0] == _NO_OWNER, g[0]))
    ]


_NO_OWNER = "owner not known (named targets are not read)"


def _owner(r: Mapping[str, Any]) -> str:
    owner = r.get("owner") or {}
    name, user_id = owner.get("name"), owner.get("id")
    if name and user_id:
        return f"{_one_line(name)} (user {user_id})"
    if user_id:
        return f"user {user_id}"
    return _one_line(name or "") or _NO_OWNER


def _idle_days(updated: object, started: datetime) -> int | None:
    when = from_iso(updated)
    return None if when is None else max(0, (started - when).days)


def _moment(text: str) -> str:
    """`2026-12-07T17:40:00Z` as `2026-12-07 17:40 UTC`; anything else as it is."""
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return _one_line(text)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _when(started: datetime) -> str:
    return started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error_text(text: object) -> str:
    """A service's message on one line, no URL in it, clipped."""
    if not isinstance(text, str):
        return ""
    cleaned = _one_line(_URL.sub("(a URL)", text))
    return cleaned if len(cleaned) <= _ERROR_TEXT else cleaned[: _ERROR_TEXT - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _size(line: str) -> int:
    return len(line.encode("utf-8")) + 1  # and its newline


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."
