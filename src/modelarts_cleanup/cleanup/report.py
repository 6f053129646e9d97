"""Outcomes, per-target results, the run's report, and JSON log lines. Pure but for the log sink."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any, TextIO

from ..vocabulary import ANSWER_LOST, DEADLINE_EXCEEDED, RunStatus

SERVICE = "modelarts-cleanup"


class Outcome(str, Enum):
    """What happened to one target. Exactly one per target."""

    DELETED = "deleted"
    ALREADY_ABSENT = "already_absent"
    WOULD_DELETE = "would_delete"
    REFUSED = "refused"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    # A grace period (a selector's grace_hours): the mark written, waiting, or taken off.
    MARKED = "marked"
    UNMARKED = "unmarked"
    WOULD_MARK = "would_mark"
    WOULD_UNMARK = "would_unmark"


class Reason(str, Enum):
    """Why a target was refused, not attempted, or failed where it did."""

    PROTECTED = "protected"
    PROJECT_NOT_ALLOWED = "project_not_allowed"
    MAX_DELETIONS_EXCEEDED = "max_deletions_exceeded"
    PREPAID = "prepaid"
    BILLING_UNREADABLE = "billing_unreadable"
    STATE_UNREADABLE = "state_unreadable"
    STATE_CHANGED = "state_changed"
    DEADLINE = "deadline"
    STOP_FAILED = "stop_failed"
    RECHECK_FAILED = "recheck_failed"
    MARK_UNREADABLE = "mark_unreadable"
    REGION_UNKNOWN = "region_unknown"
    CAP = "cap"
    # The deletion was accepted, then the instance went DELETE_FAILED or ERROR.
    DELETE_FAILED = "delete_failed"


# Outcomes of targets the run acted on (a dry run acts by reporting).
_ATTEMPTED = frozenset(
    {
        Outcome.DELETED,
        Outcome.ALREADY_ABSENT,
        Outcome.FAILED,
        Outcome.WOULD_DELETE,
        Outcome.MARKED,
        Outcome.UNMARKED,
        Outcome.WOULD_MARK,
        Outcome.WOULD_UNMARK,
    }
)


@dataclass(frozen=True)
class Result:
    """The one result of one target."""

    project_id: str
    instance_id: str
    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    reason: str | None = None
    attempts: int = 0
    request_id: str | None = None
    duration_ms: int = 0
    instance_status: str | None = None
    matched_by: str | None = None
    instance_name: str | None = None
    # What the rules read of a selected instance (None for a named target): for a person to check.
    listed_status: str | None = None
    workspace_id: str | None = None
    owner: Mapping[str, str | None] | None = None
    created: str | None = None  # ISO 8601, UTC
    updated: str | None = None
    tags: Sequence[Mapping[str, str]] | None = None
    pool: Mapping[str, str | None] | None = None
    # A grace period's mark: when the instance may be deleted (RFC 3339, UTC).
    delete_after: str | None = None
    # The region of the target's project (None: not found, or one endpoint and no region set).
    region: str | None = None
    # A deletion read again afterwards: True once seen gone, False when time ran out first;
    # None when it was not read again (not deleted, or MODELARTS_CLEANUP_CONFIRM_SECONDS=0).
    confirmed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as it appears in the report."""
        # Shallow on purpose: every field is a plain value, and asdict() deep-copies each.
        data = {f.name: getattr(self, f.name) for f in _RESULT_FIELDS}
        data["outcome"] = self.outcome.value
        return data


_RESULT_FIELDS = fields(Result)


def count_outcomes(results: Iterable[Result]) -> dict[str, int]:
    """How many results of each outcome, every outcome listed."""
    counts = dict.fromkeys((o.value for o in Outcome), 0)
    for result in results:
        counts[result.outcome.value] += 1
    return counts


def count_failures(results: Iterable[Result]) -> dict[str, int]:
    """Failed results by cause: `deadline` (the run ran out of time part-way), `error` (the rest:
    the API or the network said no, for good or until retries ran out)."""
    counts = {"error": 0, "deadline": 0}
    for result in results:
        if result.outcome is Outcome.FAILED:
            counts["deadline" if result.reason == Reason.DEADLINE.value else "error"] += 1
    return counts


_LOST = frozenset({DEADLINE_EXCEEDED, ANSWER_LOST})


def count_answers_lost(results: Iterable[Result]) -> int:
    """Failed results whose request was sent and its answer lost (cut by the deadline, or lost
    otherwise with no answer since): their effect is unknown."""
    return sum(1 for r in results if r.outcome is Outcome.FAILED and r.error_code in _LOST)


def count_confirmed(results: Iterable[Result]) -> int:
    """Deleted results whose instance was seen gone afterwards."""
    return sum(1 for r in results if r.outcome is Outcome.DELETED and r.confirmed is True)


def earliest_mark(results: Iterable[Result]) -> str | None:
    """The earliest `delete_after` of the instances marked (or that would be): when the first
    of them may go. RFC 3339 UTC to the second, so the text sorts as the time does."""
    marks = [
        r.delete_after
        for r in results
        if r.outcome in (Outcome.MARKED, Outcome.WOULD_MARK) and r.delete_after is not None
    ]
    return min(marks, default=None)


def run_status(
    results: Iterable[Result],
    *,
    refused: bool = False,
    failed_selectors: int = 0,
    incomplete_selectors: int = 0,
) -> RunStatus:
    """Succeeded, partial, failed or refused, as DESIGN.md defines them.

    A selector that could not be applied (its project's listing failed) counts as a failed
    attempt: the run did not do all it was asked to. So does a target left alone because its
    project's region could not be found (not a failure: nothing was tried). One applied without
    some of its workspaces (they could not be listed) did part of it: the run is partial at best.
    """
    if refused:
        return RunStatus.REFUSED
    results = list(results)
    outcomes = [r.outcome for r in results]
    failed = outcomes.count(Outcome.FAILED) + failed_selectors
    lost = sum(1 for r in results if r.reason == Reason.REGION_UNKNOWN.value)
    unfinished = failed + outcomes.count(Outcome.NOT_ATTEMPTED) + lost + incomplete_selectors
    if unfinished == 0:
        return RunStatus.SUCCEEDED
    attempted = sum(1 for o in outcomes if o in _ATTEMPTED) + failed_selectors
    if attempted and failed == attempted and failed == unfinished:
        return RunStatus.FAILED
    return RunStatus.PARTIAL


@dataclass(frozen=True)
class Report:
    """What the handler returns and `invoke` prints."""

    status: RunStatus
    dry_run: bool
    api: str
    request_id: str
    duration_ms: int
    results: tuple[Result, ...]
    selectors: tuple[dict[str, Any], ...] = ()
    # What became of the run's digest (cleanup.notification); None: no topic is set.
    notification: Mapping[str, Any] | None = None
    # The regions the run sent requests to, sorted.
    regions: tuple[str, ...] = ()
    counts: dict[str, int] = field(init=False)
    failed_by: dict[str, int] = field(init=False)
    answers_lost: int = field(init=False)
    earliest_delete_after: str | None = field(init=False)
    deletions_confirmed: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", count_outcomes(self.results))
        object.__setattr__(self, "earliest_delete_after", earliest_mark(self.results))
        object.__setattr__(self, "failed_by", count_failures(self.results))
        object.__setattr__(self, "answers_lost", count_answers_lost(self.results))
        object.__setattr__(self, "deletions_confirmed", count_confirmed(self.results))

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "status": self.status.value,
            "dry_run": self.dry_run,
            "api": self.api,
            "request_id": self.request_id,
            "duration_ms": self.duration_ms,
            "counts": dict(self.counts),
            "failed_by": dict(self.failed_by),
            "answers_lost": self.answers_lost,
            "regions": list(self.regions),
            "earliest_delete_after": self.earliest_delete_after,
            "deletions_confirmed": self.deletions_confirmed,
            "results": [r.to_dict() for r in self.results],
            "selectors": [dict(s) for s in self.selectors],
            "notification": None if self.notification is None else dict(self.notification),
        }


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


# What a text line shows besides the level and the message, in this order: what a person needs
# to see why; the JSON line has everything.
TEXT_FIELDS = (
    "selector",
    "matched_by",
    "reason",
    "http_status",
    "error_code",
    "error_msg",
    "failed_workspace",
    "delete_after",
    "attempt",
    "max_attempts",
    "delay",
    "status",
    "dry_run",
    "counts",
    "where",
)


class JsonLog:
    """One JSON object per line, null values dropped; thread-safe; level-filtered.

    With `text`, a line for people instead: `level: message (the fields that matter)`, the
    message's own line breaks kept.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        level: str = "INFO",
        context: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        text: bool = False,
    ) -> None:
        self._stream = stream
        self._threshold = _LEVELS[level]
        self._context = dict(context or {})
        self._clock = clock
        self._text = text
        self._lock = threading.Lock()

    def log(self, level: str, message: str, **fields: Any) -> None:
        """Write one line, if the level passes."""
        if _LEVELS[level] < self._threshold:
            return
        if self._text:
            line = text_line(level, message, fields)
        else:
            line = self._json_line(level, message, fields)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def _json_line(self, level: str, message: str, fields: Mapping[str, Any]) -> str:
        record: dict[str, Any] = {
            "timestamp": self._clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "message": message,
            "service": SERVICE,
        }
        record.update(self._context)
        record.update(fields)
        return json.dumps(
            {k: _plain(v) for k, v in record.items() if v is not None},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def debug(self, message: str, **fields: Any) -> None:
        """Log at DEBUG."""
        self.log("DEBUG", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        """Log at INFO."""
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Log at WARNING."""
        self.log("WARNING", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        """Log at ERROR."""
        self.log("ERROR", message, **fields)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def text_line(level: str, message: str, fields: Mapping[str, Any]) -> str:
    """A log line for people: `error: message (key=value, ...)`, only TEXT_FIELDS shown."""
    shown: list[str] = []
    for key in TEXT_FIELDS:
        value = _plain(fields.get(key))
        # counts and the like: what is there, not the zeros
        pairs = value.items() if isinstance(value, Mapping) else [(key, value)]
        shown.extend(
            f"{k}={str(v).lower() if isinstance(v, bool) else _plain(v)}"
            for k, v in pairs
            if v is not None and v != "" and (v or not isinstance(value, Mapping))
        )
    return f"{level.lower()}: {message}" + (f" ({', '.join(shown)})" if shown else "")


def summary_log_fields(report: Report) -> dict[str, Any]:
    """The keys of the run's summary log line."""
    return {
        "status": report.status.value,
        "dry_run": report.dry_run,
        "api": report.api,
        "duration_ms": report.duration_ms,
        "counts": dict(report.counts),
        "failed_by": dict(report.failed_by),
        "answers_lost": report.answers_lost,
        "regions": list(report.regions),
        "earliest_delete_after": report.earliest_delete_after,
        "deletions_confirmed": report.deletions_confirmed,
    }
