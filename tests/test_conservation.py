"""Conservation: whatever goes wrong, every target is told once and nothing is lost or invented.

Random batches (up to 200 targets: present, absent, duplicated) meet random per-instance faults,
random policy, random dry runs and random deadlines, through the whole function against the local
endpoint. Time is a fake clock that the endpoint moves one second per request and that sleeps
move, so a deadline really cuts a batch part-way. After each run the report is checked against
the endpoint's own state and request log.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import event, given, note
from hypothesis import strategies as st

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import AK, SK, FakeTime, endpoint_environ, whole_runs

PROJECTS = (
    "ed43aef64dff4e5c81cb84b71adcb3fd",
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
)
OUTCOMES = (
    "deleted",
    "already_absent",
    "would_delete",
    "refused",
    "failed",
    "not_attempted",
    # Outcomes of a grace period (no selector here has one): counted, always zero.
    "marked",
    "unmarked",
    "would_mark",
    "would_unmark",
)
# Enough to cover the space (see the coverage counters) and keep the file well under a minute.
MAX_EXAMPLES = 300


def instance_id(n: int) -> str:
    return str(uuid.UUID(int=(0xC0DE << 96) + n))


# What can happen to one instance's requests (None: nothing).
FAULTS: tuple[Fault | None, ...] = (
    None,
    Fault("status", status=503),
    Fault("status", status=500, times=2),
    Fault("status", status=429, retry_after="1"),
    Fault("status", status=502, times=None),
    Fault("status", status=403, error_code="ModelArts.0108", times=None),
    Fault("status", status=400, error_code="ModelArts.6357", method="DELETE"),
    Fault("reset"),
    Fault("reset", times=None),
    Fault("html", status=504),
    Fault("empty", status=503, times=None),
    Fault("malformed", status=500),
)


@dataclass(frozen=True)
class Slot:
    """One instance the batch may name."""

    project: int
    present: bool
    running: bool
    fault: Fault | None


@dataclass(frozen=True)
class Scenario:
    slots: tuple[Slot, ...]
    targets: tuple[int, ...]  # indices into slots, in payload order, duplicates allowed
    bystanders: int  # instances present but never named
    protected: frozenset[int]
    allowed_projects: frozenset[int]  # empty: any
    max_deletions: int
    dry_run: str | None  # None, or where the dry run comes from
    budget: int | None  # seconds
    concurrency: int
    max_attempts: int
    stop_before_delete: bool


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    # Hypothesis favours small values; about half the batches are drawn large on purpose.
    slot_count = draw(st.one_of(st.integers(1, 12), st.integers(12, 150)))
    slots = tuple(
        Slot(
            project=draw(st.integers(0, len(PROJECTS) - 1)),
            present=draw(st.booleans()),
            running=draw(st.booleans()),
            fault=draw(st.sampled_from(FAULTS)),
        )
        for _ in range(slot_count)
    )
    size = draw(st.one_of(st.integers(1, 12), st.integers(12, 200)))
    targets = tuple(draw(st.lists(st.integers(0, slot_count - 1), min_size=size, max_size=size)))
    indices = st.integers(0, slot_count - 1)
    return Scenario(
        slots=slots,
        targets=targets,
        bystanders=draw(st.integers(0, 4)),
        protected=frozenset(draw(st.lists(indices, max_size=10))),
        allowed_projects=draw(
            st.one_of(st.just(frozenset()), st.frozensets(st.integers(0, len(PROJECTS) - 1)))
        ),
        max_deletions=draw(st.one_of(st.just(200), st.integers(0, 120))),
        dry_run=draw(st.sampled_from([None, None, None, "payload", "setting", "flag"])),
        budget=draw(st.one_of(st.none(), st.integers(8, 30), st.integers(8, 160))),
        concurrency=draw(st.sampled_from([1, 3, 8])),
        max_attempts=draw(st.integers(1, 4)),
        stop_before_delete=draw(st.booleans()),
    )


def key(scenario: Scenario, index: int) -> tuple[str, str]:
    return PROJECTS[scenario.slots[index].project], instance_id(index)


def run_scenario(scenario: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run it; return the report and what the endpoint saw and kept."""
    # Moved by sleeps (the endpoint's latency among them) rounded up to whole seconds: that
    # keeps every deadline an integer away, so the real socket timeouts the client derives from
    # what is left are never a sliver a loaded machine could miss.
    time_ = FakeTime(0.0, whole_seconds=True)
    with FakeModelArts(
        access_key=AK,
        secret_key=SK,
        latency=1.0,  # each request costs a second of the fake clock
        sleep=time_.sleep,
        stop_before_delete=scenario.stop_before_delete,
    ) as fake:
        for index, slot in enumerate(scenario.slots):
            project, iid = key(scenario, index)
            if slot.present:
                fake.add_instance(project, iid, status="RUNNING" if slot.running else "STOPPED")
            if slot.fault is not None:
                fake.add_fault(slot.fault, instance_id=iid)
        bystanders = {
            (PROJECTS[n % len(PROJECTS)], fake.add_instance(PROJECTS[n % len(PROJECTS)]))
            for n in range(scenario.bystanders)
        }
        before = fake.instance_ids()
        env = endpoint_environ(
            fake.url,
            # What the DELETE path tells (the read before it: test_guards.py).
            MODELARTS_CLEANUP_PROTECT_TAGS="[]",
            MODELARTS_CLEANUP_MAX_DELETIONS=str(scenario.max_deletions),
            MODELARTS_CLEANUP_CONCURRENCY=str(scenario.concurrency),
            MODELARTS_CLEANUP_MAX_ATTEMPTS=str(scenario.max_attempts),
            MODELARTS_CLEANUP_PROTECTED_INSTANCES=",".join(
                instance_id(i) for i in sorted(scenario.protected)
            ),
            MODELARTS_CLEANUP_ALLOWED_PROJECTS=json.dumps(
                [PROJECTS[p] for p in sorted(scenario.allowed_projects)]
            ),
        )
        if scenario.dry_run == "setting":
            env["MODELARTS_CLEANUP_DRY_RUN"] = "true"
        payload: dict[str, Any] = {
            "targets": [
                dict(zip(("project_id", "instance_id"), key(scenario, i), strict=True))
                for i in scenario.targets
            ]
        }
        if scenario.dry_run == "payload":
            payload["dry_run"] = True
        report = run_function(
            json.dumps(payload),
            None,
            environ=env,
            log_stream=io.StringIO(),
            deadline_seconds=scenario.budget,
            force_dry_run=scenario.dry_run == "flag",
            clock=time_,
            sleep=time_.sleep,
        )
        seen = {
            "before": before,
            "after": fake.instance_ids(),
            "bystanders": bystanders,
            "requests": fake.requests,
        }
    return report, seen


def expected_status(counts: Counter[str], refused_run: bool) -> str:
    """DESIGN.md's rule, written out on its own."""
    if refused_run:
        return "refused"
    failed, unfinished = counts["failed"], counts["failed"] + counts["not_attempted"]
    if unfinished == 0:
        return "succeeded"
    acted = counts["deleted"] + counts["already_absent"] + counts["failed"] + counts["would_delete"]
    if acted and failed == acted and counts["not_attempted"] == 0:
        return "failed"
    return "partial"


def check(scenario: Scenario, report: dict[str, Any], seen: dict[str, Any]) -> Counter[str]:
    distinct = list(dict.fromkeys(key(scenario, i) for i in scenario.targets))
    slot_of = {key(scenario, i): i for i in scenario.targets}
    results = report["results"]

    # Every distinct target exactly once, in payload order; the counts add up.
    assert [(r["project_id"], r["instance_id"]) for r in results] == distinct
    counts = Counter(r["outcome"] for r in results)
    assert report["counts"] == {o: counts[o] for o in OUTCOMES}
    assert sum(report["counts"].values()) == len(distinct)
    failed = [r for r in results if r["outcome"] == "failed"]
    out_of_time = [r for r in failed if r["reason"] == "deadline"]
    assert report["failed_by"] == {
        "error": len(failed) - len(out_of_time),
        "deadline": len(out_of_time),
    }
    # Answers lost: cut by the deadline, or lost otherwise (AnswerLost) with none since.
    assert report["answers_lost"] == sum(
        (r["reason"], r["error_code"]) in (("deadline", "DeadlineExceeded"), (None, "AnswerLost"))
        for r in failed
    )

    # Policy and the cap, decided before any request.
    allowed = {PROJECTS[p] for p in scenario.allowed_projects}
    reasons: dict[tuple[str, str], str | None] = {}
    for target in distinct:
        if slot_of[target] in scenario.protected:
            reasons[target] = "protected"
        elif allowed and target[0] not in allowed:
            reasons[target] = "project_not_allowed"
        else:
            reasons[target] = None
    eligible = [t for t in distinct if reasons[t] is None]
    refused_run = len(eligible) > scenario.max_deletions
    dry_run = scenario.dry_run is not None
    assert report["dry_run"] is dry_run
    for result in results:
        target = (result["project_id"], result["instance_id"])
        reason = reasons[target] or ("max_deletions_exceeded" if refused_run else None)
        if reason is not None:
            assert (result["outcome"], result["reason"]) == ("refused", reason)
        elif dry_run:
            # Each named target read: there or not, or the read failed or could not start.
            assert result["outcome"] in (
                "would_delete",
                "already_absent",
                "failed",
                "not_attempted",
            )
        else:
            assert result["outcome"] in ("deleted", "already_absent", "failed", "not_attempted")
    assert report["status"] == expected_status(counts, refused_run)

    # Conservation against the endpoint's state.
    before, after = seen["before"], seen["after"]
    assert seen["bystanders"] <= after  # nothing that was not named is touched
    assert before - after <= set(eligible)  # only eligible targets ever disappear
    for result in results:
        target = (result["project_id"], result["instance_id"])
        outcome = result["outcome"]
        if outcome == "deleted":
            assert target in before and target not in after
        elif outcome == "already_absent":
            assert target not in after
        elif target in before:
            assert target in after, f"{outcome} but gone: {result}"
        if target in before and target not in after:
            assert outcome in ("deleted", "already_absent")

    # Attempts are the DELETE requests the endpoint saw for that target, no more, no less.
    deletes = Counter(
        (r.path.split("/")[2], r.instance_id) for r in seen["requests"] if r.method == "DELETE"
    )
    touched = {(r.path.split("/")[2], r.instance_id) for r in seen["requests"]}
    written = {(r.path.split("/")[2], r.instance_id) for r in seen["requests"] if r.method != "GET"}
    for result in results:
        target = (result["project_id"], result["instance_id"])
        assert deletes[target] == result["attempts"], result
        if result["outcome"] in ("refused", "not_attempted"):
            assert target not in touched
        if result["outcome"] in ("refused", "would_delete", "not_attempted"):
            assert target not in written
            assert result["attempts"] == 0
        if result["outcome"] == "not_attempted":
            assert result["reason"] == "deadline"
        if result["outcome"] == "failed" and not dry_run:
            assert result["attempts"] >= 1, result  # failed means tried; untried is not_attempted
            # Why, in words, always; a code or status when there was one (not for a deadline).
            assert result["error_msg"], result
            assert result["error_code"] or result["http_status"] or result["reason"], result
    assert touched <= set(eligible)
    if refused_run:
        assert seen["requests"] == []
    if dry_run:  # reads only
        assert {r.method for r in seen["requests"]} <= {"GET"}
    if scenario.budget is None:
        assert counts["not_attempted"] == 0
    return counts


def test_every_target_is_told_once_and_the_report_matches_the_endpoint() -> None:
    ran: Counter[str] = Counter()

    @whole_runs(MAX_EXAMPLES)
    @given(scenarios())
    def conservation(scenario: Scenario) -> None:
        report, seen = run_scenario(scenario)
        note(f"report status {report['status']}, counts {report['counts']}")
        counts = check(scenario, report, seen)
        ran["examples"] += 1
        ran["targets"] += len(report["results"])
        for outcome, n in counts.items():
            if n:
                ran[f"with {outcome}"] += 1
        ran[f"status {report['status']}"] += 1
        if len(set(scenario.targets)) < len(scenario.targets):
            ran["with duplicates"] += 1
        event(f"status {report['status']}")
        if counts["not_attempted"]:
            event("the deadline cut the batch")

    conservation()

    print(
        f"conservation: {ran['examples']} examples, {ran['targets']} targets; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(ran.items()) if k not in ("examples", "targets"))
    )
    # The generator must reach every corner the property speaks about, or it proves little.
    assert ran["examples"] == MAX_EXAMPLES
    for corner in (
        "with not_attempted",
        "with failed",
        "with deleted",
        "with already_absent",
        "with would_delete",
        "with refused",
        "with duplicates",
        "status refused",
        "status partial",
        "status succeeded",
    ):
        assert ran[corner] > 0, corner
