"""Confirmed deletions: deleted instances are read again until gone, within
MODELARTS_CLEANUP_CONFIRM_SECONDS and the deadline; one that fails afterwards is a failure."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from modelarts_cleanup.cleanup.confirmation import confirm
from modelarts_cleanup.cleanup.report import Outcome, Result
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import AnswerLost, ApiError, DeadlineExceeded
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import FakeTime, endpoint_environ, local_endpoint

P = "ed43aef64dff4e5c81cb84b71adcb3fd"


def run(
    fake: FakeModelArts, clock: FakeTime, *ids: str, log: io.StringIO | None = None, **env: Any
) -> dict[str, Any]:
    # Named targets straight to DELETE (no guard read first): the request counts here are the
    # DELETE's and the confirmation's own.
    env.setdefault("MODELARTS_CLEANUP_PROTECT_TAGS", "[]")
    environ = endpoint_environ(fake.url, **env)
    if "MODELARTS_CLEANUP_CONFIRM_SECONDS" not in env:
        del environ["MODELARTS_CLEANUP_CONFIRM_SECONDS"]  # the default, as deployed
    deadline = environ.pop("deadline", None)
    return run_function(
        {"targets": [{"project_id": P, "instance_id": i} for i in ids]},
        None,
        environ=environ,
        log_stream=log or io.StringIO(),
        clock=clock,
        sleep=clock.sleep,
        deadline_seconds=None if deadline is None else float(deadline),
    )


def reads(fake: FakeModelArts) -> int:
    return sum(1 for r in fake.requests if r.method == "GET")


def test_deletions_are_read_again_until_gone_by_default() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(delete_seconds=5, clock=clock) as fake:
        ids = [fake.add_instance(P) for _ in range(3)]
        report = run(fake, clock, *ids)
        assert [(r["outcome"], r["confirmed"]) for r in report["results"]] == [
            ("deleted", True)
        ] * 3
        assert report["deletions_confirmed"] == 3
        assert report["status"] == "succeeded"
        # At once (DELETING), then after 1, 2 and 4 seconds: gone at 7 s.
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert reads(fake) == 4 * 3
        assert fake.instance_ids(P) == set()


def test_a_deletion_that_fails_after_it_was_accepted_is_a_failure() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(delete_seconds=3, clock=clock) as fake:
        failing, fine = fake.add_instance(P), fake.add_instance(P)
        fake.add_fault(Fault("failed_delete"), instance_id=failing)
        log = io.StringIO()
        report = run(fake, clock, failing, fine, log=log)
        bad, good = report["results"]
        assert (bad["outcome"], bad["reason"], bad["instance_status"]) == (
            "failed",
            "delete_failed",
            "DELETE_FAILED",
        )
        assert "DELETE_FAILED" in bad["error_msg"]
        assert (bad["http_status"], bad["attempts"], bad["confirmed"]) == (200, 1, None)
        assert (good["outcome"], good["confirmed"]) == ("deleted", True)
        assert (report["status"], report["failed_by"]) == ("partial", {"error": 1, "deadline": 0})
        assert report["deletions_confirmed"] == 1
        lines = [json.loads(line) for line in log.getvalue().splitlines()]
        said = [(x["message"], x.get("reason")) for x in lines if x.get("instance_id") == failing]
        assert said == [(f"{failing}: deleted", None), (f"{failing}: failed", "delete_failed")]
        (summary,) = [x for x in lines if x["message"] == "deletions confirmed"]
        assert (summary["confirmed"], summary["unconfirmed"], summary["delete_failed"]) == (1, 0, 1)
        assert summary["reads"] == reads(fake)
        (finished,) = [x for x in lines if x["message"] == "run finished"]
        assert finished["deletions_confirmed"] == 1


def test_a_deletion_still_under_way_when_time_runs_out_is_deleted_unconfirmed() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(clock=clock) as fake:
        stuck = fake.add_instance(P)
        fake.add_fault(Fault("stuck_delete"), instance_id=stuck)
        report = run(fake, clock, stuck, MODELARTS_CLEANUP_CONFIRM_SECONDS="10")
        (result,) = report["results"]
        assert (result["outcome"], result["confirmed"]) == ("deleted", False)
        assert (report["status"], report["deletions_confirmed"]) == ("succeeded", 0)
        # Reads at 0, 1, 3 and 7 s; the next would come at 15 s, past the 10 s allowed.
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert reads(fake) == 4


def test_confirming_never_reads_past_the_deadline() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(clock=clock) as fake:
        stuck = fake.add_instance(P)
        fake.add_fault(Fault("stuck_delete"), instance_id=stuck)
        # 30 s less the 2 s margin: the deadline is at 28 s, before the 60 s allowed.
        report = run(fake, clock, stuck, deadline="30")
        (result,) = report["results"]
        assert (result["outcome"], result["confirmed"]) == ("deleted", False)
        assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0]
        assert clock() <= 28


def test_confirming_off_reads_nothing() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(delete_seconds=5, clock=clock) as fake:
        instance = fake.add_instance(P)
        report = run(fake, clock, instance, MODELARTS_CLEANUP_CONFIRM_SECONDS="0")
        assert (report["results"][0]["confirmed"], report["deletions_confirmed"]) == (None, 0)
        assert (reads(fake), clock.sleeps) == (0, [])


def test_a_dry_run_and_an_absent_instance_are_not_read_again() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(clock=clock) as fake:
        instance = fake.add_instance(P)
        missing = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
        dry = run(fake, clock, instance, MODELARTS_CLEANUP_DRY_RUN="true")
        absent = run(fake, clock, missing)
        assert dry["results"][0]["outcome"] == "would_delete"
        assert absent["results"][0]["outcome"] == "already_absent"
        # One read in all: the dry run's of its named target (to say what a run would do).
        # Nothing is read again to confirm: neither run deleted anything.
        assert reads(fake) == 1


# confirm() on its own: scripted reads


def deleted(n: int) -> Result:
    return Result(P, f"6fa459ea-ee8a-3ca4-894e-db77e16035{n:02d}", Outcome.DELETED)


class Reads:
    """Each instance's successive read answers (a status, None for gone, or an error)."""

    def __init__(self, answers: Mapping[str, list[object]]) -> None:
        self.answers: dict[str, Iterator[object]] = {k: iter(v) for k, v in answers.items()}
        self.calls: list[str] = []
        self.deadlines: list[float | None] = []
        self.threads: list[threading.Thread] = []

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        self.calls.append(instance_id)
        self.deadlines.append(deadline)
        self.threads.append(threading.current_thread())
        answer = next(self.answers[instance_id])
        if isinstance(answer, ApiError):
            raise answer
        return None if answer is None else {"id": instance_id, "status": answer}


@pytest.mark.parametrize("concurrency", [1, 4])
def test_each_deletion_ends_confirmed_failed_or_unconfirmed(concurrency: int) -> None:
    a, b, c, d = (deleted(n) for n in range(4))
    kept = Result(P, "6fa459ea-ee8a-3ca4-894e-db77e1603599", Outcome.REFUSED, reason="protected")
    busy = ApiError("busy", http_status=503, error_code="ModelArts.6101", retryable=True)
    lost = AnswerLost("lost", error_code="DeadlineExceeded", attempts=1)
    client = Reads(
        {
            a.instance_id: ["DELETING", busy, None],
            b.instance_id: ["ERROR"],
            c.instance_id: [lost, "DELETING", "DELETING", "DELETING"],
            d.instance_id: ["DELETE_FAILED"],
        }
    )
    clock = FakeTime(0.0)
    done = confirm(
        (a, kept, b, c, d),
        client,
        seconds=5,
        deadline=None,
        concurrency=concurrency,
        clock=clock,
        sleep=clock.sleep,
    )
    told = [(r.outcome, r.reason, r.confirmed, r.instance_status) for r in done.results]
    assert told == [
        (Outcome.DELETED, None, True, None),
        (Outcome.REFUSED, "protected", None, None),
        (Outcome.FAILED, "delete_failed", None, "ERROR"),
        (Outcome.DELETED, None, False, None),
        (Outcome.FAILED, "delete_failed", None, "DELETE_FAILED"),
    ]
    assert clock.sleeps == [1.0, 2.0]  # the next round would start at 7 s, past 5
    assert done.reads == len(client.calls) == 4 + 2 + 2
    assert done.seconds == 3.0


def test_a_read_the_deadline_keeps_from_starting_ends_confirming() -> None:
    a, b = deleted(1), deleted(2)
    no_time = DeadlineExceeded("no time", attempts=0)
    client = Reads({a.instance_id: ["DELETING", no_time], b.instance_id: ["DELETING", None]})
    clock = FakeTime(0.0)
    done = confirm(
        (a, b), client, seconds=60, deadline=100, concurrency=1, clock=clock, sleep=clock.sleep
    )
    assert [r.confirmed for r in done.results] == [False, True]
    assert clock.sleeps == [1.0]
    assert done.reads == 3  # the one that could not start is not counted


def test_backoff_is_capped_and_bounded_by_the_deadline() -> None:
    a = deleted(1)
    client = Reads({a.instance_id: ["DELETING"] * 20})
    clock = FakeTime(0.0)
    done = confirm(
        (a,), client, seconds=60, deadline=40, concurrency=8, clock=clock, sleep=clock.sleep
    )
    assert done.results[0].confirmed is False
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # reads at 0..35 s; 45 > 40


def test_nothing_deleted_or_no_time_allowed_reads_nothing() -> None:
    client = Reads({})
    kept = Result(P, "6fa459ea-ee8a-3ca4-894e-db77e1603599", Outcome.FAILED)
    for results, seconds in (((kept,), 60.0), ((deleted(1),), 0.0)):
        done = confirm(results, client, seconds=seconds, deadline=None, concurrency=1)
        assert (done.results, done.reads, done.seconds) == (results, 0, 0.0)
    assert client.calls == []


def test_a_read_refused_for_good_is_not_asked_again() -> None:
    a, b = deleted(1), deleted(2)
    denied = ApiError("denied", http_status=403, error_code="ModelArts.0108", retryable=False)
    client = Reads({a.instance_id: [denied], b.instance_id: ["DELETING", None]})
    clock = FakeTime(0.0)
    done = confirm(
        (a, b), client, seconds=60, deadline=None, concurrency=1, clock=clock, sleep=clock.sleep
    )
    assert [r.confirmed for r in done.results] == [False, True]
    assert client.calls == [a.instance_id, b.instance_id, b.instance_id]


def test_an_identity_that_may_not_read_confirms_nothing_and_waits_for_nothing() -> None:
    clock = FakeTime(0.0)
    with local_endpoint(clock=clock) as fake:
        instance = fake.add_instance(P)
        fake.permissions = {"modelarts:notebook:delete"}
        report = run(fake, clock, instance)
        (result,) = report["results"]
        assert (result["outcome"], result["confirmed"]) == ("deleted", False)
        assert (clock.sleeps, reads(fake)) == ([], 1)


def test_confirming_for_less_than_a_second_still_reads_once() -> None:
    a = deleted(1)
    client = Reads({a.instance_id: [None]})
    clock = FakeTime(0.0)
    done = confirm(
        (a,), client, seconds=0.5, deadline=None, concurrency=1, clock=clock, sleep=clock.sleep
    )
    assert (done.results[0].confirmed, done.reads, client.calls) == (True, 1, [a.instance_id])


def test_a_round_that_starts_exactly_when_time_runs_out_still_reads() -> None:
    a = deleted(1)
    client = Reads({a.instance_id: ["DELETING", None]})
    clock = FakeTime(500.0)
    done = confirm(
        (a,), client, seconds=1, deadline=None, concurrency=1, clock=clock, sleep=clock.sleep
    )
    assert (done.results[0].confirmed, done.reads, clock.sleeps) == (True, 2, [1.0])
    assert done.seconds == 1.0  # measured from when confirming began, not from the clock's zero


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_read_is_bounded_by_the_runs_deadline(concurrency: int) -> None:
    a, b = deleted(1), deleted(2)
    client = Reads({a.instance_id: ["DELETING", None], b.instance_id: [None]})
    clock = FakeTime(0.0)
    confirm(
        (a, b),
        client,
        seconds=60,
        deadline=42.5,
        concurrency=concurrency,
        clock=clock,
        sleep=clock.sleep,
    )
    assert client.deadlines == [42.5, 42.5, 42.5]


def test_a_read_the_deadline_cut_after_it_was_sent_counts_and_is_asked_again() -> None:
    a = deleted(1)
    cut = DeadlineExceeded("cut between retries", attempts=2)
    client = Reads({a.instance_id: [cut, None]})
    clock = FakeTime(0.0)
    done = confirm(
        (a,), client, seconds=60, deadline=100, concurrency=1, clock=clock, sleep=clock.sleep
    )
    assert (done.results[0].confirmed, done.reads, clock.sleeps) == (True, 2, [1.0])


@pytest.mark.parametrize("status", [["DELETE_FAILED"], {"phase": "ERROR"}, 7, ""])
def test_a_status_that_is_not_text_is_read_as_unknown_and_asked_again(status: object) -> None:
    a = deleted(1)
    client = Reads({a.instance_id: [status, None]})
    clock = FakeTime(0.0)
    done = confirm(
        (a,), client, seconds=60, deadline=None, concurrency=1, clock=clock, sleep=clock.sleep
    )
    (result,) = done.results
    assert (result.outcome, result.confirmed, done.reads) == (Outcome.DELETED, True, 2)


def test_each_regions_reads_take_turns_so_workers_spread_over_the_regions() -> None:
    north = [replace(deleted(n), region="cn-north-4") for n in range(3)]
    south = [replace(deleted(n), region="ap-southeast-3") for n in range(3, 5)]
    plain = deleted(5)
    everyone = (*north, *south, plain)
    client = Reads({r.instance_id: [None] for r in everyone})
    clock = FakeTime(0.0)
    confirm(everyone, client, seconds=5, deadline=None, concurrency=1, clock=clock)
    ids = [r.instance_id for r in (north[0], south[0], plain, north[1], south[1], north[2])]
    assert client.calls == ids


def test_one_read_at_a_time_goes_out_from_the_callers_thread_in_order() -> None:
    a, b, c = deleted(1), deleted(2), deleted(3)
    client = Reads({r.instance_id: [None] for r in (a, b, c)})
    confirm((a, b, c), client, seconds=60, deadline=None, concurrency=1)
    assert client.calls == [a.instance_id, b.instance_id, c.instance_id]
    assert client.threads == [threading.current_thread()] * 3


class Overlapping:
    """Reads that each wait (briefly) for a third to be in flight, counting the most at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.changed = threading.Condition()

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> None:
        with self.changed:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.inside >= 3, timeout=0.2)
            self.inside -= 1


def test_concurrency_reads_that_many_at_once_and_no_more() -> None:
    client = Overlapping()
    done = confirm(
        tuple(deleted(n) for n in range(5)), client, seconds=60, deadline=None, concurrency=2
    )
    assert [r.confirmed for r in done.results] == [True] * 5
    assert client.most == 2
