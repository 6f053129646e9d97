"""Cleanup by rule over real sockets: hundreds of instances, many pages, both API generations."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import requests

from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ConfigurationError
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import AK, SK, endpoint_environ, local_endpoint, no_sleep

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
NOW_MS = 1_800_000_000_000
HOUR = 3_600_000
STATUSES = ["STOPPED", "RUNNING", "ERROR", "CREATE_FAILED", "STARTING"]


def env(fake: FakeModelArts, **extra: str) -> dict[str, str]:
    """The local endpoint's settings, with room for hundreds of deletions at once."""
    return endpoint_environ(
        fake.url,
        **{
            "MODELARTS_CLEANUP_MAX_DELETIONS": "1000",
            "MODELARTS_CLEANUP_CONCURRENCY": "16",
            **extra,
        },
    )


def run(
    fake: FakeModelArts, event: object, *, dry_run: bool = False, **kwargs: Any
) -> dict[str, Any]:
    extra = kwargs.pop("environ", {})
    return run_function(
        event,
        None,
        environ=env(fake, **extra),
        log_stream=io.StringIO(),
        force_dry_run=dry_run,
        wall_clock=lambda: NOW_MS / 1000,
        sleep=no_sleep,
        **kwargs,
    )


def seed(
    fake: FakeModelArts, count: int, *, api: str = "notebook", seed_value: int = 7
) -> list[dict[str, Any]]:
    """Instances of every status, name and age; returns what was seeded, for the expectations."""
    rng = random.Random(seed_value)
    seeded = []
    for n in range(count):
        prefix = "DE-" if api == "devenviron" else ""
        instance_id = f"{prefix}{n:08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
        name = rng.choice(["tmp-", "tmp-keep-", "prod-", "exp-"]) + str(n)
        status = rng.choice(STATUSES)
        created = NOW_MS - rng.randint(1, 2000) * HOUR
        updated = min(NOW_MS, created + rng.randint(0, 1000) * HOUR)
        extra: dict[str, Any] = {}
        if api == "notebook" and n % 50 == 7:
            extra["feature"] = (
                "DEFAULT"  # a free CodeLab instance: only listed with feature=DEFAULT
            )
        fake.add_instance(
            P,
            instance_id,
            api=api,
            status=status,
            name=name,
            created_ms=created,
            updated_ms=updated,
            **extra,
        )
        seeded.append(
            {
                "id": instance_id,
                "name": name,
                "status": status,
                "created": created,
                "updated": updated,
            }
        )
    return seeded


RULE = {
    "project_id": P,
    "statuses": ["STOPPED", "ERROR"],
    "idle_hours": 72,
    "older_than_hours": 200,
    "name_pattern": "tmp-*",
    "exclude_names": ["tmp-keep-*"],
}


def expected(seeded: list[dict[str, Any]]) -> set[str]:
    """The rule above, computed independently of the code under test."""
    return {
        s["id"]
        for s in seeded
        if s["status"] in ("STOPPED", "ERROR")
        and NOW_MS - s["updated"] >= 72 * HOUR
        and NOW_MS - s["created"] >= 200 * HOUR
        and s["name"].startswith("tmp-")
        and not s["name"].startswith("tmp-keep-")
    }


def outcome_ids(report: dict[str, Any], outcome: str) -> set[str]:
    return {r["instance_id"] for r in report["results"] if r["outcome"] == outcome}


@pytest.mark.parametrize("api", ["notebook", "devenviron"])
def test_selector_deletes_exactly_what_the_rule_says_across_pages(
    fake: FakeModelArts, api: str
) -> None:
    seeded = seed(fake, 300, api=api)
    want = expected(seeded)
    assert 10 < len(want) < 100
    report = run(fake, {"selectors": [RULE]}, environ={"MODELARTS_CLEANUP_API": api})
    assert outcome_ids(report, "deleted") == want
    assert {r["matched_by"] for r in report["results"]} == {"selectors[0]"}
    assert report["selectors"] == [
        {
            "selector": "selectors[0]",
            "project_id": P,
            "listed": 300,
            "picked": len(want),
            "workspaces": [
                {
                    "workspace_id": "0",
                    "workspace_name": "default",
                    "listed": 300,
                    "error_code": None,
                    "error_msg": None,
                    "http_status": None,
                }
            ],
            "error_code": None,
            "error_msg": None,
            "http_status": None,
            "failed_workspace": None,
            "region": None,
        }
    ]
    remaining = {i for _, i in fake.instance_ids(P)}
    assert remaining == {s["id"] for s in seeded} - want
    list_requests = [r for r in fake.requests if r.method == "GET" and r.instance_id is None]
    assert list_requests[0].path == f"/v1/{P}/workspaces"
    if api == "notebook":
        # The workspaces; 300 NOTEBOOK instances at 50 a page, and DEFAULT.
        assert len(list_requests) >= 1 + 5 + 1
    else:
        assert len(list_requests) == 1 + 1  # the workspaces; limit=0 means everything


def test_plan_lists_exactly_what_a_real_run_then_deletes(fake: FakeModelArts) -> None:
    seeded = seed(fake, 180)
    event = {"selectors": [RULE, {**RULE, "statuses": ["CREATE_FAILED"], "name_pattern": "exp-*"}]}
    plan = run(fake, event, dry_run=True)
    assert not [r for r in fake.requests if r.method != "GET"]
    planned = outcome_ids(plan, "would_delete")
    report = run(fake, event)
    assert outcome_ids(report, "deleted") == planned
    assert planned >= expected(seeded)
    assert {r["matched_by"] for r in report["results"]} == {"selectors[0]", "selectors[1]"}


def test_plan_command_prints_the_table_and_deletes_nothing(
    fake: FakeModelArts, tmp_path: Any
) -> None:
    seeded = seed(fake, 60)
    event_file = tmp_path / "rules.json"
    event_file.write_text(json.dumps({"selectors": [RULE]}))
    child_env = {**env(fake), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "modelarts_cleanup", "plan", "--event", str(event_file)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "matched_by" in done.stdout
    assert "selectors[0] (" + P + "): 60 listed" in done.stdout
    assert not [r for r in fake.requests if r.method != "GET"]
    assert len(fake.instance_ids(P)) == len(seeded)


def test_an_instance_started_after_listing_is_kept(fake: FakeModelArts) -> None:
    victim = fake.add_instance(
        P,
        status="STOPPED",
        name="tmp-a",
        created_ms=NOW_MS - 500 * HOUR,
        updated_ms=NOW_MS - 100 * HOUR,
    )
    other = fake.add_instance(
        P,
        status="STOPPED",
        name="tmp-b",
        created_ms=NOW_MS - 500 * HOUR,
        updated_ms=NOW_MS - 100 * HOUR,
    )

    def start_victim() -> None:
        auth = SdkHmacSha256Auth(AK, SK)
        url = f"{fake.url}/v1/{P}/notebooks/{victim}/start"
        assert (
            requests.post(url, auth=auth, headers={"X-Project-Id": P}, timeout=5).status_code == 200
        )

    report = run(
        fake, {"selectors": [RULE]}, session_factory=meddling(before_first_recheck=start_victim)
    )
    by_id = {r["instance_id"]: r for r in report["results"]}
    assert (by_id[victim]["outcome"], by_id[victim]["reason"]) == ("refused", "state_changed")
    assert by_id[other]["outcome"] == "deleted"
    assert fake.instance(P, victim) is not None
    assert not [r for r in fake.requests if r.method == "DELETE" and r.instance_id == victim]


def test_an_instance_started_between_recheck_and_delete_is_not_stopped() -> None:
    with local_endpoint(stop_before_delete=True) as fake:
        old = {"created_ms": NOW_MS - 500 * HOUR, "updated_ms": NOW_MS - 100 * HOUR}
        victim = fake.add_instance(P, status="STOPPED", name="tmp-a", **old)

        def start_victim() -> None:
            auth = SdkHmacSha256Auth(AK, SK)
            url = f"{fake.url}/v1/{P}/notebooks/{victim}/start"
            assert requests.post(url, auth=auth, headers={"X-Project-Id": P}, timeout=5).ok

        factory = meddling(before_first_recheck=start_victim, method="DELETE")
        report = run(fake, {"selectors": [RULE]}, session_factory=factory)
        (result,) = report["results"]
        assert (result["outcome"], result["reason"], result["attempts"]) == (
            "refused",
            "state_changed",
            1,
        )
        assert fake.instance(P, victim) is not None
        assert [r.method for r in fake.requests if r.instance_id == victim] == [
            "GET",  # the re-check before deleting: still STOPPED
            "POST",  # the user starts it (the test)
            "DELETE",  # answered 6304: running now
            "GET",  # read again before any stop: no longer matches, so no stop
        ]


def meddling(
    *, before_first_recheck: Callable[[], None], method: str = "GET"
) -> Callable[[int, requests.auth.AuthBase], requests.Session]:
    """A session that lets the test act once, before the first `method` request to an instance."""

    def factory(pool: int, auth: requests.auth.AuthBase) -> requests.Session:
        session = new_session(pool, auth=auth)
        original = session.request
        done = False

        def request(verb: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
            nonlocal done
            one_instance = "/notebooks/" in url and "/notebooks/all" not in url
            if verb == method and one_instance and not done:
                done = True
                before_first_recheck()
            return original(verb, url, *args, **kwargs)

        session.request = request  # type: ignore[method-assign]
        return session

    return factory


def test_listing_failure_mid_pagination_deletes_nothing_by_selector(fake: FakeModelArts) -> None:
    seed(fake, 200)
    explicit = fake.add_instance(P2, name="named-target")
    calls = {"list": 0}

    def factory(pool: int, auth: requests.auth.AuthBase) -> requests.Session:
        session = new_session(pool, auth=auth)
        original = session.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
            if method == "GET" and url.split("?")[0].endswith("/notebooks/all"):
                calls["list"] += 1
                if calls["list"] >= 3:  # the third page onwards: the service falls over
                    raise requests.ConnectionError("connection reset by peer")
            return original(method, url, *args, **kwargs)

        session.request = request  # type: ignore[method-assign]
        return session

    event = {"selectors": [RULE], "targets": [{"project_id": P2, "instance_id": explicit}]}
    report = run(
        fake, event, session_factory=factory, environ={"MODELARTS_CLEANUP_MAX_ATTEMPTS": "2"}
    )
    assert not [r for r in fake.requests if r.method == "DELETE" and r.path.startswith(f"/v1/{P}/")]
    assert len(fake.instance_ids(P)) == 200
    assert [(r["instance_id"], r["outcome"]) for r in report["results"]] == [(explicit, "deleted")]
    (selector,) = report["selectors"]
    assert selector["error_code"] == "ConnectionError"
    assert selector["listed"] is None
    assert report["status"] == "partial"


def test_listing_refused_by_the_service_is_reported(fake: FakeModelArts) -> None:
    seed(fake, 20)
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None, method="GET")
    )
    report = run(fake, {"selectors": [RULE]})
    assert report["results"] == []
    assert report["selectors"][0]["error_code"] == "ModelArts.0108"
    assert report["status"] == "failed"
    assert len(fake.instance_ids(P)) == 20


def test_cap_counts_selected_and_named_deletions_together(fake: FakeModelArts) -> None:
    seeded = seed(fake, 120)
    want = expected(seeded)
    named = [fake.add_instance(P2) for _ in range(3)]
    event = {"selectors": [RULE], "targets": [{"project_id": P2, "instance_id": i} for i in named]}
    report = run(fake, event, environ={"MODELARTS_CLEANUP_MAX_DELETIONS": str(len(want) + 2)})
    assert report["status"] == "refused"
    assert not [r for r in fake.requests if r.method == "DELETE"]
    report = run(fake, event, environ={"MODELARTS_CLEANUP_MAX_DELETIONS": str(len(want) + 3)})
    assert report["status"] == "succeeded"
    assert outcome_ids(report, "deleted") == want | set(named)


def test_prepaid_instances_are_never_selected_and_dedicated_pool_ones_are(
    fake: FakeModelArts,
) -> None:
    old = {"created_ms": NOW_MS - 500 * HOUR, "updated_ms": NOW_MS - 100 * HOUR}
    prepaid = fake.add_instance(P, name="tmp-pre", charging_mode="PRE_PAID", **old)
    pooled = fake.add_instance(
        P, name="tmp-pool", pool={"id": "pool-1", "name": "dedicated"}, **old
    )
    plain = fake.add_instance(P, name="tmp-plain", **old)
    report = run(fake, {"selectors": [RULE]})
    by_id = {r["instance_id"]: (r["outcome"], r["reason"]) for r in report["results"]}
    # A dedicated pool is billed whether its notebooks exist or not: deleting one is like any.
    assert by_id == {
        prepaid: ("refused", "prepaid"),
        pooled: ("deleted", None),
        plain: ("deleted", None),
    }
    assert fake.instance_ids(P) == {(P, prepaid)}


# -- default rules: MODELARTS_CLEANUP_SELECTORS ------------------------------------------------


def test_an_empty_user_event_applies_both_the_default_targets_and_the_default_selectors(
    fake: FakeModelArts,
) -> None:
    named = fake.add_instance(P, name="keep-me-not", status="RUNNING")
    matching = fake.add_instance(P, name="tmp-old", status="STOPPED")
    other = fake.add_instance(P, name="prod", status="STOPPED")
    timer = {"trigger_type": "TIMER", "trigger_name": "daily", "user_event": ""}
    defaults = {
        "MODELARTS_CLEANUP_TARGETS": json.dumps([{"project_id": P, "instance_id": named}]),
        "MODELARTS_CLEANUP_SELECTORS": json.dumps(
            [{"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}]
        ),
    }

    report = run(fake, timer, environ=defaults)

    assert {(r["instance_id"], r["outcome"], r["matched_by"]) for r in report["results"]} == {
        (named, "deleted", "targets"),
        (matching, "deleted", "selectors[0]"),
    }
    assert fake.instance_ids(P) == {(P, other)}


def test_a_user_event_replaces_the_defaults(fake: FakeModelArts) -> None:
    named = fake.add_instance(P, name="tmp-a", status="STOPPED")
    untouched = fake.add_instance(P, name="tmp-b", status="STOPPED")
    payload = {"targets": [{"project_id": P, "instance_id": named}]}
    timer = {"trigger_type": "TIMER", "trigger_name": "daily", "user_event": json.dumps(payload)}
    rules = [{"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}]

    report = run(fake, timer, environ={"MODELARTS_CLEANUP_SELECTORS": json.dumps(rules)})

    assert [(r["instance_id"], r["outcome"]) for r in report["results"]] == [(named, "deleted")]
    assert (P, untouched) in fake.instance_ids(P)


@pytest.mark.parametrize(
    "event",
    [
        {"trigger_type": "TIMER", "trigger_name": "daily", "user_event": ""},
        {"targets": [{"project_id": P, "instance_id": "6fa459ea-ee8a-3ca4-894e-db77e160355e"}]},
    ],
    ids=["timer", "direct"],
)
def test_invalid_default_selectors_refuse_every_run_before_any_request(
    fake: FakeModelArts, event: dict[str, Any]
) -> None:
    fake.add_instance(P, name="tmp-a", status="STOPPED")
    rules = [{"project_id": P, "statuses": ["STOPPED"]}, {"project_id": P, "idle_hours": -3}]
    log = io.StringIO()

    with pytest.raises(ConfigurationError) as caught:
        run_function(
            event,
            None,
            environ=env(fake, MODELARTS_CLEANUP_SELECTORS=json.dumps(rules)),
            log_stream=log,
            sleep=no_sleep,
        )

    assert "MODELARTS_CLEANUP_SELECTORS[1].statuses" in str(caught.value)
    assert "MODELARTS_CLEANUP_SELECTORS[1].idle_hours" in str(caught.value)
    assert fake.requests == []
    (line,) = [json.loads(text) for text in log.getvalue().splitlines()]
    assert line["level"] == "ERROR" and line["error_type"] == "ConfigurationError"
