"""Report status rules, counts, and the JSON log format."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

from modelarts_cleanup.cleanup.report import (
    JsonLog,
    Outcome,
    Report,
    Result,
    RunStatus,
    run_status,
    summary_log_fields,
)

P = "ed43aef64dff4e5c81cb84b71adcb3fd"


def results(*outcomes: Outcome) -> list[Result]:
    return [Result(P, f"id-{i}", o) for i, o in enumerate(outcomes)]


O = Outcome  # noqa: E741  (keeps the status table readable)


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ((O.DELETED, O.ALREADY_ABSENT), RunStatus.SUCCEEDED),
        ((O.WOULD_DELETE, O.REFUSED), RunStatus.SUCCEEDED),
        ((), RunStatus.SUCCEEDED),
        ((O.DELETED, O.FAILED), RunStatus.PARTIAL),
        ((O.DELETED, O.NOT_ATTEMPTED), RunStatus.PARTIAL),
        ((O.FAILED, O.NOT_ATTEMPTED), RunStatus.PARTIAL),
        ((O.NOT_ATTEMPTED,), RunStatus.PARTIAL),
        ((O.FAILED, O.FAILED), RunStatus.FAILED),
        ((O.FAILED, O.REFUSED), RunStatus.FAILED),
    ],
)
def test_run_status_follows_the_design(outcomes: tuple[Outcome, ...], status: RunStatus) -> None:
    assert run_status(results(*outcomes)) is status


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ((O.DELETED,), RunStatus.PARTIAL),
        ((O.WOULD_DELETE,), RunStatus.PARTIAL),
        ((), RunStatus.FAILED),
        ((O.FAILED,), RunStatus.FAILED),
    ],
)
def test_a_selector_that_could_not_be_applied_counts_as_a_failure(
    outcomes: tuple[Outcome, ...], status: RunStatus
) -> None:
    assert run_status(results(*outcomes), failed_selectors=1) is status


def test_refused_run_is_refused_whatever_the_results() -> None:
    assert run_status(results(O.REFUSED), refused=True) is RunStatus.REFUSED


def test_report_counts_every_outcome() -> None:
    report = Report(
        RunStatus.PARTIAL, False, "notebook", "r", 5, tuple(results(O.DELETED, O.FAILED, O.DELETED))
    )
    data = report.to_dict()
    assert data["counts"] == {
        "deleted": 2,
        "already_absent": 0,
        "would_delete": 0,
        "refused": 0,
        "failed": 1,
        "not_attempted": 0,
        "marked": 0,
        "unmarked": 0,
        "would_mark": 0,
        "would_unmark": 0,
    }
    assert list(data) == [
        "status",
        "dry_run",
        "api",
        "request_id",
        "duration_ms",
        "counts",
        "failed_by",
        "answers_lost",
        "regions",
        "earliest_delete_after",
        "deletions_confirmed",
        "results",
        "selectors",
        "notification",
    ]
    assert data["notification"] is None  # no topic set
    assert data["results"][1]["outcome"] == "failed"
    assert json.loads(json.dumps(data)) == data


def test_failures_are_counted_apart_by_cause() -> None:
    def failed(reason: str | None, code: str | None) -> Result:
        return Result(P, f"id-{reason}-{code}", O.FAILED, reason=reason, error_code=code)

    report = Report(
        RunStatus.PARTIAL,
        False,
        "notebook",
        "r",
        5,
        (
            failed("deadline", "DeadlineExceeded"),  # sent, answer lost
            failed("deadline", "StopTimeout"),  # out of time while it stopped
            failed("deadline", None),  # out of time before the delete after stopping
            failed(None, "ModelArts.0108"),  # refused
            failed("stop_failed", "ModelArts.6102"),
            Result(P, "untried", O.NOT_ATTEMPTED, reason="deadline"),
            Result(P, "gone", O.DELETED),
        ),
    )
    data = report.to_dict()
    assert data["failed_by"] == {"error": 2, "deadline": 3}
    assert sum(data["failed_by"].values()) == data["counts"]["failed"]
    assert data["answers_lost"] == 1
    summary = summary_log_fields(report)
    assert (summary["failed_by"], summary["answers_lost"]) == (data["failed_by"], 1)
    assert summary["counts"] == data["counts"]


def test_a_run_without_failures_counts_none_by_any_cause() -> None:
    report = Report(RunStatus.SUCCEEDED, False, "notebook", "r", 5, tuple(results(O.DELETED)))
    assert (report.failed_by, report.answers_lost) == ({"error": 0, "deadline": 0}, 0)


def fixed_clock() -> datetime:
    return datetime(2026, 11, 26, 4, 30, 0, 123456, tzinfo=timezone.utc)


def test_log_lines_are_json_with_the_standard_keys_and_no_nulls() -> None:
    stream = io.StringIO()
    log = JsonLog(
        stream, context={"function_request_id": "fr-1", "cold_start": True}, clock=fixed_clock
    )
    log.info("hello", outcome=Outcome.DELETED, error_code=None, attempts=1)
    line = json.loads(stream.getvalue())
    assert line == {
        "timestamp": "2026-11-26T04:30:00.123Z",
        "level": "INFO",
        "message": "hello",
        "service": "modelarts-cleanup",
        "function_request_id": "fr-1",
        "cold_start": True,
        "outcome": "deleted",
        "attempts": 1,
    }


def test_log_level_filters_lower_levels() -> None:
    stream = io.StringIO()
    log = JsonLog(stream, level="WARNING")
    log.info("quiet")
    log.debug("quieter")
    log.error("loud")
    assert [json.loads(x)["message"] for x in stream.getvalue().splitlines()] == ["loud"]
