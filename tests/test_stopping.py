"""Instances that must be stopped first: stop, wait boundedly, then delete; never hang."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from modelarts_cleanup.cleanup.execution import delete_one, execute
from modelarts_cleanup.cleanup.planning import Policy, make_plan
from modelarts_cleanup.cleanup.report import JsonLog, Outcome, Result
from modelarts_cleanup.cleanup.stopping import StopFailed, StopPolicy, settle
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.payload import Target
from modelarts_cleanup.exceptions import AnswerLost, ApiError, DeadlineExceeded
from modelarts_cleanup.vocabulary import TRANSITIONAL_STATUSES
from tests.support import FakeTime, endpoint_environ, local_endpoint

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
I = "6fa459ea-ee8a-3ca4-894e-db77e160355e"  # noqa: E741
TARGET = Target(project_id=P, instance_id=I)


@dataclass(frozen=True)
class Deletion:
    outcome: str = "deleted"
    http_status: int = 200
    request_id: str | None = "r"
    attempts: int = 1
    status: str | None = "DELETING"


def not_now(code: str = "ModelArts.6304") -> ApiError:
    return ApiError("not now", http_status=400, error_code=code, error_msg="stop first", attempts=1)


class Instance:
    """Scripted answers: statuses seen by successive GETs (or what they raise), delete answers
    in order."""

    def __init__(
        self,
        statuses: list[str | ApiError | None],
        deletes: list[Deletion | Exception],
        stop_error: ApiError | None = None,
    ) -> None:
        self.statuses: Iterator[str | ApiError | None] = iter(statuses)
        self.last: str | None = None
        self.deletes = iter(deletes)
        self.stop_error = stop_error
        self.calls: list[str] = []
        self.deadlines: set[float | None] = set()  # every deadline a request was given

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        self.calls.append("get")
        self.deadlines.add(deadline)
        answer = next(self.statuses, self.last)
        if isinstance(answer, ApiError):
            raise answer
        self.last = answer
        return None if self.last is None else {"id": instance_id, "status": self.last}

    def stop_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> None:
        self.calls.append("stop")
        self.deadlines.add(deadline)
        if self.stop_error is not None:
            raise self.stop_error

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> Deletion:
        self.calls.append("delete")
        self.deadlines.add(deadline)
        answer = next(self.deletes)
        if isinstance(answer, Exception):
            raise answer
        return answer


def stop_then_delete(
    instance: Instance,
    *,
    clock: FakeTime | None = None,
    deadline: float | None = None,
    **options: Any,
) -> Result:
    """`delete_one` of TARGET on a clock (from 0 unless given) that only sleeping moves."""
    clock = clock or FakeTime(0.0)
    return delete_one(
        instance, TARGET, deadline=deadline, clock=clock, sleep=clock.sleep, **options
    )


def test_running_instance_is_stopped_waited_for_then_deleted() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPING", "STOPPING", "STOPPED"], [not_now(), Deletion()])
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.DELETED
    assert result.attempts == 2
    assert instance.calls == ["delete", "get", "stop", "get", "get", "get", "delete"]
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_poll_backs_off_up_to_the_cap() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", *["STOPPING"] * 8, "STOPPED"], [])
    status = settle(
        instance,
        P,
        I,
        deadline=None,
        policy=StopPolicy(max_delay=5.0),
        clock=clock,
        sleep=clock.sleep,
    )
    assert status == "STOPPED"
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize("code", ["ModelArts.6306", "ModelArts.6308", "ModelArts.6357"])
def test_transitional_answers_are_waited_out_not_reported_as_failures(code: str) -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STARTING", "STOPPED"], [not_now(code), Deletion()])
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.DELETED
    assert "stop" not in instance.calls


def test_starting_instance_is_stopped_once_it_runs() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STARTING", "RUNNING", "STOPPING", "STOPPED"], [not_now(), Deletion()])
    assert (
        delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep).outcome
        is Outcome.DELETED
    )
    assert instance.calls.count("stop") == 1


@pytest.mark.parametrize("status", sorted(TRANSITIONAL_STATUSES))
def test_every_transitional_status_is_waited_out_before_deleting(status: str) -> None:
    clock = FakeTime(0.0)
    instance = Instance([status, status, "STOPPED"], [not_now("ModelArts.6306"), Deletion()])
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert (result.outcome, result.attempts) == (Outcome.DELETED, 2)
    assert instance.calls == ["delete", "get", "get", "get", "delete"]
    assert clock.sleeps == [1.0, 2.0]


def test_the_stop_is_sent_once_however_long_the_instance_stays_running() -> None:
    instance = Instance(["RUNNING", "RUNNING", "RUNNING", "STOPPED"], [not_now(), Deletion()])
    result = stop_then_delete(instance)
    assert result.outcome is Outcome.DELETED
    assert instance.calls == ["delete", "get", "stop", "get", "get", "get", "delete"]


def test_instance_gone_while_waiting_is_already_absent() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STARTING", "STARTING", None], [not_now("ModelArts.6357")])
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.ALREADY_ABSENT
    assert result.attempts == 1


@pytest.mark.parametrize("message", ["not authorised", None])
def test_refused_stop_is_a_failure_with_its_reason(message: str | None) -> None:
    clock = FakeTime(0.0)
    refusal = ApiError(
        "POST stop: HTTP 403",
        http_status=403,
        error_code="ModelArts.0108",
        error_msg=message,
        request_id="req-stop",
    )
    instance = Instance(["RUNNING"], [not_now()], stop_error=refusal)
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.FAILED
    assert (result.error_code, result.reason, result.http_status, result.request_id) == (
        "ModelArts.0108",
        "stop_failed",
        403,
        "req-stop",
    )
    assert result.error_msg == (message or "POST stop: HTTP 403")
    assert result.attempts == 1


def test_stop_answered_already_stopping_keeps_waiting() -> None:
    clock = FakeTime(0.0)
    instance = Instance(
        ["RUNNING", "STOPPED"], [not_now(), Deletion()], stop_error=not_now("ModelArts.6357")
    )
    assert (
        delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep).outcome
        is Outcome.DELETED
    )


def test_stop_that_never_finishes_fails_after_the_maximum_wait() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPING"], [not_now()])
    with pytest.raises(StopFailed, match="still STOPPING"):
        settle(
            instance,
            P,
            I,
            deadline=None,
            policy=StopPolicy(max_wait=60),
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now <= 60


def test_a_stop_that_outlasts_the_wait_fails_the_target_as_a_stop_timeout() -> None:
    clock = FakeTime(1000.0)
    instance = Instance(["RUNNING", "STOPPING"], [not_now()])
    result = stop_then_delete(instance, clock=clock, stop_policy=StopPolicy(max_wait=60))
    assert (result.outcome, result.reason, result.error_code) == (
        Outcome.FAILED,
        "stop_failed",
        "StopTimeout",
    )
    # Waited 1 + 2 + 4 + 8 + 4 x 10 s; another 10 would pass the 60 allowed.
    assert result.error_msg == "still STOPPING after waiting 55 s"
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert (result.attempts, result.instance_status) == (1, None)
    assert instance.calls.count("delete") == 1


def test_wait_never_crosses_the_deadline() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPING"], [not_now()])
    result = delete_one(instance, TARGET, deadline=20.0, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.FAILED
    assert (result.error_code, result.reason) == ("StopTimeout", "deadline")
    assert (result.instance_status, result.error_msg) == (
        "STOPPING",
        "still STOPPING when the run's deadline came",
    )
    assert clock.now <= 20.0


def test_the_wait_goes_on_while_a_poll_still_fits_before_the_deadline() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STOPPING"], [not_now()])
    result = delete_one(instance, TARGET, deadline=3.0, clock=clock, sleep=clock.sleep)
    # Read at 0, 1 and 3: the last poll lands on the deadline itself, not after it.
    assert clock.sleeps == [1.0, 2.0]
    assert instance.calls == ["delete", "get", "get", "get"]
    assert (result.reason, result.error_code) == ("deadline", "StopTimeout")


def test_every_request_of_stop_then_delete_is_bounded_by_the_run_deadline() -> None:
    instance = Instance(["RUNNING", "STOPPING", "STOPPED"], [not_now(), Deletion()])
    result = stop_then_delete(instance, deadline=100.0)
    assert result.outcome is Outcome.DELETED
    assert instance.calls == ["delete", "get", "stop", "get", "get", "delete"]
    assert instance.deadlines == {100.0}


# What the deadline leaves behind in stop-then-delete: the status it stopped at, when known.

NOT_STARTED = DeadlineExceeded("too late to start", attempts=0)


def lost(what: str) -> AnswerLost:
    return AnswerLost(
        f"{what}: lost",
        error_code="DeadlineExceeded",
        error_msg="the request was sent and the run's deadline cut its answer short",
        attempts=1,
    )


def cut_short(instance: Instance) -> tuple[Result, tuple[object, ...]]:
    """Stop-then-delete against a deadline; the result and what it says about the deadline."""
    result = stop_then_delete(instance, deadline=100.0)
    said = (result.outcome, result.reason, result.error_code, result.instance_status)
    return result, said


def test_a_stopped_instance_whose_delete_could_not_start_reports_it_stopped() -> None:
    instance = Instance(["RUNNING", "STOPPED"], [not_now(), NOT_STARTED])
    result, said = cut_short(instance)
    assert said == (Outcome.FAILED, "deadline", None, "STOPPED")
    assert (result.attempts, result.http_status) == (1, None)
    assert (
        result.error_msg == "the run's deadline came before the delete after stopping could start"
    )
    assert instance.calls == ["delete", "get", "stop", "get", "delete"]


def test_a_delete_after_stopping_whose_answer_was_lost_counts_both_deletes() -> None:
    instance = Instance(["RUNNING", "STOPPED"], [not_now(), lost("DELETE")])
    result, said = cut_short(instance)
    # Two DELETEs were sent: the second may have gone through, so nothing is "not attempted".
    assert said == (Outcome.FAILED, "deadline", "DeadlineExceeded", None)
    assert result.attempts == 2
    assert result.error_msg is not None
    assert result.error_msg.endswith("if it went through, the next run reports already_absent")
    assert instance.calls == ["delete", "get", "stop", "get", "delete"]


def test_a_running_instance_the_deadline_kept_from_being_stopped_reports_it_running() -> None:
    result, said = cut_short(Instance(["RUNNING"], [not_now()], stop_error=NOT_STARTED))
    assert said == (Outcome.FAILED, "deadline", "StopTimeout", "RUNNING")
    assert result.attempts == 1
    assert result.error_msg == "still RUNNING: the run's deadline came before it could be stopped"


def test_a_stop_whose_answer_was_lost_may_have_gone_through_and_says_so() -> None:
    result, said = cut_short(Instance(["RUNNING"], [not_now()], stop_error=lost("POST stop")))
    # No status: it may be stopping by now.
    assert said == (Outcome.FAILED, "deadline", "DeadlineExceeded", None)
    assert result.attempts == 1  # DELETE requests only
    assert result.error_msg == "the request was sent and the run's deadline cut its answer short"
    wordless = AnswerLost("POST stop: lost", error_code="DeadlineExceeded", attempts=1)
    result, _ = cut_short(Instance(["RUNNING"], [not_now()], stop_error=wordless))
    assert result.error_msg == "POST stop: lost"


@pytest.mark.parametrize("answer", [NOT_STARTED, lost("GET")], ids=["not started", "lost"])
def test_a_wait_the_deadline_cut_reports_the_last_status_read(answer: ApiError) -> None:
    result, said = cut_short(Instance(["RUNNING", "STOPPING", answer], [not_now()]))
    assert said == (Outcome.FAILED, "deadline", "StopTimeout", "STOPPING")
    assert result.error_msg == "still STOPPING when the run's deadline came"


def test_a_wait_whose_first_read_could_not_start_knows_no_status() -> None:
    instance = Instance([NOT_STARTED], [not_now()])
    result, said = cut_short(instance)
    assert said == (Outcome.FAILED, "deadline", "StopTimeout", None)
    assert result.error_msg == "not yet read when the run's deadline came"
    assert instance.calls == ["delete", "get"]


def test_a_read_answered_with_an_error_while_waiting_is_a_stop_failure() -> None:
    answered = DeadlineExceeded("late", attempts=1, http_status=503, error_code="ModelArts.6102")
    result, said = cut_short(Instance(["RUNNING", answered], [not_now()]))
    assert said == (Outcome.FAILED, "stop_failed", "ModelArts.6102", None)
    assert result.http_status == 503


def test_no_time_to_ask_about_a_selected_instance_again_stops_nothing() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING"], [not_now()])

    def too_late() -> str | None:
        raise NOT_STARTED

    result = delete_one(
        instance, TARGET, deadline=100.0, clock=clock, sleep=clock.sleep, before_stopping=too_late
    )
    assert (result.outcome, result.reason, result.error_code) == (Outcome.FAILED, "deadline", None)
    assert result.error_msg == "the run's deadline came before reading it again could start"
    assert instance.calls == ["delete"]


def test_deadline_during_wait_raises_deadline_exceeded() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STOPPING"], [])
    with pytest.raises(DeadlineExceeded):
        settle(instance, P, I, deadline=3.0, clock=clock, sleep=clock.sleep)


def test_instance_that_keeps_refusing_is_given_up_after_three_rounds() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["STOPPED"], [not_now(), not_now(), not_now()])
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "ModelArts.6304"
    assert result.attempts == 3
    assert instance.calls.count("delete") == 3


def test_other_errors_are_not_waited_on() -> None:
    clock = FakeTime(0.0)
    instance = Instance(
        [], [ApiError("bad", http_status=400, error_code="ModelArts.0104", attempts=1)]
    )
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert result.outcome is Outcome.FAILED
    assert instance.calls == ["delete"]


# End to end: the local endpoint refuses to delete running instances, for both generations.


@pytest.mark.parametrize("api", ["notebook", "devenviron"])
def test_running_instances_are_stopped_and_deleted_end_to_end(api: str) -> None:
    instance_id = I if api == "notebook" else "DE-" + I
    with local_endpoint(stop_before_delete=True) as fake:
        fake.add_instance(P, instance_id, api=api, status="RUNNING")
        env = endpoint_environ(fake.url, MODELARTS_CLEANUP_API=api)
        event = {"targets": [{"project_id": P, "instance_id": instance_id}]}
        clock = FakeTime(0.0)
        report = run_function(event, None, environ=env, log_stream=io.StringIO(), sleep=clock.sleep)
        (result,) = report["results"]
        assert result["outcome"] == "deleted"
        assert fake.instance_ids(P) == set()
        methods = [(r.method, r.status) for r in fake.requests]
        if api == "notebook":  # read first: protect tags (the old API has none to read)
            assert methods.pop(0) == ("GET", 200)
        assert methods[0] == ("DELETE", 400)
        assert ("POST", 200) in methods
        assert methods[-1] == ("DELETE", 200)


def test_a_selected_instance_is_asked_about_again_before_any_stop() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPED"], [not_now(), Deletion()])
    result = delete_one(
        instance,
        TARGET,
        deadline=None,
        clock=clock,
        sleep=clock.sleep,
        before_stopping=lambda: "state_changed",
    )
    assert (result.outcome, result.reason, result.attempts) == (Outcome.REFUSED, "state_changed", 1)
    assert instance.calls == ["delete"]


def test_a_selected_instance_still_matching_is_stopped_and_deleted() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPED"], [not_now(), Deletion()])
    result = delete_one(
        instance,
        TARGET,
        deadline=None,
        clock=clock,
        sleep=clock.sleep,
        before_stopping=lambda: None,
    )
    assert result.outcome is Outcome.DELETED
    assert "stop" in instance.calls


def test_a_failed_question_before_stopping_stops_nothing() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING"], [not_now()])

    def unanswerable() -> str | None:
        raise ApiError("no", http_status=503, error_code="ModelArts.6102")

    result = delete_one(
        instance,
        TARGET,
        deadline=None,
        clock=clock,
        sleep=clock.sleep,
        before_stopping=unanswerable,
    )
    assert (result.outcome, result.reason, result.error_code) == (
        Outcome.FAILED,
        "recheck_failed",
        "ModelArts.6102",
    )
    assert instance.calls == ["delete"]


def test_what_stop_then_delete_ends_in_names_its_target_and_how_long_it_took() -> None:
    gone = stop_then_delete(
        Instance(["STARTING", "STARTING", None], [not_now("ModelArts.6357")]),
        clock=FakeTime(1000.0),
    )
    kept = stop_then_delete(
        Instance(["RUNNING"], [not_now()]), before_stopping=lambda: "state_changed"
    )
    at_once = stop_then_delete(Instance([], [Deletion(request_id="req-del")]))
    told = [(r.project_id, r.instance_id, r.outcome, r.duration_ms) for r in (gone, kept, at_once)]
    assert told == [
        (P, I, Outcome.ALREADY_ABSENT, 1000),  # waited a second for it
        (P, I, Outcome.REFUSED, 0),
        (P, I, Outcome.DELETED, 0),  # on a clock that did not move
    ]
    assert at_once.request_id == "req-del"


def test_a_bug_after_a_delete_was_sent_still_counts_that_delete() -> None:
    result = stop_then_delete(Instance(["STOPPED"], [not_now(), RuntimeError("a bug")]))
    assert (result.outcome, result.error_code, result.error_msg, result.attempts) == (
        Outcome.FAILED,
        "UnexpectedError",
        "RuntimeError",
        1,
    )


def test_a_wait_the_policy_ends_just_before_the_deadline_is_a_stop_timeout() -> None:
    # The next poll would land on the deadline, but the policy's two seconds are over first.
    instance = Instance(["STOPPING"], [not_now()])
    result = stop_then_delete(instance, deadline=3.0, stop_policy=StopPolicy(max_wait=2))
    assert (result.reason, result.error_code) == ("stop_failed", "StopTimeout")


def test_a_run_passes_its_stop_policy_and_sleep_on_to_stop_then_delete() -> None:
    clock = FakeTime(0.0)
    instance = Instance(["RUNNING", "STOPPED"], [not_now(), Deletion()])
    (result,) = execute(
        make_plan([TARGET], Policy(), dry_run=False),
        instance,
        concurrency=1,
        deadline=None,
        log=JsonLog(io.StringIO()),
        clock=clock,
        sleep=clock.sleep,
        stop_policy=StopPolicy(first_delay=0.5),
    )
    assert result.outcome is Outcome.DELETED
    assert clock.sleeps == [0.5]


def test_a_question_before_stopping_whose_answer_was_lost_says_so() -> None:
    instance = Instance(["RUNNING"], [not_now()])

    def lost_read() -> str | None:
        raise lost("GET")

    result = stop_then_delete(instance, deadline=100.0, before_stopping=lost_read)
    assert (result.outcome, result.reason, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "deadline",
        "DeadlineExceeded",
        1,
    )
    assert result.error_msg == "the request was sent and the run's deadline cut its answer short"
    assert instance.calls == ["delete"]


def test_a_stop_answered_with_an_error_whose_retry_the_deadline_kept_out_is_that_answer() -> None:
    # The stop was answered 503; the retry could not start before the deadline. What the API
    # said stands (stop_failed with its code), not a wait the deadline cut (StopTimeout).
    answered = DeadlineExceeded(
        "no time to retry",
        http_status=503,
        error_code="ModelArts.6101",
        error_msg="The system is busy.",
        attempts=1,
    )
    instance = Instance(["RUNNING"], [not_now()], stop_error=answered)
    result = stop_then_delete(instance, deadline=100.0)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "stop_failed")
    assert (result.error_code, result.http_status) == ("ModelArts.6101", 503)


def test_an_instance_shown_without_a_status_is_never_reported_with_a_made_up_one() -> None:
    # The read shows no status: not running, not in transition, so the delete is tried again;
    # the deadline keeps that delete from starting. The status it was left in is unknown.
    class NoStatus(Instance):
        def get_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> dict[str, Any] | None:
            self.calls.append("get")
            return {"id": instance_id}

    no_time = DeadlineExceeded("no time", attempts=0)
    instance = NoStatus([], [not_now("ModelArts.6306"), no_time])
    result = stop_then_delete(instance, deadline=100.0)
    assert (result.outcome, result.reason, result.attempts) == (Outcome.FAILED, "deadline", 1)
    assert result.instance_status is None
    assert instance.calls == ["delete", "get", "delete"]
