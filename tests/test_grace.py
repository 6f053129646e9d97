"""Warn before deleting: a rule with grace_hours marks what it picks, deletes it only in a later
run after the mark's time, and takes the mark off what it no longer picks."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from modelarts_cleanup.cleanup.grace import carries_mark, decide, mark_on, still_due
from modelarts_cleanup.cloud.instances import ListedInstance
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.tags import mark_value, read_mark
from modelarts_cleanup.exceptions import PayloadError
from modelarts_cleanup.testing import FakeModelArts, Fault, User
from modelarts_cleanup.vocabulary import MARK_KEY
from tests.support import endpoint_environ, no_sleep

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
HOUR = 3_600_000
DAY1 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
GRACE = 48
RULE: dict[str, Any] = {
    "project_id": P,
    "statuses": ["STOPPED"],
    "idle_hours": 72,
    "name_pattern": "tmp-*",
    "grace_hours": GRACE,
}
ALICE = User("a" * 32, "alice")
WS = "a1" * 16


def run(
    fake: FakeModelArts,
    now_ms: int,
    *,
    dry_run: bool = False,
    rule: dict[str, Any] = RULE,
    **env: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    log = io.StringIO()
    report = run_function(
        {"selectors": [rule]},
        None,
        environ=endpoint_environ(fake.url, **env),
        log_stream=log,
        force_dry_run=dry_run,
        wall_clock=lambda: now_ms / 1000,
        sleep=no_sleep,
    )
    return report, [json.loads(line) for line in log.getvalue().splitlines()]


def add(fake: FakeModelArts, name: str = "tmp-x", **fields: Any) -> str:
    defaults: dict[str, Any] = {
        "status": "STOPPED",
        "name": name,
        "created_ms": DAY1 - 500 * HOUR,
        "updated_ms": DAY1 - 100 * HOUR,
        "owner": ALICE,
    }
    return fake.add_instance(P, **{**defaults, **fields})


def mark_of(fake: FakeModelArts, instance_id: str) -> str | None:
    body = fake.instance(P, instance_id)
    assert body is not None
    values = [t["value"] for t in body["tags"] if t["key"] == MARK_KEY]
    return values[0] if values else None


def outcomes(report: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None]]:
    return {
        r["instance_id"]: (r["outcome"], r["reason"], r["delete_after"]) for r in report["results"]
    }


def writes(fake: FakeModelArts) -> list[tuple[str, str]]:
    return [(r.method, r.path.rsplit("/", 2)[-1]) for r in fake.requests if r.method != "GET"]


def test_one_fleet_through_three_runs_mark_wait_then_delete_or_unmark(fake: FakeModelArts) -> None:
    stays_idle = add(fake, "tmp-idle")
    started_later = add(fake, "tmp-started")
    protected_later = add(fake, "tmp-protect", workspace_id=WS)
    renamed_later = add(fake, "tmp-renamed")
    never = add(fake, "prod-x")
    due = mark_value(DAY1 + GRACE * HOUR)

    # Run 1: every instance the rule picks is marked; nothing is deleted.
    first, log = run(fake, DAY1)
    marked = {stays_idle, started_later, protected_later, renamed_later}
    assert outcomes(first) == dict.fromkeys(marked, ("marked", None, due))
    assert all(mark_of(fake, i) == due for i in marked) and mark_of(fake, never) is None
    assert {m for m, _ in writes(fake)} == {"POST"}
    assert fake.instance_ids(P) == {(P, i) for i in [*marked, never]}
    # Written with each instance's own workspace.
    tagging = [r for r in fake.requests if r.path.endswith(f"{protected_later}/tags/create")]
    assert [r.query for r in tagging] == [f"workspace_id={WS}"]
    # One log line per marked instance, with the moment and the owner: what an alarm needs.
    lines = [line for line in log if line.get("outcome") == "marked"]
    assert len(lines) == 4
    assert all(line["delete_after"] == due and line["owner"]["name"] == "alice" for line in lines)

    # Run 2, before the time: the same marks, reported again; nothing written or deleted.
    fake.clear_requests()
    second, _ = run(fake, DAY1 + (GRACE - 1) * HOUR)
    assert outcomes(second) == dict.fromkeys(marked, ("marked", None, due))
    assert writes(fake) == []

    # Between runs: one is started, one gets the protect tag, one is renamed.
    fake.set_status(P, started_later, "RUNNING")
    fake.tag(P, protected_later, {"modelarts-cleanup:keep": "yes"})
    fake.rename(P, renamed_later, "kept-now")

    # Run 3, after the time: the one still matching is deleted, the others lose their mark.
    fake.clear_requests()
    third, _ = run(fake, DAY1 + (GRACE + 1) * HOUR)
    assert outcomes(third) == {
        stays_idle: ("deleted", None, due),
        protected_later: ("unmarked", "protected", due),
        started_later: ("unmarked", "state_changed", due),
        renamed_later: ("unmarked", "state_changed", due),
    }
    assert fake.instance(P, stays_idle) is None
    assert all(mark_of(fake, i) is None for i in (started_later, protected_later, renamed_later))
    assert third["counts"]["deleted"] == 1 and third["counts"]["unmarked"] == 3


def test_dry_run_and_plan_write_nothing_and_say_what_a_run_would_do(fake: FakeModelArts) -> None:
    fresh = add(fake, "tmp-fresh")
    waiting = add(fake, "tmp-waiting", tags={MARK_KEY: mark_value(DAY1 + HOUR)})
    passed = add(fake, "tmp-passed", tags={MARK_KEY: mark_value(DAY1 - HOUR)})
    dropped = add(fake, "tmp-dropped", status="RUNNING", tags={MARK_KEY: mark_value(DAY1)})

    report, _ = run(fake, DAY1, dry_run=True)

    assert outcomes(report) == {
        fresh: ("would_mark", None, mark_value(DAY1 + GRACE * HOUR)),
        waiting: ("marked", None, mark_value(DAY1 + HOUR)),
        passed: ("would_delete", None, mark_value(DAY1 - HOUR)),
        dropped: ("would_unmark", "state_changed", mark_value(DAY1)),
    }
    assert writes(fake) == []
    assert mark_of(fake, fresh) is None and mark_of(fake, dropped) == mark_value(DAY1)


@pytest.mark.parametrize(
    "garbled",
    ["tomorrow", "2027-01-15", "2027-01-15T08:00:00+08:00", "2027-02-30T00:00:00Z", ""],
)
def test_a_mark_that_cannot_be_read_is_never_taken_as_passed(
    fake: FakeModelArts, garbled: str
) -> None:
    instance = add(fake, tags={MARK_KEY: garbled})

    report, _ = run(fake, DAY1 + 1000 * HOUR)

    assert outcomes(report) == {instance: ("refused", "mark_unreadable", None)}
    assert mark_of(fake, instance) == garbled  # left alone
    assert writes(fake) == []


def test_a_failed_mark_write_fails_that_target_and_deletes_nothing(fake: FakeModelArts) -> None:
    broken = add(fake, "tmp-broken")
    fine = add(fake, "tmp-fine")
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None), instance_id=broken
    )

    report, log = run(fake, DAY1)

    result = {r["instance_id"]: r for r in report["results"]}[broken]
    assert (result["outcome"], result["error_code"], result["http_status"]) == (
        "failed",
        "ModelArts.0108",
        403,
    )
    assert outcomes(report)[fine][0] == "marked"
    assert fake.instance(P, broken) is not None and mark_of(fake, broken) is None
    assert not [r for r in fake.requests if r.method == "DELETE"]
    assert [line["level"] for line in log if line.get("instance_id") == broken] == ["ERROR"]


def test_a_failed_unmark_fails_that_target(fake: FakeModelArts) -> None:
    dropped = add(fake, status="RUNNING", tags={MARK_KEY: mark_value(DAY1)})
    fake.add_fault(Fault("status", status=500, times=None, method="DELETE"), instance_id=dropped)

    report, _ = run(fake, DAY1, MODELARTS_CLEANUP_MAX_ATTEMPTS="2")

    assert outcomes(report)[dropped][0] == "failed"
    assert mark_of(fake, dropped) == mark_value(DAY1)
    assert fake.instance(P, dropped) is not None


def test_marks_and_unmarks_count_against_the_cap_with_deletions(fake: FakeModelArts) -> None:
    for n in range(3):
        add(fake, f"tmp-new-{n}")
    add(fake, "tmp-dropped", status="RUNNING", tags={MARK_KEY: mark_value(DAY1)})
    add(fake, "tmp-due", tags={MARK_KEY: mark_value(DAY1 - HOUR)})

    refused, log = run(fake, DAY1, MODELARTS_CLEANUP_MAX_DELETIONS="4")
    allowed, _ = run(fake, DAY1, MODELARTS_CLEANUP_MAX_DELETIONS="5")

    assert refused["status"] == "refused"
    assert {r["reason"] for r in refused["results"]} == {"max_deletions_exceeded"}
    assert any("5 deletions, marks and unmarks" in line["message"] for line in log)
    assert allowed["status"] == "succeeded"
    assert sorted(r["outcome"] for r in allowed["results"]) == [
        "deleted",
        "marked",
        "marked",
        "marked",
        "unmarked",
    ]


def test_a_run_refused_by_the_cap_writes_no_tag(fake: FakeModelArts) -> None:
    for n in range(3):
        add(fake, f"tmp-{n}")
    report, _ = run(fake, DAY1, MODELARTS_CLEANUP_MAX_DELETIONS="2")
    assert report["status"] == "refused"
    assert writes(fake) == []


def test_an_owner_who_removes_the_mark_restarts_the_grace_period(fake: FakeModelArts) -> None:
    instance = add(fake)
    run(fake, DAY1)
    first_mark = mark_of(fake, instance)

    fake.untag(P, instance, [MARK_KEY])  # the owner takes it off in the console
    report, _ = run(fake, DAY1 + (GRACE + 5) * HOUR)

    # Marked again, from now: not deleted, although the first mark had passed.
    later = mark_value(DAY1 + (GRACE + 5 + GRACE) * HOUR)
    assert outcomes(report) == {instance: ("marked", None, later)}
    assert first_mark != later and mark_of(fake, instance) == later
    assert fake.instance(P, instance) is not None


def test_a_mark_removed_between_listing_and_deleting_keeps_the_notebook(
    fake: FakeModelArts,
) -> None:
    instance = add(fake, tags={MARK_KEY: mark_value(DAY1 - HOUR)})
    fake.on_next_read(P, instance, lambda: fake.untag(P, instance, [MARK_KEY]))

    report, _ = run(fake, DAY1)

    assert outcomes(report)[instance][:2] == ("refused", "state_changed")
    assert fake.instance(P, instance) is not None


def test_a_notebook_a_grace_rule_marked_is_not_unmarked_by_another_rule(
    fake: FakeModelArts,
) -> None:
    instance = add(fake, "tmp-a", tags={MARK_KEY: mark_value(DAY1 + HOUR)})
    other_rule = {**RULE, "name_pattern": "other-*"}

    report = run_function(
        {"selectors": [other_rule, RULE]},
        None,
        environ=endpoint_environ(fake.url),
        log_stream=io.StringIO(),
        wall_clock=lambda: DAY1 / 1000,
        sleep=no_sleep,
    )

    assert outcomes(report) == {instance: ("marked", None, mark_value(DAY1 + HOUR))}
    assert [r["matched_by"] for r in report["results"]] == ["selectors[1]"]
    assert writes(fake) == []


def test_grace_needs_the_notebook_api(fake: FakeModelArts) -> None:
    with pytest.raises(PayloadError) as refused:
        run(fake, DAY1, MODELARTS_CLEANUP_API="devenviron")
    assert refused.value.problems == (
        "selectors[0].grace_hours: a grace period marks notebooks with a tag, which only the "
        "notebook API has, but MODELARTS_CLEANUP_API is devenviron",
    )
    assert fake.requests == []


@pytest.mark.parametrize("hours", [0, 0.5, 2161, -1, "48", True])
def test_grace_hours_outside_one_to_2160_are_refused(fake: FakeModelArts, hours: Any) -> None:
    with pytest.raises(PayloadError, match=r"selectors\[0\]\.grace_hours"):
        run(fake, DAY1, rule={**RULE, "grace_hours": hours})
    assert fake.requests == []


# -- the decision and the mark, alone -------------------------------------------------------


def listed(tags: tuple[tuple[str, str], ...] | None) -> ListedInstance:
    return ListedInstance(P, "i", "tmp", "STOPPED", None, None, None, "postpaid", tags=tags)


@pytest.mark.parametrize(
    ("tags", "refusal", "expected"),
    [
        ((), None, ("mark", mark_value(DAY1 + 2 * HOUR), None)),
        (((MARK_KEY, mark_value(DAY1 + 1000)),), None, ("wait", mark_value(DAY1 + 1000), None)),
        (((MARK_KEY, mark_value(DAY1)),), None, ("delete", mark_value(DAY1), None)),
        (((MARK_KEY, "soon"),), None, ("keep", None, "mark_unreadable")),
        (((MARK_KEY, mark_value(DAY1)),), "protected", ("unmark", mark_value(DAY1), "protected")),
        (((MARK_KEY, "soon"),), "prepaid", ("unmark", None, "prepaid")),
        ((), "prepaid", ("keep", None, "prepaid")),
        (None, None, ("keep", None, "state_unreadable")),
    ],
)
def test_what_a_grace_rule_decides_for_one_instance(
    tags: tuple[tuple[str, str], ...] | None,
    refusal: str | None,
    expected: tuple[str, str | None, str | None],
) -> None:
    decision = decide(listed(tags), refusal, grace_hours=2, now_ms=DAY1)
    assert (decision.action, decision.delete_after, decision.reason) == expected


def test_a_mark_is_rfc3339_utc_to_the_second_and_reads_back() -> None:
    assert mark_value(DAY1 + 999) == "2027-01-15T08:00:00Z"
    assert read_mark(((MARK_KEY, "2027-01-15T08:00:00Z"),)) == (True, DAY1)
    assert read_mark((("other", "2027-01-15T08:00:00Z"),)) == (False, None)
    # Two marks disagree with each other: unreadable.
    assert read_mark(((MARK_KEY, "2027-01-15T08:00:00Z"), (MARK_KEY, "x"))) == (True, None)


@pytest.mark.usefixtures("clock_eight_hours_ahead")
def test_a_mark_is_written_and_read_in_utc_whatever_the_local_time_zone() -> None:
    assert mark_value(DAY1) == "2027-01-15T08:00:00Z"
    assert read_mark(((MARK_KEY, "2027-01-15T08:00:00Z"),)) == (True, DAY1)


@pytest.mark.parametrize(
    ("tags", "carries", "shown", "due"),
    [
        ((), False, None, False),
        (((MARK_KEY, mark_value(DAY1 - 1000)),), True, mark_value(DAY1 - 1000), True),
        (((MARK_KEY, mark_value(DAY1)),), True, mark_value(DAY1), True),  # due at its moment
        (((MARK_KEY, mark_value(DAY1 + 1000)),), True, mark_value(DAY1 + 1000), False),
        (((MARK_KEY, "soon"),), True, None, False),  # unreadable: carried, never due
        (None, False, None, False),
    ],
)
def test_what_is_read_again_of_a_mark_before_deleting(
    tags: tuple[tuple[str, str], ...] | None, carries: bool, shown: str | None, due: bool
) -> None:
    instance = listed(tags)
    assert (carries_mark(instance), mark_on(instance)) == (carries, shown)
    assert still_due(instance, now_ms=DAY1) is due


def test_a_mark_write_whose_answer_the_deadline_cut_is_told_unknown_and_read_next_run(
    fake: FakeModelArts,
) -> None:
    """The write went through, its answer did not come back in time: the run says it does not
    know, and the next run finds the mark and writes nothing."""
    instance = add(fake)
    fake.add_fault(Fault("slow", delay=3.0, method="POST"), instance_id=instance)
    log = io.StringIO()
    report = run_function(
        {"selectors": [RULE]},
        None,
        environ=endpoint_environ(fake.url, MODELARTS_CLEANUP_CONNECT_TIMEOUT="0.5"),
        log_stream=log,
        deadline_seconds=2.0,
        wall_clock=lambda: DAY1 / 1000,
        sleep=no_sleep,
    )
    assert fake.wait_until_idle()

    result = report["results"][0]
    assert (result["outcome"], result["reason"], result["error_code"]) == (
        "failed",
        "deadline",
        "DeadlineExceeded",
    )
    assert "effect is unknown" in result["error_msg"]
    assert report["failed_by"] == {"error": 0, "deadline": 1} and report["answers_lost"] == 1
    due = mark_value(DAY1 + GRACE * HOUR)
    assert mark_of(fake, instance) == due  # it did go through

    fake.clear_requests()
    again, _ = run(fake, DAY1 + HOUR)
    assert outcomes(again) == {instance: ("marked", None, due)}
    assert writes(fake) == []


def test_a_run_too_short_to_list_sends_nothing_and_says_why(fake: FakeModelArts) -> None:
    add(fake)
    log = io.StringIO()
    report = run_function(
        {"selectors": [RULE]},
        None,
        environ=endpoint_environ(fake.url),
        log_stream=log,
        deadline_seconds=0.5,
        wall_clock=lambda: DAY1 / 1000,
        sleep=no_sleep,
    )

    assert fake.requests == []
    assert report["status"] == "failed" and report["results"] == []
    (selector,) = report["selectors"]
    assert selector["error_code"] == "DeadlineExceeded"
    assert "deadline" in selector["error_msg"]
