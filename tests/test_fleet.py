"""Cleanup by rule over a whole fleet, end to end: every workspace, every user's notebooks, tags,
owners and pools, a workspace that cannot be listed, and what the plan shows a person."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timezone
from typing import Any

import pytest

from modelarts_cleanup.cleanup.tables import render_plan
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.settings import DEFAULT_PROTECT_TAG
from modelarts_cleanup.testing import CALLER, FakeModelArts, Fault, User
from tests.support import endpoint_environ, no_sleep

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
NOW_MS = 1_800_000_000_000
HOUR = 3_600_000
WORKSPACES = ("0", "a1" * 16, "b2" * 16, "c3" * 16)
ALICE, BOB, CHEN = User("a" * 32, "alice"), User("b" * 32, "bob"), User("c" * 32, "chen")
PEOPLE = (ALICE, BOB, CHEN)
RULE: dict[str, Any] = {"project_id": P, "statuses": ["STOPPED"], "idle_hours": 48}


def run(fake: FakeModelArts, event: object, *, dry_run: bool = False, **env: str) -> dict[str, Any]:
    environ = endpoint_environ(
        fake.url,
        MODELARTS_CLEANUP_MAX_DELETIONS="1000",
        MODELARTS_CLEANUP_CONCURRENCY="16",
        **env,
    )
    return run_function(
        event,
        None,
        environ=environ,
        log_stream=io.StringIO(),
        force_dry_run=dry_run,
        wall_clock=lambda: NOW_MS / 1000,
        sleep=no_sleep,
    )


def add(fake: FakeModelArts, **fields: Any) -> str:
    """An instance every rule here picks unless `fields` say otherwise."""
    defaults: dict[str, Any] = {
        "status": "STOPPED",
        "created_ms": NOW_MS - 500 * HOUR,
        "updated_ms": NOW_MS - 100 * HOUR,
        "owner": ALICE,
    }
    return fake.add_instance(fields.pop("project_id", P), **{**defaults, **fields})


def fleet(fake: FakeModelArts, count: int, seed: int = 5) -> dict[str, dict[str, Any]]:
    """`count` instances over every workspace and person, in every state; what each is."""
    rng = random.Random(seed)
    made = {}
    for n in range(count):
        spec = {
            "workspace_id": WORKSPACES[n % len(WORKSPACES)],
            "owner": PEOPLE[(n // len(WORKSPACES)) % len(PEOPLE)],
            "status": rng.choice(["STOPPED", "STOPPED", "RUNNING", "ERROR"]),
            "updated_ms": NOW_MS - rng.randint(1, 200) * HOUR,
            "tags": {"team": "ml"} if rng.random() < 0.3 else {},
        }
        made[add(fake, **spec)] = spec
    return made


def picked_by_rule(made: dict[str, dict[str, Any]]) -> set[str]:
    """RULE, computed apart from the code under test."""
    return {
        i
        for i, s in made.items()
        if s["status"] == "STOPPED" and NOW_MS - s["updated_ms"] >= 48 * HOUR
    }


def outcomes(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {r["instance_id"]: (r["outcome"], r["reason"]) for r in report["results"]}


def ids_with(report: dict[str, Any], outcome: str) -> set[str]:
    return {i for i, (o, _) in outcomes(report).items() if o == outcome}


def test_a_rule_sees_every_workspace_and_every_users_notebooks(fake: FakeModelArts) -> None:
    made = fleet(fake, 320)
    want = picked_by_rule(made)
    assert CALLER not in PEOPLE  # the function's own identity created none of them
    assert {made[i]["workspace_id"] for i in want} == set(WORKSPACES)
    assert {made[i]["owner"] for i in want} == set(PEOPLE)

    plan = run(fake, {"selectors": [RULE]}, dry_run=True)
    assert ids_with(plan, "would_delete") == want
    assert not [r for r in fake.requests if r.method != "GET"]
    report = run(fake, {"selectors": [RULE]})

    assert ids_with(report, "deleted") == want
    assert {i for _, i in fake.instance_ids(P)} == set(made) - want
    (entry,) = report["selectors"]
    assert entry["listed"] == 320
    assert entry["workspaces"] == [
        {
            "workspace_id": w,
            "workspace_name": "default" if w == "0" else f"workspace-{w[:6]}",
            "listed": 80,
            "error_code": None,
            "error_msg": None,
            "http_status": None,
        }
        for w in WORKSPACES
    ]
    assert entry["failed_workspace"] is None
    listings = [r for r in fake.requests if r.method == "GET" and r.instance_id is None]
    assert {r.path for r in listings} == {f"/v1/{P}/workspaces", f"/v1/{P}/notebooks/all"}


def test_own_scope_sees_only_the_callers_notebooks(fake: FakeModelArts) -> None:
    mine = add(fake, owner=CALLER)
    theirs = add(fake, owner=BOB)
    mine_elsewhere = add(fake, owner=CALLER, workspace_id=WORKSPACES[2])

    report = run(fake, {"selectors": [RULE]}, MODELARTS_CLEANUP_LIST_SCOPE="own")

    assert ids_with(report, "deleted") == {mine, mine_elsewhere}
    assert fake.instance(P, theirs) is not None
    paths = {r.path for r in fake.requests if r.method == "GET" and r.instance_id is None}
    assert paths == {f"/v1/{P}/workspaces", f"/v1/{P}/notebooks"}


def test_workspace_ids_narrow_a_rule_and_spare_the_workspace_listing(fake: FakeModelArts) -> None:
    inside = add(fake, workspace_id=WORKSPACES[1])
    outside = add(fake, workspace_id=WORKSPACES[2])

    report = run(fake, {"selectors": [{**RULE, "workspace_ids": [WORKSPACES[1]]}]})

    assert ids_with(report, "deleted") == {inside}
    assert fake.instance(P, outside) is not None
    assert not [r for r in fake.requests if r.path.endswith("/workspaces")]


def test_a_workspace_that_cannot_be_listed_keeps_only_its_own_notebooks_out(
    fake: FakeModelArts,
) -> None:
    made = fleet(fake, 120)
    elsewhere = add(fake, project_id=P2)
    named = add(fake, project_id=P2, status="RUNNING", name="named")
    fake.add_fault(
        Fault("status", status=500, error_code="ModelArts.6102", times=None),
        workspace_id=WORKSPACES[2],
    )
    event = {
        "selectors": [
            RULE,  # covers the failing workspace: goes on in the others
            {**RULE, "workspace_ids": [WORKSPACES[1]]},  # does not cover it
            {**RULE, "project_id": P2},  # another project
        ],
        "targets": [{"project_id": P2, "instance_id": named}],
    }

    report = run(fake, event, MODELARTS_CLEANUP_MAX_ATTEMPTS="2")

    first, second, third = report["selectors"]
    assert (first["error_code"], first["failed_workspace"]) == (None, WORKSPACES[2])
    by_workspace = {w["workspace_id"]: w for w in first["workspaces"]}
    assert list(by_workspace) == list(WORKSPACES)
    failed = by_workspace[WORKSPACES[2]]
    assert (failed["listed"], failed["error_code"], failed["http_status"]) == (
        None,
        "ModelArts.6102",
        500,
    )
    assert failed["error_msg"]
    listed_ok = [w for w in WORKSPACES if w != WORKSPACES[2]]
    for workspace in listed_ok:
        entry = by_workspace[workspace]
        held = sum(1 for spec in made.values() if spec["workspace_id"] == workspace)
        assert (entry["listed"], entry["error_code"], entry["error_msg"]) == (held, None, None)
    assert first["listed"] == sum(by_workspace[w]["listed"] for w in listed_ok)
    assert second["error_code"] is None and third["error_code"] is None
    in_listed = {i for i in picked_by_rule(made) if made[i]["workspace_id"] in listed_ok}
    assert ids_with(report, "deleted") == in_listed | {elsewhere, named}
    assert report["status"] == "partial"
    table = render_plan(report)
    # The table names a workspace as ListWorkspace does.
    assert failed["workspace_name"] is not None
    shown = f"{failed['workspace_name']}: not listed (ModelArts.6102), nothing in it is deleted"
    assert shown in table
    for instance_id, spec in made.items():
        if spec["workspace_id"] == WORKSPACES[2]:
            assert fake.instance(P, instance_id) is not None


def test_a_rule_whose_every_workspace_fails_is_not_applied(fake: FakeModelArts) -> None:
    add(fake)
    fake.add_fault(Fault("status", status=403, error_code="ModelArts.0108", times=None))
    report = run(fake, {"selectors": [{**RULE, "workspace_ids": ["0", WORKSPACES[1]]}]})
    (entry,) = report["selectors"]
    assert (entry["error_code"], entry["failed_workspace"], entry["listed"]) == (
        "ModelArts.0108",
        "0",
        None,
    )
    assert [w["error_code"] for w in entry["workspaces"]] == ["ModelArts.0108"] * 2
    assert (report["results"], report["status"]) == ([], "failed")


def test_a_workspace_the_service_says_no_longer_exists_is_listed_and_empty(
    fake: FakeModelArts,
) -> None:
    for workspace in WORKSPACES[1:3]:
        fake.add_workspace(P, workspace)
    kept_going = add(fake, workspace_id=WORKSPACES[1])
    doomed = add(fake, workspace_id=WORKSPACES[2])
    fake.delete_workspace(P, WORKSPACES[2])
    assert fake.instance(P, doomed) is None

    report = run(fake, {"selectors": [RULE]})

    (entry,) = report["selectors"]
    listed = {w["workspace_id"]: (w["listed"], w["error_code"]) for w in entry["workspaces"]}
    assert listed == {"0": (0, None), WORKSPACES[1]: (1, None), WORKSPACES[2]: (0, None)}
    assert (entry["error_code"], entry["failed_workspace"]) == (None, None)
    assert ids_with(report, "deleted") == {kept_going}
    assert report["status"] == "succeeded"
    gone = [r for r in fake.requests if "workspace_id=" + WORKSPACES[2] in r.query]
    assert {r.status for r in gone} == {400}


def test_when_the_workspaces_cannot_be_listed_nothing_is_picked(fake: FakeModelArts) -> None:
    add(fake)
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None),
        action="workspace_list",
    )

    report = run(fake, {"selectors": [RULE]})

    (entry,) = report["selectors"]
    assert (entry["error_code"], entry["failed_workspace"]) == ("ModelArts.0108", None)
    assert report["results"] == []
    assert not [r for r in fake.requests if r.path.endswith("/notebooks/all")]


def test_the_protect_tag_keeps_a_notebook_from_every_rule(fake: FakeModelArts) -> None:
    kept = add(fake, tags={"modelarts-cleanup:keep": "true"})
    kept_any_value = add(fake, tags={"modelarts-cleanup:keep": ""})
    gone = add(fake, tags={"team": "ml"})

    report = run(fake, {"selectors": [RULE]})

    assert outcomes(report)[kept] == ("refused", "protected")
    assert outcomes(report)[kept_any_value] == ("refused", "protected")
    assert outcomes(report)[gone] == ("deleted", None)
    assert fake.instance(P, kept) is not None


def test_protect_tags_from_the_setting_replace_the_default_and_an_empty_list_disables_them(
    fake: FakeModelArts,
) -> None:
    legal_hold = add(fake, tags={"legal-hold": "2027"})
    default_tag = add(fake, tags={"modelarts-cleanup:keep": "true"})

    custom = run(
        fake, {"selectors": [RULE]}, dry_run=True, MODELARTS_CLEANUP_PROTECT_TAGS="legal-hold"
    )
    off = run(fake, {"selectors": [RULE]}, dry_run=True, MODELARTS_CLEANUP_PROTECT_TAGS="[]")

    assert outcomes(custom) == {
        legal_hold: ("refused", "protected"),
        default_tag: ("would_delete", None),
    }
    assert outcomes(off) == {
        legal_hold: ("would_delete", None),
        default_tag: ("would_delete", None),
    }


def test_a_protect_tag_added_after_listing_keeps_the_notebook(fake: FakeModelArts) -> None:
    late = add(fake)

    # The owner tags it between the listing and the delete: the re-read before deleting sees it.
    report = run_with_tag_added_before_delete(fake, late)

    assert outcomes(report)[late] == ("refused", "protected")
    assert fake.instance(P, late) is not None
    assert not [r for r in fake.requests if r.method == "DELETE"]


def run_with_tag_added_before_delete(fake: FakeModelArts, instance_id: str) -> dict[str, Any]:
    """Run RULE; the protect tag appears on `instance_id` just after the fleet is listed."""
    fake.on_next_read(P, instance_id, lambda: fake.tag(P, instance_id, {DEFAULT_PROTECT_TAG: "y"}))
    return run_function(
        {"selectors": [RULE]},
        None,
        environ=endpoint_environ(fake.url),
        log_stream=io.StringIO(),
        wall_clock=lambda: NOW_MS / 1000,
        sleep=no_sleep,
    )


def test_dedicated_pool_notebooks_are_picked_unless_pools_excludes_them(
    fake: FakeModelArts,
) -> None:
    public = add(fake)
    pooled = add(fake, pool=("pool-v100a", "v100"))
    other_pool = add(fake, pool=("pool-t4b", "t4"))

    every = run(fake, {"selectors": [RULE]}, dry_run=True)
    public_only = run(fake, {"selectors": [{**RULE, "pools": ["public"]}]}, dry_run=True)
    dedicated = run(fake, {"selectors": [{**RULE, "pools": ["dedicated"]}]}, dry_run=True)
    one_pool = run(fake, {"selectors": [{**RULE, "pools": ["pool-v100a"]}]}, dry_run=True)

    assert ids_with(every, "would_delete") == {public, pooled, other_pool}
    assert ids_with(public_only, "would_delete") == {public}
    assert ids_with(dedicated, "would_delete") == {pooled, other_pool}
    assert ids_with(one_pool, "would_delete") == {pooled}
    pool_of = {r["instance_id"]: r["pool"] for r in every["results"]}
    assert pool_of[public] is None and pool_of[pooled] == {"id": "pool-v100a", "name": "v100"}


def test_tags_and_owners_narrow_a_rule(fake: FakeModelArts) -> None:
    ml_alice = add(fake, tags={"team": "ml"}, owner=ALICE)
    ml_bob = add(fake, tags={"team": "ml", "stage": "prod"}, owner=BOB)
    cv_alice = add(fake, tags={"team": "cv"}, owner=ALICE)

    def picks(**rule: Any) -> set[str]:
        return ids_with(run(fake, {"selectors": [{**RULE, **rule}]}, dry_run=True), "would_delete")

    assert picks(tags=["team=ml"]) == {ml_alice, ml_bob}
    assert picks(tags=["team"]) == {ml_alice, ml_bob, cv_alice}
    assert picks(tags=["team=ml"], exclude_tags=[{"key": "stage"}]) == {ml_alice}
    assert picks(owners=["alice"]) == {ml_alice, cv_alice}
    assert picks(owners=[BOB.id]) == {ml_bob}
    assert picks(owners=["alice"], tags=["team=cv"]) == {cv_alice}


def test_every_selected_result_says_what_the_rules_read(fake: FakeModelArts) -> None:
    fake.add_workspace(P, WORKSPACES[3], name="team-vision")
    instance = add(
        fake,
        name="tmp-x",
        workspace_id=WORKSPACES[3],
        owner=BOB,
        tags={"team": "ml"},
        pool=("pool-v100a", "v100"),
        created_ms=NOW_MS - 60 * HOUR,
        updated_ms=NOW_MS - 48 * HOUR,
    )
    named = add(fake, project_id=P2)

    report = run(
        fake,
        {"selectors": [RULE], "targets": [{"project_id": P2, "instance_id": named}]},
        dry_run=True,
    )

    by_id = {r["instance_id"]: r for r in report["results"]}
    selected = by_id[instance]
    assert {k: selected[k] for k in ("instance_name", "listed_status", "workspace_id")} == {
        "instance_name": "tmp-x",
        "listed_status": "STOPPED",
        "workspace_id": WORKSPACES[3],
    }
    assert selected["owner"] == {"id": BOB.id, "name": "bob"}
    assert selected["tags"] == [{"key": "team", "value": "ml"}]
    assert selected["pool"] == {"id": "pool-v100a", "name": "v100"}
    assert (selected["created"], selected["updated"]) == (
        "2027-01-12T20:00:00Z",
        "2027-01-13T08:00:00Z",
    )
    # A named target is read too (a dry run says what the run would do): what the read gave.
    assert by_id[named]["outcome"] == "would_delete"
    assert all(by_id[named][k] is not None for k in ("listed_status", "owner", "tags", "created"))

    table = render_plan(report, now=datetime.fromtimestamp(NOW_MS / 1000, tz=timezone.utc))
    header = table.splitlines()[0].split()
    assert header == [
        "instance_id",
        "name",
        "status",
        "owner",
        "workspace",
        "idle_days",
        "age_days",
        "outcome",
        "matched_by",
    ]  # no `reason`: a column no row has a value in is left out
    assert max(len(line) for line in table.splitlines()) <= 120
    # Full IDs would make it 121 columns wide: they are cut to their first 8 characters.
    row = next(line for line in table.splitlines() if line.startswith(instance[:8] + "~ "))
    assert row.split()[1:] == [
        "tmp-x",
        "STOPPED",
        "bob",
        "team-vision",
        "2.0",
        "2.5",
        "would_delete",
        "selectors[0]",
    ]
    assert "1 listed, 1 picked (by workspace: default: 0, team-vision: 1)" in table


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspace_ids", ["../0"]),
        ("workspace_ids", ["A" * 32]),
        ("workspace_ids", "0"),
        ("tags", ["_sys_hidden"]),
        ("tags", [" leading-space"]),
        ("tags", ["k=v\nx"]),
        ("tags", [{"key": "k", "value": "v", "extra": 1}]),
        ("tags", [{"value": "v"}]),
        ("tags", [7]),
        ("tags", ["x" * 129]),
        ("exclude_tags", [{"key": "k", "value": "y" * 256}]),
        ("exclude_tags", ["a=b;c"]),
        ("owners", ["alice\x00"]),
        ("owners", [""]),
        ("owners", ["a" * 65]),
        ("pools", ["Pool-1"]),
        ("pools", ["pool/../x"]),
        ("pools", ["p"]),
        ("pools", [None]),
    ],
)
def test_hostile_values_in_the_new_fields_are_refused_before_any_request(
    fake: FakeModelArts, field: str, value: Any
) -> None:
    add(fake)
    with pytest.raises(Exception) as caught:  # noqa: PT011  (the payload error, checked below)
        run(fake, {"selectors": [{**RULE, field: value}]})
    assert type(caught.value).__name__ == "PayloadError"
    assert f"selectors[0].{field}" in str(caught.value)
    assert fake.requests == []


def test_the_schema_describes_the_new_fields() -> None:
    from modelarts_cleanup.events.payload import payload_schema

    rule = payload_schema()["$defs"]["Selector"]["properties"]
    assert {"workspace_ids", "tags", "exclude_tags", "owners", "pools"} <= set(rule)
    condition = rule["tags"]["items"]
    assert {branch["type"] for branch in condition["anyOf"]} == {"string", "object"}
    assert json.dumps(rule)  # serialisable as printed by `schema`
