"""Selectors: each rule alone, rules combined, and what is kept when something is unreadable."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from modelarts_cleanup.discovery import discover
from modelarts_cleanup.envelopes import parse_event
from modelarts_cleanup.exceptions import ApiError, PayloadError
from modelarts_cleanup.payload import Target
from modelarts_cleanup.planning import Candidate, Policy, make_plan
from modelarts_cleanup.rules import Selector
from modelarts_cleanup.selection import HOUR_MS, evaluate, recheck, select

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000_000


def iid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@dataclass(frozen=True)
class Inst:
    instance_id: str = iid(1)
    name: str | None = "tmp-notebook"
    status: str | None = "STOPPED"
    created_ms: int | None = NOW - 1000 * HOUR_MS
    updated_ms: int | None = NOW - 100 * HOUR_MS
    billing: str | None = "postpaid"


def selector(**fields: Any) -> Selector:
    return Selector.model_validate({"project_id": P, "statuses": ["STOPPED"], **fields})


def picked(sel: Selector, *instances: Inst) -> list[tuple[str, str | None]]:
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
def test_unreadable_state_is_kept_with_a_reason(fields: dict[str, Any], inst: Inst) -> None:
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
        ({"project_id": P}, "selectors[0].statuses: Field required"),
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
    def __init__(self, listings: dict[str, list[Inst] | ApiError]) -> None:
        self.listings = listings
        self.calls: list[str] = []

    def list_instances(self, project_id: str, *, deadline: float | None = None) -> list[Inst]:
        self.calls.append(project_id)
        listing = self.listings[project_id]
        if isinstance(listing, ApiError):
            raise listing
        return listing


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
