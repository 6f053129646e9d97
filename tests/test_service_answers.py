"""Answering as the service answers: what clients that have run against ModelArts know.

A DELETE answered 6357 while the deletion is under way, stops answered 6307/6308, the old API's
pools and owners, and the instance's times read from one place (modelarts-api.md, sections 2,
3, 8; docs/modelarts-facts.md).
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from modelarts_cleanup.cleanup.execution import delete_one
from modelarts_cleanup.cleanup.report import Outcome
from modelarts_cleanup.cloud.instances import listed_devenviron, listed_notebook
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.payload import Target
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.testing import FakeModelArts, Fault, User
from tests.support import FakeTime, endpoint_environ, local_endpoint, no_sleep
from tests.test_stopping import Deletion, Instance, not_now

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
I = "6fa459ea-ee8a-3ca4-894e-db77e160355e"  # noqa: E741
TARGET = Target(project_id=P, instance_id=I)
NOW_MS = 1_800_000_000_000
HOUR = 3_600_000
ALICE = User("a11ce000a11ce000a11ce000a11ce000", "alice")


def run(fake: FakeModelArts, event: object, **environ: str) -> dict[str, Any]:
    # No confirmation and no guard read before a named DELETE, unless a test asks: the request
    # sequences here are the service's answers to the DELETE path itself.
    settings = {
        "MODELARTS_CLEANUP_CONFIRM_SECONDS": "0",
        "MODELARTS_CLEANUP_PROTECT_TAGS": "[]",
        **environ,
    }
    return run_function(
        event,
        None,
        environ=endpoint_environ(fake.url, **settings),
        log_stream=io.StringIO(),
        wall_clock=lambda: NOW_MS / 1000,
        sleep=no_sleep,
    )


def requests_of(fake: FakeModelArts) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in fake.requests]


# 1. A DELETE answered 6357 while the deletion is under way


def test_a_delete_answered_6357_of_an_instance_being_deleted_is_deleted_at_once() -> None:
    instance = Instance(["DELETING"], [not_now("ModelArts.6357")])
    clock = FakeTime(0.0)
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert (result.outcome, result.instance_status, result.attempts) == (
        Outcome.DELETED,
        "DELETING",
        1,
    )
    assert instance.calls == ["delete", "get"]
    assert clock.sleeps == []


def test_a_delete_answered_6357_of_an_instance_gone_since_is_already_absent() -> None:
    instance = Instance([None], [not_now("ModelArts.6357")])
    result = delete_one(instance, TARGET, deadline=None)
    assert (result.outcome, result.attempts) == (Outcome.ALREADY_ABSENT, 1)
    assert instance.calls == ["delete", "get"]


def test_a_delete_answered_6357_of_a_busy_instance_waits_and_deletes_as_before() -> None:
    clock = FakeTime(0.0)
    instance = Instance(
        ["STARTING", "STARTING", "STOPPED"], [not_now("ModelArts.6357"), Deletion()]
    )
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert (result.outcome, result.attempts) == (Outcome.DELETED, 2)
    assert instance.calls == ["delete", "get", "get", "get", "delete"]


def test_a_selected_instance_being_deleted_is_not_refused_as_changed() -> None:
    # The rule's re-read would see DELETING (not among its statuses): the deletion under way
    # is the answer, not a change that keeps the instance.
    instance = Instance(["DELETING"], [not_now("ModelArts.6357")])
    result = delete_one(instance, TARGET, deadline=None, before_stopping=lambda: "state_changed")
    assert (result.outcome, result.instance_status) == (Outcome.DELETED, "DELETING")


def test_a_retried_delete_after_a_lost_answer_reports_the_deletion_under_way() -> None:
    # The first DELETE is carried out and its answer lost (a reset); the retry meets the
    # deletion under way (6357), and a read shows it DELETING.
    with local_endpoint(delete_seconds=600, clock=FakeTime()) as fake:
        instance = fake.add_instance(P)
        fake.add_fault(Fault("reset", carried_out=True, method="DELETE"), instance_id=instance)
        report = run(fake, {"targets": [{"project_id": P, "instance_id": instance}]})
        (result,) = report["results"]
        assert (result["outcome"], result["instance_status"]) == ("deleted", "DELETING")
        assert requests_of(fake) == [("DELETE", None), ("DELETE", 400), ("GET", 200)]
        assert report["status"] == "succeeded"


def test_a_selected_instance_whose_deletion_is_under_way_end_to_end() -> None:
    with local_endpoint(delete_seconds=600, clock=FakeTime()) as fake:
        instance = fake.add_instance(P, status="STOPPED", name="tmp-1")
        fake.add_fault(Fault("reset", carried_out=True, method="DELETE"), instance_id=instance)
        selector = {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}
        report = run(fake, {"selectors": [selector]})
        (result,) = report["results"]
        assert (result["outcome"], result["reason"]) == ("deleted", None)
        assert result["instance_status"] == "DELETING"


# 6. Stop answers 6307 (already stopped) and 6308 (stopping)


@pytest.mark.parametrize("code", ["ModelArts.6307", "ModelArts.6308", "ModelArts.6357"])
def test_a_stop_answered_done_or_under_way_is_waited_for_then_deleted(code: str) -> None:
    clock = FakeTime(0.0)
    refused = ApiError("stop", http_status=400, error_code=code, error_msg="...", attempts=1)
    instance = Instance(
        ["RUNNING", "STOPPING", "STOPPED"], [not_now(), Deletion()], stop_error=refused
    )
    result = delete_one(instance, TARGET, deadline=None, clock=clock, sleep=clock.sleep)
    assert (result.outcome, result.attempts) == (Outcome.DELETED, 2)
    assert instance.calls == ["delete", "get", "stop", "get", "get", "delete"]


@pytest.mark.parametrize("api", ["notebook", "devenviron"])
@pytest.mark.parametrize("code", ["ModelArts.6307", "ModelArts.6308"])
def test_a_stop_someone_else_sent_first_end_to_end(api: str, code: str) -> None:
    # Between our read (RUNNING) and our stop, someone stopped it: the stop is carried out and
    # answered "already stopped" or "stopping".
    instance_id = I if api == "notebook" else "DE-" + I
    with local_endpoint(stop_before_delete=True) as fake:
        fake.add_instance(P, instance_id, api=api, status="RUNNING")
        fault = Fault("status", status=400, error_code=code, carried_out=True, method="POST")
        fake.add_fault(fault, instance_id=instance_id)
        target = {"project_id": P, "instance_id": instance_id}
        report = run(fake, {"targets": [target]}, MODELARTS_CLEANUP_API=api)
        (result,) = report["results"]
        assert result["outcome"] == "deleted"
        assert ("POST", 400) in requests_of(fake)
        assert fake.instance_ids(P) == set()


# 3. The old API's pool and user


def test_the_old_api_reads_pool_and_user_as_the_notebook_api_does() -> None:
    item = {
        "id": "DE-" + I,
        "status": "STOPPED",
        "pool": {
            "id": "pool-1",
            "name": "v100",
            "type": "USER_DEFINED",
            "owner": {"project_id": P},
        },
        "user": {"id": ALICE.id, "name": "alice"},
    }
    old = listed_devenviron(P, item)
    new = listed_notebook(
        P,
        {
            "id": I,
            "pool": {"id": "pool-1", "name": "v100"},
            "user": {"id": ALICE.id, "name": "alice"},
        },
        "NOTEBOOK",
    )
    assert (old.pool, old.owner_id, old.owner_name) == (new.pool, new.owner_id, new.owner_name)
    assert old.pool == ("pool-1", "v100")
    assert old.pool_unreadable is False


@pytest.mark.parametrize(
    ("pool", "expected", "unreadable"),
    [
        (None, None, False),
        ({"id": "p", "name": "n", "type": "USER_DEFINED"}, ("p", "n"), False),
        # Only USER_DEFINED is documented as dedicated; a pool of another type is the public one.
        ({"id": "p", "name": "n", "type": "SYSTEM_DEFINED"}, None, False),
        ({"name": "n", "type": "USER_DEFINED"}, None, True),
        ("pool-1", None, True),
    ],
)
def test_an_old_api_pool_is_dedicated_only_when_it_says_so(
    pool: Any, expected: Any, unreadable: bool
) -> None:
    item: dict[str, Any] = {"id": "DE-" + I}
    if pool is not None:
        item["pool"] = pool
    listed = listed_devenviron(P, item)
    assert (listed.pool, listed.pool_unreadable) == (expected, unreadable)


def test_pools_and_owners_rules_mean_the_same_on_the_old_api_end_to_end() -> None:
    with local_endpoint() as fake:
        dedicated = fake.add_instance(
            P, "DE-" + I, api="devenviron", owner=ALICE, pool=("pool-1", "v100")
        )
        public = fake.add_instance(P, api="devenviron", instance_id="DE-" + I[:-1] + "f")
        env = {"MODELARTS_CLEANUP_API": "devenviron", "MODELARTS_CLEANUP_DRY_RUN": "true"}
        public_rule = {"project_id": P, "statuses": ["STOPPED"], "pools": ["public"]}
        alice_rule = {"project_id": P, "statuses": ["STOPPED"], "owners": ["alice"]}
        report = run(fake, {"selectors": [public_rule, alice_rule]}, **env)
        picked = {(r["matched_by"], r["instance_id"]): r for r in report["results"]}
        assert set(picked) == {("selectors[0]", public), ("selectors[1]", dedicated)}
        assert picked[("selectors[1]", dedicated)]["owner"] == {"id": ALICE.id, "name": "alice"}
        assert picked[("selectors[1]", dedicated)]["pool"] == {"id": "pool-1", "name": "v100"}


# 5. One source for the times


def test_the_lease_times_are_read_before_the_top_level_ones() -> None:
    item = {
        "id": I,
        "create_at": NOW_MS - HOUR,
        "update_at": NOW_MS - HOUR,
        "lease": {"create_at": NOW_MS - 100 * HOUR, "update_at": NOW_MS - 90 * HOUR},
    }
    listed = listed_notebook(P, item, "NOTEBOOK")
    assert (listed.created_ms, listed.updated_ms) == (NOW_MS - 100 * HOUR, NOW_MS - 90 * HOUR)
    top_only = listed_notebook(P, {"id": I, "create_at": NOW_MS, "update_at": NOW_MS}, "NOTEBOOK")
    assert (top_only.created_ms, top_only.updated_ms) == (NOW_MS, NOW_MS)


def test_the_listing_and_the_reread_agree_on_times_served_in_both_places() -> None:
    # The listing shows only `lease`; the read of one instance also has top-level times, here
    # recent ones: read first, they would make an idle instance look just updated.
    with local_endpoint() as fake:
        instance = fake.add_instance(
            P,
            created_ms=NOW_MS - 100 * HOUR,
            updated_ms=NOW_MS - 90 * HOUR,
            shown={"create_at": NOW_MS - HOUR, "update_at": NOW_MS - HOUR},
        )
        rule = {"project_id": P, "statuses": ["STOPPED"], "idle_hours": 72}
        report = run(fake, {"selectors": [rule]})
        (result,) = report["results"]
        assert (result["instance_id"], result["outcome"], result["reason"]) == (
            instance,
            "deleted",
            None,
        )
        shown = [r for r in fake.requests if r.method == "GET" and r.instance_id == instance]
        assert len(shown) == 1  # the re-read happened, and agreed


# 7. An answer lost after the request went out, for any reason


def test_a_delete_whose_every_answer_was_lost_is_counted_as_lost_end_to_end() -> None:
    with local_endpoint() as fake:
        instance = fake.add_instance(P)
        fault = Fault("reset", carried_out=True, times=3, method="DELETE")
        fake.add_fault(fault, instance_id=instance)
        target = {"project_id": P, "instance_id": instance}
        report = run(fake, {"targets": [target]}, MODELARTS_CLEANUP_MAX_ATTEMPTS="3")
        (result,) = report["results"]
        assert (result["outcome"], result["error_code"], result["reason"]) == (
            "failed",
            "AnswerLost",
            None,
        )
        assert "its effect is unknown" in result["error_msg"]
        assert (report["answers_lost"], report["failed_by"]) == (1, {"error": 1, "deadline": 0})
        assert fake.instance_ids(P) == set()  # it did go through
        fake.clear_requests()
        again = run(fake, {"targets": [target]})
        assert again["results"][0]["outcome"] == "already_absent"


@pytest.mark.parametrize(
    ("seen", "outcome", "http_status", "status"),
    [("DELETING", Outcome.DELETED, None, "DELETING"), (None, Outcome.ALREADY_ABSENT, 400, None)],
)
def test_what_a_delete_answered_6357_reports_after_its_read(
    seen: str | None, outcome: Outcome, http_status: int | None, status: str | None
) -> None:
    clock = FakeTime(1000.0)

    class SlowRead(Instance):
        def get_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> dict[str, Any] | None:
            assert (project_id, instance_id) == (P, I)
            clock.advance(0.25)
            return super().get_instance(project_id, instance_id, deadline=deadline)

    refusal = ApiError(
        "busy",
        http_status=400,
        error_code="ModelArts.6357",
        error_msg="another operation",
        request_id="req-6357",
    )
    instance = SlowRead([seen], [refusal])
    result = delete_one(instance, TARGET, deadline=2000.0, clock=clock, sleep=clock.sleep)
    told = (result.project_id, result.instance_id, result.outcome, result.http_status)
    assert told == (P, I, outcome, http_status)
    assert (result.instance_status, result.request_id) == (status, "req-6357")
    assert (result.attempts, result.duration_ms, result.error_code) == (1, 250, None)
    assert instance.deadlines == {2000.0}
