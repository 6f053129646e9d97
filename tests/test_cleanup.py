"""The run: planning is pure; executing gives one result per target whatever the client does."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from modelarts_cleanup.cleanup.discovery import discover
from modelarts_cleanup.cleanup.execution import delete_one, execute
from modelarts_cleanup.cleanup.planning import Candidate, Plan, Policy, make_plan
from modelarts_cleanup.cleanup.report import JsonLog, Outcome, Result
from modelarts_cleanup.cloud.client import ModelArtsClient
from modelarts_cleanup.cloud.transport import Transport
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.payload import Target
from modelarts_cleanup.events.rules import Selector
from modelarts_cleanup.exceptions import AnswerLost, ApiError, DeadlineExceeded
from modelarts_cleanup.vocabulary import MARK_KEY, ApiGeneration
from tests.support import FakeTime, endpoint_environ, local_endpoint

P1 = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"


def iid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def targets(n: int, project: str = P1) -> list[Target]:
    return [Target(project_id=project, instance_id=iid(i)) for i in range(n)]


@dataclass(frozen=True)
class Deletion:
    outcome: str
    http_status: int = 200
    request_id: str | None = "req-1"
    attempts: int = 1
    status: str | None = "DELETING"


class ScriptedClient:
    """Answers per instance: a Deletion, or raises the exception given. `took` is called as each
    request is answered (a test moves its clock there)."""

    def __init__(self, script: dict[str, Deletion | Exception] | None = None) -> None:
        self.script = script or {}
        self.calls: list[tuple[str, str, float | None]] = []
        self.lock = threading.Lock()
        self.took: Callable[[], None] = lambda: None

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> Deletion:
        with self.lock:
            self.calls.append((project_id, instance_id, deadline))
        self.took()
        answer = self.script.get(instance_id, Deletion("deleted"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(plan: Plan, client: ScriptedClient, **kwargs: object) -> tuple[list[Outcome], str]:
    stream = io.StringIO()
    results = execute(
        plan,
        client,
        concurrency=int(kwargs.get("concurrency", 4)),  # type: ignore[call-overload]
        deadline=kwargs.get("deadline"),  # type: ignore[arg-type]
        log=JsonLog(stream),
        clock=kwargs.get("clock", lambda: 0.0),  # type: ignore[arg-type]
    )
    return [r.outcome for r in results], stream.getvalue()


def test_plan_keeps_payload_order_and_drops_duplicates() -> None:
    ts = targets(3)
    plan = make_plan([ts[2], ts[0], ts[2], ts[1]], Policy(), dry_run=False)
    assert plan.order == (ts[2], ts[0], ts[1])
    assert tuple(c.target for c in plan.to_delete) == plan.order
    assert {c.matched_by for c in plan.to_delete} == {"targets"}
    assert plan.refused == ()
    assert plan.refused_run is None


def test_protected_instances_are_refused_without_a_request() -> None:
    ts = targets(3)
    plan = make_plan(ts, Policy(protected_instances=frozenset({iid(1)})), dry_run=False)
    client = ScriptedClient()
    outcomes, _ = run(plan, client)
    assert outcomes == [Outcome.DELETED, Outcome.REFUSED, Outcome.DELETED]
    assert [c[1] for c in client.calls] == [iid(0), iid(2)]
    assert plan.refused[0].reason == "protected"


def test_projects_outside_the_allowlist_are_refused() -> None:
    plan = make_plan(
        [*targets(1, P1), *targets(1, P2)], Policy(allowed_projects=frozenset({P2})), dry_run=False
    )
    assert [(r.project_id, r.reason) for r in plan.refused] == [(P1, "project_not_allowed")]
    assert [c.target.project_id for c in plan.to_delete] == [P2]


def test_more_deletions_than_the_cap_refuse_the_whole_run() -> None:
    plan = make_plan(targets(4), Policy(max_deletions=3), dry_run=False)
    client = ScriptedClient()
    outcomes, _ = run(plan, client)
    assert plan.refused_run is not None and "MAX_DELETIONS=3" in plan.refused_run
    assert outcomes == [Outcome.REFUSED] * 4
    assert {r.reason for r in plan.refused} == {"max_deletions_exceeded"}
    assert client.calls == []


def test_a_cap_refusal_says_how_many_of_the_writes_are_tags() -> None:
    ts = targets(3)
    candidates = [
        Candidate(ts[0]),
        *(Candidate(t, "selectors[0]", SELECTOR, action="mark") for t in ts[1:]),  # type: ignore[arg-type]
    ]
    plan = make_plan(candidates, Policy(max_deletions=2), dry_run=False)
    assert plan.refused_run == (
        "3 deletions, marks and unmarks (2 of them tags) planned, more than "
        "MODELARTS_CLEANUP_MAX_DELETIONS=2: the whole run is refused"
    )


def test_cap_counts_only_what_policy_lets_through() -> None:
    policy = Policy(max_deletions=2, protected_instances=frozenset({iid(0)}))
    plan = make_plan(targets(3), policy, dry_run=False)
    assert plan.refused_run is None
    assert len(plan.to_delete) == 2


def test_cap_of_exactly_the_count_is_allowed() -> None:
    assert make_plan(targets(3), Policy(max_deletions=3), dry_run=False).refused_run is None


def test_dry_run_makes_no_request() -> None:
    client = ScriptedClient()
    outcomes, _ = run(make_plan(targets(3), Policy(), dry_run=True), client)
    assert outcomes == [Outcome.WOULD_DELETE] * 3
    assert client.calls == []


def test_one_failure_does_not_stop_the_rest() -> None:
    script: dict[str, Deletion | Exception] = {
        iid(0): ApiError("boom", http_status=500, error_code="ModelArts.6102", attempts=5),
        iid(1): Deletion("already_absent", http_status=404, status=None),
        iid(2): RuntimeError("a bug with a secret https://x?sig=abc"),
    }
    plan = make_plan(targets(4), Policy(), dry_run=False)
    stream = io.StringIO()
    results = execute(
        plan, ScriptedClient(script), concurrency=2, deadline=None, log=JsonLog(stream)
    )
    assert [r.outcome for r in results] == [
        Outcome.FAILED,
        Outcome.ALREADY_ABSENT,
        Outcome.FAILED,
        Outcome.DELETED,
    ]
    assert (results[0].error_code, results[0].http_status, results[0].attempts) == (
        "ModelArts.6102",
        500,
        5,
    )
    assert results[2].error_code == "UnexpectedError"
    assert "sig=abc" not in stream.getvalue()
    assert results[3].instance_status == "DELETING"


def test_every_target_gets_exactly_one_log_line() -> None:
    plan = make_plan(targets(5), Policy(protected_instances=frozenset({iid(4)})), dry_run=False)
    _, logged = run(plan, ScriptedClient())
    lines = [json.loads(line) for line in logged.splitlines()]
    assert sorted(line["instance_id"] for line in lines) == sorted(iid(i) for i in range(5))
    assert all(line["service"] == "modelarts-cleanup" for line in lines)
    assert "error_code" not in lines[0]  # null values are dropped


def test_a_failed_target_is_logged_at_error_and_every_other_at_info() -> None:
    # Alerts on failures read the level of the result lines.
    script: dict[str, Deletion | Exception] = {
        iid(0): ApiError("boom", http_status=500, error_code="ModelArts.6102", attempts=5),
        iid(1): Deletion("already_absent", http_status=404, status=None),
    }
    plan = make_plan(targets(4), Policy(protected_instances=frozenset({iid(3)})), dry_run=False)
    _, logged = run(plan, ScriptedClient(script))
    lines = [json.loads(line) for line in logged.splitlines()]
    assert all(line["message"] == f"{line['instance_id']}: {line['outcome']}" for line in lines)
    assert {line["instance_id"]: (line["outcome"], line["level"]) for line in lines} == {
        iid(0): ("failed", "ERROR"),
        iid(1): ("already_absent", "INFO"),
        iid(2): ("deleted", "INFO"),
        iid(3): ("refused", "INFO"),
    }


@pytest.mark.parametrize("concurrency", [1, 2])
def test_no_more_deletes_are_in_flight_than_the_concurrency(concurrency: int) -> None:
    arrived = threading.Condition()
    in_flight, most = [0], [0]

    def hold(_: float) -> None:  # the endpoint's latency, slept in each request's own thread
        with arrived:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            arrived.notify_all()
            # Held until one more request arrives than may, or long enough that one sent would.
            arrived.wait_for(lambda: in_flight[0] > concurrency, timeout=0.1)
            in_flight[0] -= 1

    with local_endpoint(latency=0.001, sleep=hold) as fake:
        ids = [fake.add_instance(P1, iid(n)) for n in range(3)]
        environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_CONCURRENCY=str(concurrency))
        event = {"targets": [{"project_id": P1, "instance_id": i} for i in ids]}
        report = run_function(event, None, environ=environ, log_stream=io.StringIO())
        assert fake.instance_ids(P1) == set()
    assert report["counts"]["deleted"] == 3
    assert most[0] == concurrency


def test_targets_after_the_deadline_are_not_attempted() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    class SlowClient(ScriptedClient):
        def delete_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> Deletion:
            now[0] += 4.0
            return super().delete_instance(project_id, instance_id, deadline=deadline)

    client = SlowClient()
    outcomes, _ = run(
        make_plan(targets(4), Policy(), dry_run=False),
        client,
        concurrency=1,
        deadline=10.0,
        clock=clock,
    )
    assert outcomes == [Outcome.DELETED] * 3 + [Outcome.NOT_ATTEMPTED]
    assert all(call[2] == 10.0 for call in client.calls)


def test_deadline_before_the_first_attempt_is_not_attempted() -> None:
    target = targets(1)[0]
    client = ScriptedClient({target.instance_id: DeadlineExceeded("late", attempts=0)})
    assert (
        delete_one(client, target, deadline=5.0, clock=lambda: 1.0).outcome is Outcome.NOT_ATTEMPTED
    )


def test_retries_the_deadline_cut_short_leave_the_last_answer_standing() -> None:
    target = targets(1)[0]
    error = DeadlineExceeded(
        "late", attempts=2, http_status=503, error_code="ModelArts.6102", retryable=True
    )
    result = delete_one(
        ScriptedClient({target.instance_id: error}), target, deadline=5.0, clock=lambda: 1.0
    )
    assert result.outcome is Outcome.FAILED
    assert result.attempts == 2
    # The API answered 503 and nothing was lost: that answer is the failure, not the deadline.
    assert (result.http_status, result.error_code, result.reason) == (503, "ModelArts.6102", None)


def test_a_delete_whose_answer_the_deadline_cut_says_its_effect_is_unknown() -> None:
    target = targets(1)[0]
    lost = AnswerLost(
        "DELETE /v1/...: lost",
        error_code="DeadlineExceeded",
        error_msg="the request was sent and the run's deadline cut its answer short: "
        "its effect is unknown",
        attempts=2,
    )
    result = delete_one(
        ScriptedClient({target.instance_id: lost}), target, deadline=5.0, clock=lambda: 1.0
    )
    assert (result.outcome, result.reason, result.error_code) == (
        Outcome.FAILED,
        "deadline",
        "DeadlineExceeded",
    )
    assert (result.attempts, result.http_status, result.instance_status) == (2, None, None)
    assert result.error_msg is not None
    assert "was sent" in result.error_msg
    assert "effect is unknown" in result.error_msg
    assert "the next run reports already_absent" in result.error_msg


@pytest.mark.parametrize("concurrency", [1, 3, 64])
def test_results_follow_payload_order_at_any_concurrency(concurrency: int) -> None:
    ts = targets(20)
    plan = make_plan(ts, Policy(), dry_run=False)
    stream = io.StringIO()
    results = execute(
        plan, ScriptedClient(), concurrency=concurrency, deadline=None, log=JsonLog(stream)
    )
    assert [r.instance_id for r in results] == [t.instance_id for t in ts]


SELECTOR = Selector(project_id=P1, statuses=("STOPPED",))


def test_a_recheck_that_breaks_fails_its_target_by_the_error_type_alone() -> None:
    picked = targets(1)[0]
    plan = make_plan([Candidate(picked, "selectors[0]", SELECTOR)], Policy(), dry_run=False)

    def recheck(candidate: Candidate) -> str | None:
        raise KeyError("https://example.invalid/?sig=secret")

    log = JsonLog(io.StringIO())
    (result,) = execute(
        plan, ScriptedClient(), concurrency=1, deadline=None, log=log, recheck=recheck
    )
    assert (result.outcome, result.error_code, result.error_msg, result.attempts) == (
        Outcome.FAILED,
        "UnexpectedError",
        "KeyError",
        0,
    )


def test_a_recheck_whose_answer_was_lost_says_so_in_the_services_words() -> None:
    picked = targets(1)[0]
    plan = make_plan([Candidate(picked, "selectors[0]", SELECTOR)], Policy(), dry_run=False)

    def recheck(candidate: Candidate) -> str | None:
        raise AnswerLost("GET: lost", error_code="DeadlineExceeded", error_msg="cut", attempts=1)

    (result,) = execute(
        plan,
        ScriptedClient(),
        concurrency=1,
        deadline=None,
        log=JsonLog(io.StringIO()),
        recheck=recheck,
    )
    assert (result.outcome, result.error_code, result.error_msg) == (
        Outcome.FAILED,
        "DeadlineExceeded",
        "cut",
    )


@pytest.mark.parametrize(
    ("raised", "outcome", "reason", "code"),
    [
        (RuntimeError("surprise"), Outcome.FAILED, None, "UnexpectedError"),
        (
            ApiError("no", http_status=503, error_code="ModelArts.6102"),
            Outcome.FAILED,
            "recheck_failed",
            "ModelArts.6102",
        ),
        (DeadlineExceeded("late", attempts=0), Outcome.NOT_ATTEMPTED, "deadline", None),
        # The read went out and its answer was lost: nothing was deleted, but it was not untried.
        (
            AnswerLost("lost", error_code="DeadlineExceeded", error_msg="lost", attempts=1),
            Outcome.FAILED,
            "deadline",
            "DeadlineExceeded",
        ),
        # Answered 503, and the deadline left no time to ask again: the answer stands.
        (
            DeadlineExceeded("late", attempts=1, http_status=503, error_code="ModelArts.6102"),
            Outcome.FAILED,
            "recheck_failed",
            "ModelArts.6102",
        ),
    ],
)
def test_a_recheck_that_cannot_answer_fails_only_its_own_target(
    raised: Exception, outcome: Outcome, reason: str | None, code: str | None
) -> None:
    picked, named = targets(2)
    plan = make_plan(
        [Candidate(picked, "selectors[0]", SELECTOR), Candidate(named)], Policy(), dry_run=False
    )

    def recheck(candidate: Candidate) -> str | None:
        raise raised

    client = ScriptedClient()
    results = execute(
        plan, client, concurrency=2, deadline=None, log=JsonLog(io.StringIO()), recheck=recheck
    )
    assert (results[0].outcome, results[0].reason, results[0].error_code) == (outcome, reason, code)
    assert (results[0].matched_by, results[0].attempts) == ("selectors[0]", 0)
    assert results[1].outcome is Outcome.DELETED
    assert [c[1] for c in client.calls] == [named.instance_id]


@pytest.mark.parametrize("workspace_ids", [[], ["0"]])
def test_a_listing_that_raises_something_unexpected_fails_its_selector_only(
    workspace_ids: list[str],
) -> None:
    class Broken(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            raise RecursionError("a body nested too deep")

    client = ModelArtsClient(
        Transport(session=Broken(), endpoint="https://modelarts.example.invalid"),
        api=ApiGeneration.NOTEBOOK,
    )
    selector = Selector.model_validate(
        {"project_id": P1, "statuses": ["STOPPED"], "workspace_ids": workspace_ids}
    )
    candidates, reports = discover([selector], client, policy=Policy(), deadline=None, now_ms=0)
    assert candidates == []
    assert (reports[0].error_code, reports[0].error_msg) == ("UnexpectedError", "RecursionError")


def one_at_a_time(
    candidates: list[Candidate],
    client: ScriptedClient,
    *,
    deadline: float | None,
    clock: Callable[[], float],
    dry_run: bool = False,
) -> tuple[Result, ...]:
    """The results of a run of `candidates` under no policy, one request at a time."""
    plan = make_plan(candidates, Policy(), dry_run=dry_run)
    log = JsonLog(io.StringIO())
    return execute(plan, client, concurrency=1, deadline=deadline, log=log, clock=clock)


class TaggingClient(ScriptedClient):
    """Tag writes raise what the script says for their instance, and find nothing to tag for the
    instances in `gone`; each write is recorded."""

    def __init__(
        self, script: dict[str, Deletion | Exception] | None = None, gone: Collection[str] = ()
    ) -> None:
        super().__init__(script)
        self.gone = gone
        self.writes: list[tuple[str, dict[str, str | None], str, bool]] = []

    def tag(
        self,
        project_id: str,
        instance_id: str,
        tags: dict[str, str | None],
        *,
        workspace_id: str,
        remove: bool = False,
        deadline: float | None = None,
    ) -> bool:
        with self.lock:
            self.calls.append((project_id, instance_id, deadline))
            self.writes.append((instance_id, dict(tags), workspace_id, remove))
        self.took()
        answer = self.script.get(instance_id)
        if isinstance(answer, Exception):
            raise answer
        return instance_id not in self.gone


@pytest.mark.parametrize("action", ["mark", "unmark"])
def test_a_tag_write_the_deadline_ended_is_told_as_it_was(action: str) -> None:
    """Kept from starting: not_attempted. Its answer lost: failed, deadline, effect unknown.
    An error answered before the deadline stands as that error."""
    unsent, lost, refused_, fine = targets(4)
    script: dict[str, Deletion | Exception] = {
        unsent.instance_id: DeadlineExceeded("not started", attempts=0),
        lost.instance_id: AnswerLost(
            "POST /v1/...: lost",
            error_code="DeadlineExceeded",
            error_msg="the request was sent and the run's deadline cut its answer short: "
            "its effect is unknown",
            attempts=1,
        ),
        refused_.instance_id: DeadlineExceeded(
            "late", attempts=1, http_status=503, error_code="ModelArts.6102"
        ),
    }
    mark = "2027-01-17T08:00:00Z"
    candidates = [
        Candidate(t, "selectors[0]", SELECTOR, action=action, delete_after=mark)  # type: ignore[arg-type]
        for t in (unsent, lost, refused_, fine)
    ]
    client = TaggingClient(script)
    results = one_at_a_time(candidates, client, deadline=5.0, clock=lambda: 1.0)

    by_id = {r.instance_id: r for r in results}
    told = {
        t.instance_id: (by_id[t.instance_id].outcome, by_id[t.instance_id].reason)
        for t in (unsent, lost, refused_)
    }
    assert told == {
        unsent.instance_id: (Outcome.NOT_ATTEMPTED, "deadline"),
        lost.instance_id: (Outcome.FAILED, "deadline"),
        refused_.instance_id: (Outcome.FAILED, None),
    }
    assert by_id[fine.instance_id].outcome is (
        Outcome.MARKED if action == "mark" else Outcome.UNMARKED
    )
    cut = by_id[lost.instance_id]
    assert cut.error_code == "DeadlineExceeded" and cut.error_msg is not None
    assert cut.attempts == 0  # attempts count DELETEs; a tag write is none
    assert "effect is unknown" in cut.error_msg and "the next run reads the tag" in cut.error_msg
    assert (by_id[refused_.instance_id].http_status, by_id[refused_.instance_id].error_code) == (
        503,
        "ModelArts.6102",
    )
    assert all(deadline == 5.0 for _, _, deadline in client.calls)


def test_every_way_a_target_ends_names_it_and_how_long_it_took() -> None:
    ts = targets(8, P2)
    mark = "2027-01-17T08:00:00Z"
    script: dict[str, Deletion | Exception] = {
        iid(1): ApiError("DELETE one: HTTP 500", http_status=500, attempts=5),
        iid(2): AnswerLost("DELETE two: its answer was lost", attempts=1),
        iid(3): RuntimeError("a bug"),
        iid(7): ApiError("POST tags: HTTP 403", http_status=403, attempts=1),
    }

    def grace(target: Target, action: str) -> Candidate:
        return Candidate(target, "selectors[0]", SELECTOR, action=action, delete_after=mark)  # type: ignore[arg-type]

    candidates = [
        *ts[:4],
        grace(ts[4], "mark"),
        grace(ts[5], "unmark"),
        grace(ts[6], "mark"),
        grace(ts[7], "mark"),
    ]
    clock = FakeTime()
    client = TaggingClient(script, gone={iid(6)})
    client.took = lambda: clock.advance(0.25)  # each request takes a quarter of a second
    results = one_at_a_time(candidates, client, deadline=None, clock=clock)

    told = [
        (r.project_id, r.instance_id, r.outcome, r.attempts, r.duration_ms, r.error_msg)
        for r in results
    ]
    lost = (
        "DELETE two: its answer was lost; if it went through, the next run reports already_absent"
    )
    assert told == [
        (P2, iid(0), Outcome.DELETED, 1, 250, None),
        (P2, iid(1), Outcome.FAILED, 5, 250, "DELETE one: HTTP 500"),
        (P2, iid(2), Outcome.FAILED, 1, 250, lost),
        (P2, iid(3), Outcome.FAILED, 0, 250, "RuntimeError"),
        (P2, iid(4), Outcome.MARKED, 0, 250, None),
        (P2, iid(5), Outcome.UNMARKED, 0, 250, None),
        (P2, iid(6), Outcome.ALREADY_ABSENT, 0, 250, None),
        (P2, iid(7), Outcome.FAILED, 0, 250, "POST tags: HTTP 403"),
    ]
    # Marks are written on the default workspace when the listing named none; unmarks remove.
    assert client.writes == [
        (iid(4), {MARK_KEY: mark}, "0", False),
        (iid(5), {MARK_KEY: None}, "0", True),
        (iid(6), {MARK_KEY: mark}, "0", False),
        (iid(7), {MARK_KEY: mark}, "0", False),
    ]


def test_a_delete_reached_at_the_deadline_itself_is_not_attempted() -> None:
    target, client = targets(1)[0], ScriptedClient()
    result = delete_one(client, target, deadline=5.0, clock=lambda: 5.0)
    assert (result.outcome, client.calls) == (Outcome.NOT_ATTEMPTED, [])


@pytest.mark.parametrize("dry_run", [False, True])
def test_targets_reached_at_the_deadline_itself_are_not_attempted(dry_run: bool) -> None:
    deleted, marked, picked = targets(3, P2)
    candidates = [
        Candidate(picked, "selectors[0]", SELECTOR),
        Candidate(deleted),
        Candidate(
            marked, "selectors[0]", SELECTOR, action="mark", delete_after="2027-01-17T08:00:00Z"
        ),
    ]
    client, asked = TaggingClient(), []
    plan = make_plan(candidates, Policy(), dry_run=dry_run)
    results = execute(
        plan,
        client,
        concurrency=1,
        deadline=5.0,
        log=JsonLog(io.StringIO()),
        clock=lambda: 5.0,
        recheck=asked.append,
    )
    told = [(r.project_id, r.instance_id, r.outcome) for r in results]
    if dry_run:  # nothing would be sent: the deadline does not matter
        assert [t[2] for t in told] == [
            Outcome.WOULD_DELETE,
            Outcome.WOULD_DELETE,
            Outcome.WOULD_MARK,
        ]
    else:
        assert [t[2] for t in told] == [Outcome.NOT_ATTEMPTED] * 3
    assert [t[:2] for t in told] == [(P2, iid(2)), (P2, iid(0)), (P2, iid(1))]
    assert (client.calls, asked) == ([], [])  # not even asked again about the selected one


def test_one_at_a_time_runs_in_the_calling_thread_so_an_interruption_stops_it_there() -> None:
    # A signal (Ctrl-C, the platform stopping the process) reaches the main thread only: work
    # done there stops where it is, and nothing after it is sent.
    class Interrupting(ScriptedClient):
        def delete_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> Deletion:
            threads.append(threading.current_thread())
            if instance_id == iid(0):
                raise KeyboardInterrupt
            return super().delete_instance(project_id, instance_id, deadline=deadline)

    threads: list[threading.Thread] = []
    client = Interrupting()
    plan = make_plan(targets(3), Policy(max_deletions=10), dry_run=False)
    with pytest.raises(KeyboardInterrupt):
        run(plan, client, concurrency=1)
    assert threads == [threading.current_thread()]
    assert client.calls == []


def test_a_step_the_deadline_kept_from_starting_is_told_in_full() -> None:
    from modelarts_cleanup.cleanup.deletion import cut_short

    target = Target(
        project_id="ed43aef64dff4e5c81cb84b71adcb3fd",
        instance_id="6fa459ea-ee8a-3ca4-894e-db77e160355e",
    )
    kept_out = DeadlineExceeded("no time left", error_code="DeadlineExceeded", attempts=0)
    told = cut_short(
        target, kept_out, 2, 1.0, lambda: 3.5, "the delete after stopping", status="STOPPED"
    )
    assert told == Result(
        target.project_id,
        target.instance_id,
        Outcome.FAILED,
        error_msg="the run's deadline came before the delete after stopping could start",
        reason="deadline",
        attempts=2,
        duration_ms=2500,
        instance_status="STOPPED",
    )
    lost = AnswerLost("cut", error_code="DeadlineExceeded", error_msg="answer lost", attempts=1)
    told = cut_short(target, lost, 1, 1.0, lambda: 1.25, "the delete", status="STOPPED")
    assert (told.error_code, told.error_msg, told.instance_status) == (
        "DeadlineExceeded",
        "answer lost",  # no hint given: nothing added to the error's own words
        None,  # after a lost answer, where the instance was left is not known
    )
    assert (told.attempts, told.duration_ms, told.reason) == (1, 250, "deadline")
