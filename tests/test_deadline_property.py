"""Truth at the deadline, as a property: whatever the latencies, stalls, concurrency and deadline,
the report never says more than the endpoint's state bears out.

Random batches meet random latency, slow, stalled and dripping answers, slow connections,
transient and permanent errors, instances that must be stopped first, random concurrency and
random deadlines, through the whole function. The endpoint is served in process on a fake clock
(`tests.in_process`), so hundreds of runs take seconds; the end-to-end tests do the same over
real sockets. After each run, the report is checked against the endpoint's state and requests:

- `deleted` implies gone; `not_attempted` implies no request at all for it;
- `failed` without reason `deadline` implies still there (every error here leaves it so), unless
  its answer was lost (`AnswerLost`: the effect is unknown, and says so);
- a target that went without a confirmed deletion says why: reason `deadline`, `DeadlineExceeded`,
  or `AnswerLost`;
- every target is reported once, and the counts by cause add up;
- at most one answer per worker is lost to the deadline.
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
from tests.in_process import URL, InProcessAdapter, session_factory
from tests.support import AK, SK, FakeTime, endpoint_environ, whole_runs

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
MAX_EXAMPLES = 250
LOST = "DeadlineExceeded"


def instance_id(n: int) -> str:
    return str(uuid.UUID(int=(0xDEAD << 96) + n))


# What can happen to one instance's requests: slow to answer (then carried out), answered at once
# but with the body held back or dripping in, refused for a while or for good, dropped.
FAULTS: tuple[Fault | None, ...] = (
    None,
    None,
    Fault("slow", delay=0.7),
    Fault("slow", delay=4.0, times=None),
    Fault("slow", delay=40.0),
    Fault("stall", delay=3.0),
    Fault("stall", delay=40.0, times=None),
    Fault("slow_body", delay=2.0),
    Fault("slow_body", delay=25.0, times=None),
    Fault("status", status=503),
    Fault("status", status=429, retry_after="2"),
    Fault("status", status=403, error_code="ModelArts.0108", times=None),
    Fault("reset"),
    Fault("html", status=200, times=None),  # never confirmed: failed, and still there
)


@dataclass(frozen=True)
class Slot:
    present: bool
    running: bool
    fault: Fault | None
    connect_delay: float


@dataclass(frozen=True)
class Scenario:
    slots: tuple[Slot, ...]
    latency: float
    concurrency: int
    budget: float  # seconds the run is given; its deadline is this less the margin
    connect_timeout: float
    max_attempts: int
    stop_before_delete: bool
    stop_seconds: float


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 14))
    slots = tuple(
        Slot(
            present=draw(st.sampled_from([True, True, True, False])),
            running=draw(st.booleans()),
            fault=draw(st.sampled_from(FAULTS)),
            connect_delay=draw(st.sampled_from([0.0, 0.0, 0.0, 0.3, 50.0])),
        )
        for _ in range(count)
    )
    return Scenario(
        slots=slots,
        latency=draw(st.sampled_from([0.0, 0.05, 0.4, 1.0, 2.5])),
        concurrency=draw(st.sampled_from([1, 2, 4])),
        # Read timeouts (30 s) are then always shortened by the deadline: every answer the
        # deadline does not cut comes back.
        budget=draw(st.floats(1.0, 24.0)),
        connect_timeout=draw(st.sampled_from([0.5, 2.0])),
        max_attempts=draw(st.integers(1, 3)),
        stop_before_delete=draw(st.booleans()),
        stop_seconds=draw(st.sampled_from([0.0, 1.5, 6.0])),
    )


def run_scenario(scenario: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    time_ = FakeTime(0.0)
    fake = FakeModelArts(
        access_key=AK,
        secret_key=SK,
        latency=scenario.latency,
        clock=time_,
        sleep=time_.sleep,
        stop_before_delete=scenario.stop_before_delete,
        stop_seconds=scenario.stop_seconds,
    )
    ids = [instance_id(n) for n in range(len(scenario.slots))]
    for iid, slot in zip(ids, scenario.slots, strict=True):
        if slot.present:
            fake.add_instance(PROJECT, iid, status="RUNNING" if slot.running else "STOPPED")
        if slot.fault is not None:
            fake.add_fault(slot.fault, instance_id=iid)
    before = {i for _, i in fake.instance_ids()}
    adapter = InProcessAdapter(
        fake, time_, {iid: s.connect_delay for iid, s in zip(ids, scenario.slots, strict=True)}
    )
    report = run_function(
        {"targets": [{"project_id": PROJECT, "instance_id": i} for i in ids]},
        None,
        environ=endpoint_environ(
            URL,
            MODELARTS_CLEANUP_PROTECT_TAGS="[]",  # the DELETE path (the read: test_guards.py)
            MODELARTS_CLEANUP_CONCURRENCY=str(scenario.concurrency),
            MODELARTS_CLEANUP_MAX_ATTEMPTS=str(scenario.max_attempts),
            MODELARTS_CLEANUP_CONNECT_TIMEOUT=str(scenario.connect_timeout),
        ),
        log_stream=io.StringIO(),
        deadline_seconds=scenario.budget,
        session_factory=session_factory(adapter),
        clock=time_,
        sleep=time_.sleep,
    )
    seen = {
        "ids": ids,
        "before": before,
        "after": {i for _, i in fake.instance_ids()},
        "requests": fake.requests,
    }
    return report, seen


def check(scenario: Scenario, report: dict[str, Any], seen: dict[str, Any]) -> Counter[str]:
    results = report["results"]
    before, after = seen["before"], seen["after"]
    assert [r["instance_id"] for r in results] == seen["ids"]  # each once, in payload order
    counts = Counter(r["outcome"] for r in results)
    assert sum(report["counts"].values()) == len(results)
    assert set(counts) <= {"deleted", "already_absent", "failed", "not_attempted"}
    touched = Counter(r.instance_id for r in seen["requests"])
    deletes = Counter(r.instance_id for r in seen["requests"] if r.method == "DELETE")
    for result in results:
        iid, outcome, reason = result["instance_id"], result["outcome"], result["reason"]
        slot = scenario.slots[seen["ids"].index(iid)]
        if outcome == "deleted":
            assert iid in before and iid not in after, result
        if outcome == "already_absent":
            assert iid not in after, result
        if outcome == "not_attempted":
            assert touched[iid] == 0, result  # nothing was sent: certain
            assert (result["attempts"], reason) == (0, "deadline")
        if outcome == "failed":
            assert result["error_msg"], result
            answer_lost = result["error_code"] == "AnswerLost"
            if reason != "deadline" and not answer_lost and iid in before:
                assert iid in after, f"failed, not for the deadline, but gone: {result}"
            if answer_lost:
                assert "its effect is unknown" in result["error_msg"]
            if result["error_code"] == LOST:
                assert reason == "deadline"
                assert "was sent" in result["error_msg"]
        if iid in before and iid not in after and outcome != "deleted":
            # Gone without a confirmed deletion: only an answer lost may do that (cut by the
            # deadline, or lost otherwise with no answer since).
            assert outcome == "already_absent" or (reason, result["error_code"]) in (
                ("deadline", LOST),
                (None, "AnswerLost"),
            ), result
        # Attempts are DELETE requests; a try that never connected is counted but sent nothing.
        if slot.connect_delay <= scenario.connect_timeout:
            assert result["attempts"] == deletes[iid], result
        else:
            assert result["attempts"] >= deletes[iid], result
    failed = [r for r in results if r["outcome"] == "failed"]
    out_of_time = [r for r in failed if r["reason"] == "deadline"]
    lost = [r for r in out_of_time if r["error_code"] == LOST]
    assert report["failed_by"] == {
        "error": len(failed) - len(out_of_time),
        "deadline": len(out_of_time),
    }
    lost_otherwise = [r for r in failed if (r["reason"], r["error_code"]) == (None, "AnswerLost")]
    assert report["answers_lost"] == len(lost) + len(lost_otherwise)
    assert len(lost) <= scenario.concurrency  # once one is lost, the deadline has come
    if not scenario.stop_before_delete:
        assert len(out_of_time) <= scenario.concurrency
    return counts


def test_the_report_never_says_more_than_the_endpoint_bears_out() -> None:
    ran: Counter[str] = Counter()

    @whole_runs(MAX_EXAMPLES)
    @given(scenarios())
    def truthful(scenario: Scenario) -> None:
        report, seen = run_scenario(scenario)
        note(json.dumps({k: report[k] for k in ("status", "counts", "failed_by")}))
        counts = check(scenario, report, seen)
        ran["examples"] += 1
        for outcome, n in counts.items():
            ran[f"with {outcome}"] += bool(n)
        if report["answers_lost"]:
            ran["with an answer lost"] += 1
            lost_gone = [
                r
                for r in report["results"]
                if r["error_code"] == LOST and r["instance_id"] not in seen["after"]
            ]
            ran["with a lost answer that went through"] += bool(lost_gone)
        if report["failed_by"]["error"]:
            ran["with a refusal"] += 1
        failed = [r for r in report["results"] if r["outcome"] == "failed"]
        if any(r["reason"] == "deadline" and r["error_code"] != LOST for r in failed):
            ran["with stop-then-delete cut short"] += 1
        event(f"status {report['status']}")

    truthful()

    print(
        f"deadline property: {ran['examples']} examples; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(ran.items()) if k != "examples")
    )
    # The generator must reach the corners the property speaks about, or it proves little.
    assert ran["examples"] == MAX_EXAMPLES
    for corner in (
        "with deleted",
        "with already_absent",
        "with not_attempted",
        "with failed",
        "with an answer lost",
        "with a lost answer that went through",
        "with a refusal",
    ):
        assert ran[corner] > 0, corner
