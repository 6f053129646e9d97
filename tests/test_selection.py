"""Selectors: each rule alone, rules combined, and what is kept when something is unreadable."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelarts_cleanup.cleanup.discovery import discover
from modelarts_cleanup.cleanup.planning import Candidate, Policy, make_plan
from modelarts_cleanup.cleanup.selection import HOUR_MS, evaluate, recheck, select
from modelarts_cleanup.cloud.instances import ListedInstance
from modelarts_cleanup.cloud.listing import WorkspaceListing
from modelarts_cleanup.events.envelopes import parse_event
from modelarts_cleanup.events.payload import Target
from modelarts_cleanup.events.rules import Selector
from modelarts_cleanup.events.tags import TagCondition
from modelarts_cleanup.exceptions import ApiError, PayloadError

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000_000


def iid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def Inst(instance_id: str = iid(1), **fields: Any) -> ListedInstance:
    """A listed instance that every rule below picks unless a test says otherwise."""
    defaults: dict[str, Any] = {
        "project_id": P,
        "instance_id": instance_id,
        "name": "tmp-notebook",
        "status": "STOPPED",
        "created_ms": NOW - 1000 * HOUR_MS,
        "updated_ms": NOW - 100 * HOUR_MS,
        "feature": "NOTEBOOK",
        "billing": "postpaid",
        "workspace_id": "0",
        "owner_id": "a1" * 16,
        "owner_name": "alice",
    }
    return ListedInstance(**{**defaults, **fields})


def selector(**fields: Any) -> Selector:
    return Selector.model_validate({"project_id": P, "statuses": ["STOPPED"], **fields})


def picked(sel: Selector, *instances: ListedInstance) -> list[tuple[str, str | None]]:
    return [(p.instance_id, p.refusal) for p in select(sel, instances, now_ms=NOW)]


def test_status_rule() -> None:
    sel = selector(statuses=["STOPPED", "ERROR"])
    assert evaluate(sel, Inst(status="STOPPED"), now_ms=NOW) is True
    assert evaluate(sel, Inst(status="ERROR"), now_ms=NOW) is True
    assert evaluate(sel, Inst(status="RUNNING"), now_ms=NOW) is False


def test_idle_hours_rule_uses_the_last_update() -> None:
    sel = selector(idle_hours=72)
    assert evaluate(sel, Inst(updated_ms=NOW - 72 * HOUR_MS), now_ms=NOW) is True
    assert evaluate(sel, Inst(updated_ms=NOW - 72 * HOUR_MS + 1), now_ms=NOW) is False


def test_older_than_hours_rule_uses_creation() -> None:
    sel = selector(older_than_hours=24.5)
    assert evaluate(sel, Inst(created_ms=NOW - int(24.5 * HOUR_MS)), now_ms=NOW) is True
    assert evaluate(sel, Inst(created_ms=NOW - 24 * HOUR_MS), now_ms=NOW) is False


@pytest.mark.parametrize(
    "when",
    [
        NOW + 1,
        NOW + 100 * HOUR_MS,  # a clock ahead of ours
        (NOW - 100 * HOUR_MS) * 1000,  # microseconds read as milliseconds: far in the future
    ],
    ids=["just ahead", "clock skew", "wrong unit"],
)
def test_a_time_in_the_future_is_neither_idle_nor_old(when: int) -> None:
    assert evaluate(selector(idle_hours=72), Inst(updated_ms=when), now_ms=NOW) is False
    assert evaluate(selector(older_than_hours=720), Inst(created_ms=when), now_ms=NOW) is False
    assert picked(selector(idle_hours=1, older_than_hours=1), Inst(created_ms=when)) == []


def test_name_pattern_is_a_case_sensitive_whole_name_glob() -> None:
    sel = selector(name_pattern="tmp-*")
    assert evaluate(sel, Inst(name="tmp-1"), now_ms=NOW) is True
    assert evaluate(sel, Inst(name="TMP-1"), now_ms=NOW) is False
    assert evaluate(sel, Inst(name="my-tmp-1"), now_ms=NOW) is False


def test_exclusions_win_over_the_pattern() -> None:
    sel = selector(name_pattern="tmp-*", exclude_names=["tmp-keep-*", "tmp-prod"])
    assert evaluate(sel, Inst(name="tmp-1"), now_ms=NOW) is True
    assert evaluate(sel, Inst(name="tmp-keep-me"), now_ms=NOW) is False
    assert evaluate(sel, Inst(name="tmp-prod"), now_ms=NOW) is False


def test_rules_combine_with_and() -> None:
    sel = selector(statuses=["STOPPED"], idle_hours=72, older_than_hours=500, name_pattern="tmp-*")
    good = Inst()
    assert evaluate(sel, good, now_ms=NOW) is True
    for spoiled in (
        replace(good, status="RUNNING"),
        replace(good, updated_ms=NOW - HOUR_MS),
        replace(good, created_ms=NOW - 10 * HOUR_MS),
        replace(good, name="prod-notebook"),
    ):
        assert evaluate(sel, spoiled, now_ms=NOW) is False


@pytest.mark.parametrize(
    ("fields", "inst"),
    [
        ({}, Inst(status=None)),
        ({"idle_hours": 1}, Inst(updated_ms=None)),
        ({"older_than_hours": 1}, Inst(created_ms=None)),
        ({"name_pattern": "tmp-*"}, Inst(name=None)),
    ],
)
def test_unreadable_state_is_kept_with_a_reason(
    fields: dict[str, Any], inst: ListedInstance
) -> None:
    assert picked(selector(**fields), inst) == [(inst.instance_id, "state_unreadable")]


def test_unreadable_field_does_not_matter_when_another_rule_already_fails() -> None:
    assert picked(selector(idle_hours=1), Inst(updated_ms=None, status="RUNNING")) == []


def test_fields_a_selector_does_not_use_may_be_missing() -> None:
    assert picked(selector(), Inst(updated_ms=None, created_ms=None, name=None)) == [(iid(1), None)]


@pytest.mark.parametrize(
    ("billing", "refusal"),
    [("prepaid", "prepaid"), (None, "billing_unreadable"), ("postpaid", None)],
)
def test_billing_decides_last(billing: str | None, refusal: str | None) -> None:
    assert picked(selector(), Inst(billing=billing)) == [(iid(1), refusal)]


def test_recheck_refuses_an_instance_that_changed() -> None:
    sel = selector(idle_hours=72)
    assert recheck(sel, Inst(), now_ms=NOW) is None
    assert recheck(sel, Inst(status="RUNNING"), now_ms=NOW) == "state_changed"
    assert recheck(sel, Inst(updated_ms=NOW - HOUR_MS), now_ms=NOW) == "state_changed"
    assert recheck(sel, Inst(billing="prepaid"), now_ms=NOW) == "prepaid"


# The payload side of selectors.


def test_selectors_are_accepted_alone_or_with_targets() -> None:
    sel = {
        "project_id": P,
        "statuses": ["STOPPED", "ERROR"],
        "idle_hours": 72,
        "name_pattern": "tmp-*",
    }
    payload = parse_event({"selectors": [sel]})
    assert payload.targets == []
    assert payload.selectors[0].statuses == ("STOPPED", "ERROR")
    both = parse_event(
        {"selectors": [sel, sel], "targets": [{"project_id": P, "instance_id": iid(1)}]}
    )
    assert len(both.selectors) == 2  # kept as given: results name selectors by position


@pytest.mark.parametrize(
    ("sel", "start"),
    [
        ({"project_id": P}, "selectors[0].statuses: required"),
        ({"project_id": P, "statuses": []}, "selectors[0].statuses: "),
        ({"project_id": P, "statuses": ["stopped"]}, "selectors[0].statuses[0]: "),
        ({"project_id": P, "statuses": ["STOPPED"], "idle_hours": 0}, "selectors[0].idle_hours: "),
        (
            {"project_id": P, "statuses": ["STOPPED"], "idle_hours": "72"},
            "selectors[0].idle_hours: ",
        ),
        (
            {"project_id": P, "statuses": ["STOPPED"], "older_than_hours": -1},
            "selectors[0].older_than_hours",
        ),
        (
            {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "a\nb"},
            "selectors[0].name_pattern",
        ),
        (
            {"project_id": P, "statuses": ["STOPPED"], "name_pattern": ""},
            "selectors[0].name_pattern",
        ),
        (
            {"project_id": P, "statuses": ["STOPPED"], "exclude_names": "keep"},
            "selectors[0].exclude_names",
        ),
        ({"project_id": P, "statuses": ["STOPPED"], "all": True}, "selectors[0].all: unknown key"),
        ({"project_id": "x", "statuses": ["STOPPED"]}, "selectors[0].project_id: must be 32"),
    ],
)
def test_malformed_selectors_are_refused(sel: dict[str, Any], start: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event({"selectors": [sel]})
    assert caught.value.problems[0].startswith(start), caught.value.problems


# Discovery: listing each project once, failing closed per project.


class Lister:
    """A client whose fleet is given: (project -> workspaces), (project, workspace) -> listing."""

    def __init__(
        self,
        listings: dict[str, list[ListedInstance] | ApiError],
        workspaces: dict[str, list[str] | ApiError] | None = None,
    ) -> None:
        self.listings = listings
        self.workspace_ids = workspaces or {}
        self.calls: list[str] = []

    def fleet(self, *, scope: str, concurrency: int, deadline: float | None) -> Lister:
        return self

    def workspaces(self, projects: Any) -> dict[str, list[str] | ApiError]:
        return {p: self.workspace_ids.get(p, ["0"]) for p in projects}

    def workspace_name(self, project_id: str, workspace_id: str) -> str | None:
        return None

    def instances(self, pairs: Any) -> list[WorkspaceListing]:
        found = []
        for project, workspace in pairs:
            self.calls.append(project)
            listing = self.listings.get(project, [])
            if isinstance(listing, ApiError):
                found.append(WorkspaceListing(project, workspace, error=listing))
            else:
                mine = tuple(i for i in listing if (i.workspace_id or "0") == workspace)
                found.append(WorkspaceListing(project, workspace, instances=mine))
        return found

    def get_listed_instance(self, project_id: str, instance_id: str, **_: Any) -> None:
        return None


def test_each_project_is_listed_once() -> None:
    lister = Lister({P: [Inst(iid(1)), Inst(iid(2), status="RUNNING")]})
    sels = [selector(), selector(statuses=["RUNNING"])]
    candidates, reports = discover(sels, lister, policy=Policy(), deadline=None, now_ms=NOW)
    assert lister.calls == [P]
    assert [(c.target.instance_id, c.matched_by) for c in candidates] == [
        (iid(1), "selectors[0]"),
        (iid(2), "selectors[1]"),
    ]
    assert [(r.listed, r.picked) for r in reports] == [(2, 1), (2, 1)]


def test_listing_failure_stops_that_projects_selectors_only() -> None:
    failure = ApiError("boom", http_status=503, error_code="ModelArts.6102", attempts=5)
    lister = Lister({P: failure, P2: [Inst(iid(3))]})
    sels = [selector(), selector(project_id=P2)]
    candidates, reports = discover(sels, lister, policy=Policy(), deadline=None, now_ms=NOW)
    assert [c.target.project_id for c in candidates] == [P2]
    assert (reports[0].failed, reports[0].error_code, reports[0].http_status) == (
        True,
        "ModelArts.6102",
        503,
    )
    assert reports[1].failed is False


def test_projects_outside_the_allowlist_are_not_even_listed() -> None:
    lister = Lister({P: [Inst()]})
    candidates, reports = discover(
        [selector()],
        lister,
        policy=Policy(allowed_projects=frozenset({P2})),
        deadline=None,
        now_ms=NOW,
    )
    assert (candidates, lister.calls) == ([], [])
    assert reports[0].error_code == "project_not_allowed"


def test_a_selector_outside_the_allowlist_leaves_the_later_ones_alone() -> None:
    lister = Lister({P: [Inst(iid(1))], P2: [Inst(iid(2), project_id=P2)]})
    candidates, reports = discover(
        [selector(), selector(project_id=P2), selector()],
        lister,
        policy=Policy(allowed_projects=frozenset({P2})),
        deadline=None,
        now_ms=NOW,
    )
    assert [(c.target.instance_id, c.matched_by) for c in candidates] == [(iid(2), "selectors[1]")]
    assert lister.calls == [P2]
    assert [r.error_code for r in reports] == ["project_not_allowed", None, "project_not_allowed"]
    assert [(r.listed, r.picked) for r in reports][1] == (1, 1)


def test_listed_ids_that_are_not_valid_ids_are_never_candidates() -> None:
    lister = Lister({P: [Inst("../../etc"), Inst(iid(1))]})
    candidates, _ = discover([selector()], lister, policy=Policy(), deadline=None, now_ms=NOW)
    assert [c.target.instance_id for c in candidates] == [iid(1)]


def test_cap_counts_selected_and_explicit_targets_together() -> None:
    lister = Lister({P: [Inst(iid(n)) for n in range(1, 4)]})
    candidates, _ = discover([selector()], lister, policy=Policy(), deadline=None, now_ms=NOW)
    explicit = [Target(project_id=P, instance_id=iid(9)), Target(project_id=P, instance_id=iid(1))]
    plan = make_plan([*explicit, *candidates], Policy(max_deletions=3), dry_run=False)
    assert plan.refused_run is not None
    assert "4 deletions planned" in plan.refused_run
    assert (
        make_plan([*explicit, *candidates], Policy(max_deletions=4), dry_run=False).refused_run
        is None
    )


def test_explicit_target_wins_over_a_selector_and_refusals_are_not_counted() -> None:
    lister = Lister({P: [Inst(iid(1)), Inst(iid(2), billing="prepaid")]})
    candidates, _ = discover([selector()], lister, policy=Policy(), deadline=None, now_ms=NOW)
    plan = make_plan(
        [Target(project_id=P, instance_id=iid(1)), *candidates],
        Policy(max_deletions=1),
        dry_run=False,
    )
    assert plan.refused_run is None
    (only,) = plan.to_delete
    assert (only.matched_by, only.selector) == ("targets", None)
    (kept,) = plan.refused
    assert (kept.instance_id, kept.reason, kept.matched_by) == (iid(2), "prepaid", "selectors[0]")
    assert isinstance(candidates[0], Candidate)


# Tags, owners and pools.

KEEP = (TagCondition("modelarts-cleanup:keep"),)


def test_tag_conditions_read_in_all_three_forms() -> None:
    sel = selector(tags=["team", "stage=prod", {"key": "a=b", "value": "c=d"}, {"key": "x"}])
    assert sel.tags == (
        TagCondition("team"),
        TagCondition("stage", "prod"),
        TagCondition("a=b", "c=d"),
        TagCondition("x"),
    )
    # Split at the first "=": the value may hold more of them.
    assert selector(tags=["k=v=w"]).tags == (TagCondition("k", "v=w"),)
    assert selector(tags=["k="]).tags == (TagCondition("k", ""),)


def test_every_tag_must_hold_and_a_key_alone_matches_any_value() -> None:
    sel = selector(tags=["team", "stage=prod"])
    assert evaluate(sel, Inst(tags=(("team", "ml"), ("stage", "prod"))), now_ms=NOW) is True
    assert evaluate(sel, Inst(tags=(("team", ""), ("stage", "prod"))), now_ms=NOW) is True
    assert evaluate(sel, Inst(tags=(("team", "ml"), ("stage", "dev"))), now_ms=NOW) is False
    assert evaluate(sel, Inst(tags=(("stage", "prod"),)), now_ms=NOW) is False
    assert evaluate(sel, Inst(tags=()), now_ms=NOW) is False


def test_any_excluded_tag_keeps_an_instance_out() -> None:
    sel = selector(exclude_tags=["stage=prod", "pinned"])
    assert evaluate(sel, Inst(tags=(("stage", "dev"),)), now_ms=NOW) is True
    assert evaluate(sel, Inst(tags=(("stage", "prod"),)), now_ms=NOW) is False
    assert evaluate(sel, Inst(tags=(("pinned", "by-bob"),)), now_ms=NOW) is False


def test_owners_match_the_user_name_or_id() -> None:
    sel = selector(owners=["alice", "b0" * 16])
    assert evaluate(sel, Inst(owner_name="alice", owner_id="a1" * 16), now_ms=NOW) is True
    assert evaluate(sel, Inst(owner_name=None, owner_id="b0" * 16), now_ms=NOW) is True
    assert evaluate(sel, Inst(owner_name="bob", owner_id="b1" * 16), now_ms=NOW) is False
    # Names are compared exactly: "Alice" is someone else.
    assert evaluate(sel, Inst(owner_name="Alice", owner_id=None), now_ms=NOW) is False


def test_pools_match_public_dedicated_or_an_id() -> None:
    on_pool = Inst(pool=("pool-v100", "v100"))
    public = Inst(pool=None)
    assert evaluate(selector(pools=["public"]), public, now_ms=NOW) is True
    assert evaluate(selector(pools=["public"]), on_pool, now_ms=NOW) is False
    assert evaluate(selector(pools=["dedicated"]), on_pool, now_ms=NOW) is True
    assert evaluate(selector(pools=["dedicated"]), public, now_ms=NOW) is False
    assert evaluate(selector(pools=["pool-v100"]), on_pool, now_ms=NOW) is True
    assert evaluate(selector(pools=["pool-t4xx"]), on_pool, now_ms=NOW) is False


@pytest.mark.parametrize(
    ("fields", "inst"),
    [
        ({"tags": ["team"]}, Inst(tags=None)),
        ({"exclude_tags": ["team"]}, Inst(tags=None)),
        ({"owners": ["alice"]}, Inst(owner_name=None, owner_id=None)),
        ({"pools": ["public"]}, Inst(pool=None, pool_unreadable=True)),
    ],
)
def test_an_unreadable_tag_owner_or_pool_keeps_the_instance(
    fields: dict[str, Any], inst: ListedInstance
) -> None:
    assert picked(selector(**fields), inst) == [(inst.instance_id, "state_unreadable")]


def test_new_rules_combine_with_the_old_ones() -> None:
    sel = selector(idle_hours=72, name_pattern="tmp-*", tags=["team=ml"], owners=["alice"])
    good = Inst(tags=(("team", "ml"),))
    assert evaluate(sel, good, now_ms=NOW) is True
    for spoiled in (
        replace(good, tags=(("team", "cv"),)),
        replace(good, owner_name="bob", owner_id="b1" * 16),
        replace(good, name="prod-x"),
        replace(good, updated_ms=NOW - HOUR_MS),
    ):
        assert evaluate(sel, spoiled, now_ms=NOW) is False


def test_a_protect_tag_refuses_before_anything_else() -> None:
    protected = Inst(tags=(("modelarts-cleanup:keep", ""),), billing="prepaid")
    assert [p.refusal for p in select(selector(), [protected], now_ms=NOW, protect=KEEP)] == [
        "protected"
    ]
    # Unreadable state does not hide the protection either.
    unknown = Inst(status=None, tags=(("modelarts-cleanup:keep", "x"),))
    assert [p.refusal for p in select(selector(), [unknown], now_ms=NOW, protect=KEEP)] == [
        "protected"
    ]


def test_with_protect_tags_on_unreadable_tags_keep_an_instance() -> None:
    inst = Inst(tags=None)
    assert [p.refusal for p in select(selector(), [inst], now_ms=NOW, protect=KEEP)] == [
        "state_unreadable"
    ]
    # With the guard switched off, tags no rule reads do not matter.
    assert [p.refusal for p in select(selector(), [inst], now_ms=NOW, protect=())] == [None]


def test_recheck_sees_a_protect_tag_added_since_listing() -> None:
    sel = selector()
    assert recheck(
        sel, Inst(tags=(("modelarts-cleanup:keep", "y"),)), now_ms=NOW, protect=KEEP
    ) == ("protected")
    assert recheck(sel, Inst(tags=None), now_ms=NOW, protect=KEEP) == "state_changed"
    assert recheck(sel, Inst(tags=()), now_ms=NOW, protect=KEEP) is None
