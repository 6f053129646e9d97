"""Truth at the deadline: a run starts only what can finish, and names an answer it lost.

The scenario from the issue, as a user runs it: named targets, an endpoint that answers each
request after a second, two requests at a time, `invoke --deadline 8`. Whatever the machine's
speed, the report must agree with the endpoint once the endpoint has finished what it was sent.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.testing import FakeModelArts
from tests.support import endpoint_environ, invoke, local_endpoint

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
CONCURRENCY = 2
DEADLINE = 8.0


def check_against_the_endpoint(
    report: dict[str, Any], ids: list[str], left: set[str], touched: set[str]
) -> None:
    """What every run cut by its deadline must satisfy, whatever was or was not reached."""
    results = report["results"]
    assert [r["instance_id"] for r in results] == ids  # each target once, in payload order
    for result in results:
        iid, outcome = result["instance_id"], result["outcome"]
        if outcome == "deleted":
            assert iid not in left, result
        if outcome == "not_attempted":
            assert iid not in touched, result  # nothing that changes it was sent: certain
            assert (result["attempts"], result["reason"]) == (0, "deadline")
        if outcome in ("failed", "not_attempted") and iid not in left:
            # Only a request the deadline cut may have gone through unseen, and it says so.
            assert (result["reason"], result["error_code"]) == ("deadline", "DeadlineExceeded")
    cut = [r for r in results if r["outcome"] == "failed" and r["reason"] == "deadline"]
    assert len(cut) <= CONCURRENCY  # only requests in flight when the deadline came
    # Counted apart: the API refused nothing here; whatever failed, failed for the deadline.
    assert report["failed_by"] == {"error": 0, "deadline": len(cut)}
    lost = [r for r in cut if r["error_code"] == "DeadlineExceeded"]
    assert report["answers_lost"] == len(lost)
    for result in lost:
        assert "was sent" in result["error_msg"]
        assert "effect is unknown" in result["error_msg"]


@pytest.mark.parametrize("count", [12, 20])
def test_a_run_against_the_deadline_reports_only_what_it_knows(count: int) -> None:
    with local_endpoint(latency=1.0) as slow:
        ids = [slow.add_instance(PROJECT) for _ in range(count)]
        event = {"targets": [{"project_id": PROJECT, "instance_id": i} for i in ids]}
        began = time.monotonic()
        done = invoke(
            slow,
            "--event",
            "-",
            "--deadline",
            f"{DEADLINE:g}",
            stdin=json.dumps(event),
            MODELARTS_CLEANUP_CONCURRENCY=str(CONCURRENCY),
        )
        returned = time.monotonic() - began
        # A DELETE the client gave up on is still carried out when its second is over.
        assert slow.wait_until_idle(timeout=30)
        left = {i for _, i in slow.instance_ids(PROJECT)}
        # What could change a target: anything but the read before its delete (protect tags).
        touched = {
            r.instance_id for r in slow.requests if r.instance_id is not None and r.method != "GET"
        }

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    summary = json.loads(done.stderr.splitlines()[-1])
    assert summary["message"] == "run finished"
    assert (summary["counts"], summary["failed_by"], summary["answers_lost"]) == (
        report["counts"],
        report["failed_by"],
        report["answers_lost"],
    )
    counts = report["counts"]
    print(
        f"{count} targets: {counts}, cut: "
        f"{sum(r['reason'] == 'deadline' for r in report['results'] if r['outcome'] == 'failed')}"
        f", returned after {returned:.2f}s, duration_ms {report['duration_ms']}"
    )
    check_against_the_endpoint(report, ids, left, touched)
    assert counts["deleted"] >= CONCURRENCY  # it did get on with the work
    assert counts["not_attempted"] + counts["failed"] >= CONCURRENCY  # 6 s cannot take 6 rounds
    assert report["status"] == "partial"
    # Within the deadline; the process start and exit, outside the run's clock, get slack.
    assert report["duration_ms"] <= DEADLINE * 1000
    assert returned < DEADLINE + 5


def test_a_run_too_short_for_a_first_request_sends_nothing_and_says_why(
    fake: FakeModelArts,
) -> None:
    ids = [fake.add_instance(PROJECT) for _ in range(3)]
    log = io.StringIO()
    report = run_function(
        {"targets": [{"project_id": PROJECT, "instance_id": i} for i in ids]},
        None,
        environ=endpoint_environ(fake.url),  # the connect timeout is 5 s
        log_stream=log,
        deadline_seconds=4.0,  # 3 s to run, less than 5 s and a margin
    )
    assert [r["outcome"] for r in report["results"]] == ["not_attempted"] * 3
    assert fake.requests == []
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    (warning,) = [line for line in lines if "no request will start" in line["message"]]
    assert warning["level"] == "WARNING"
    assert "MODELARTS_CLEANUP_CONNECT_TIMEOUT" in warning["message"]
