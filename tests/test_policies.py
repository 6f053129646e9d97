"""deploy/policies/: each use docs/deploying.md names, run against an endpoint that allows exactly
the policies it says to attach for it. Every run must succeed (the policies are enough), and
what it asked for must be what they allow (nothing in them is unused)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.tags import mark_value
from modelarts_cleanup.settings import DEFAULT_PROTECT_TAG
from modelarts_cleanup.testing import DEVENVIRON, FakeModelArts, User
from modelarts_cleanup.testing.api import IAM_ACTIONS
from modelarts_cleanup.vocabulary import MARK_KEY
from tests.support import endpoint_environ, local_endpoint, no_sleep

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "deploy" / "policies"
DEPLOYING = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
P = "ed43aef64dff4e5c81cb84b71adcb3fd"
NOW_MS = 1_800_000_000_000
HOUR = 3_600_000
BOB = User("b" * 32, "bob")
WS = "c3" * 16


def _section(title: str) -> str:
    start = DEPLOYING.index(title)
    end = DEPLOYING.find("\n## ", start + len(title))
    return DEPLOYING[start : end if end > 0 else None]


def _rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ]


def _files(cell: str) -> list[str]:
    return re.findall(r"`([\w-]+\.json)`", cell)


AGENCY = _section("## 2. The agency")
# "Which policies to attach": use -> policy files.
ATTACH = {row[0]: _files(row[1]) for row in _rows(AGENCY) if len(row) == 2 and _files(row[1])}
# "Each policy allows exactly these actions": policy file -> actions.
DOCUMENTED: dict[str, set[str]] = {}
for _row in _rows(AGENCY):
    if len(_row) == 4 and _files(_row[0]):
        DOCUMENTED.setdefault(_files(_row[0])[0], set()).update(re.findall(r"`([\w:]+)`", _row[1]))


def allowed(name: str) -> set[str]:
    """The actions a policy file allows; it must be an Allow-only custom policy, version 1.1."""
    policy = json.loads((POLICIES / name).read_text(encoding="utf-8"))
    assert policy["Version"] == "1.1"
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and set(statement) == {"Effect", "Action"}
        assert not any("*" in a for a in statement["Action"])
        assert len(statement["Action"]) == len(set(statement["Action"]))
        actions.update(statement["Action"])
    return actions


def attached(use: str) -> set[str]:
    return set().union(*(allowed(name) for name in ATTACH[use]))


# -- what docs/deploying.md says and what the files hold ----------------------------------


def test_every_policy_file_is_documented_action_for_action() -> None:
    files = {p.name for p in POLICIES.glob("*.json")} - {"deny-delete-protected.json"}
    assert set(DOCUMENTED) == files
    for name in files:
        assert allowed(name) == DOCUMENTED[name], name
    assert {name for names in ATTACH.values() for name in names} == files


def test_the_agencys_modelarts_actions_are_exactly_those_the_client_can_need() -> None:
    """Every action a request of the client's can need is in some policy, and no other; `start`
    is never needed (the function never starts a notebook)."""
    granted = set().union(*(allowed(n) for n in DOCUMENTED))
    modelarts = {a for a in granted if a.startswith("modelarts:")}
    needed = {a for a in IAM_ACTIONS.values() if a.startswith("modelarts:")}
    assert modelarts == needed - {"modelarts:notebook:start"}


def test_failure_destination_policies_hold_functiongraphs_documented_minimum() -> None:
    # FunctionGraph user guide, "Configuring Agency Permissions": asynchronous notification.
    assert allowed("failure-destination-smn.json") == {"smn:topic:publish", "smn:topic:list"}
    assert allowed("failure-destination-obs.json") == {
        "obs:bucket:HeadBucket",
        "obs:bucket:CreateBucket",
        "obs:object:PutObject",
    }
    # OBS is a global service: its policy cannot share a custom policy with project-level ones.
    assert '"global services"' in AGENCY and "failure-destination-obs.json" in AGENCY


def test_the_protect_tag_deny_statement_names_the_default_protect_tag() -> None:
    policy = json.loads((POLICIES / "deny-delete-protected.json").read_text("utf-8"))
    assert policy["Version"] == "5.0"  # condition keys on resource tags are identity policies
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Deny", ["modelarts:notebook:delete"])
    # Null: false means "the tag key is present", whatever its value, as the guard reads it.
    assert statement["Condition"] == {"Null": {f"g:ResourceTag/{DEFAULT_PROTECT_TAG}": ["false"]}}


def test_the_template_points_at_the_policies_its_default_rule_needs() -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    uses = [use for use in ATTACH if "template's default rule" in use]
    assert len(uses) == 1
    for name in ATTACH[uses[0]]:
        assert name in template
    assert "grace_hours" in template


# -- each use, against an endpoint that allows exactly the attached policies -----------------


@pytest.fixture
def fake() -> Iterator[FakeModelArts]:
    with local_endpoint(stop_before_delete=True) as endpoint:
        yield endpoint


def run(fake: FakeModelArts, event: object, now_ms: int = NOW_MS, **env: str) -> dict[str, Any]:
    report = run_function(
        event,
        None,
        environ=endpoint_environ(fake.url, **env),
        log_stream=io.StringIO(),
        wall_clock=lambda: now_ms / 1000,
        sleep=no_sleep,
    )
    # Nothing refused by IAM: every target reached its outcome, every selector was applied.
    assert report["status"] == "succeeded", report
    assert not [r for r in report["results"] if r["outcome"] == "failed"]
    return report


def named_targets(fake: FakeModelArts) -> None:
    running = fake.add_instance(P, status="RUNNING")  # stopped first: stop, then get until STOPPED
    stopped = fake.add_instance(P)
    gone = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
    event = {"targets": [{"project_id": P, "instance_id": i} for i in (running, stopped, gone)]}
    report = run(fake, event)
    assert [r["outcome"] for r in report["results"]] == ["deleted", "deleted", "already_absent"]


def rules(fake: FakeModelArts) -> None:
    fake.add_workspace(P, WS)
    old = NOW_MS - 500 * HOUR
    picked = [
        fake.add_instance(P, name="tmp-a", status="RUNNING", updated_ms=old, owner=BOB),
        fake.add_instance(P, name="tmp-b", workspace_id=WS, updated_ms=old),
    ]
    rule = {"project_id": P, "statuses": ["RUNNING", "STOPPED"], "name_pattern": "tmp-*"}
    report = run(fake, {"selectors": [rule]})  # everyone's notebooks, every workspace
    assert sorted(r["instance_id"] for r in report["results"]) == sorted(picked)
    own = fake.add_instance(P, name="tmp-c")
    report = run(fake, {"selectors": [rule]}, MODELARTS_CLEANUP_LIST_SCOPE="own")
    assert [r["instance_id"] for r in report["results"]] == [own]


def rules_with_grace(fake: FakeModelArts) -> None:
    rules(fake)  # what any rule needs, then the marks
    stays = fake.add_instance(P, name="tmp-stays", updated_ms=NOW_MS - 500 * HOUR)
    started = fake.add_instance(P, name="tmp-started", updated_ms=NOW_MS - 500 * HOUR)
    rule = {"project_id": P, "statuses": ["STOPPED"], "idle_hours": 168, "grace_hours": 48}
    first = run(fake, {"selectors": [rule]})
    due = mark_value(NOW_MS + 48 * HOUR)
    assert {(r["outcome"], r["delete_after"]) for r in first["results"]} == {("marked", due)}
    fake.set_status(P, started, "RUNNING")
    later = NOW_MS + 49 * HOUR
    second = run(fake, {"selectors": [rule]}, now_ms=later)
    outcomes = {r["instance_id"]: r["outcome"] for r in second["results"]}
    assert outcomes == {stays: "deleted", started: "unmarked"}
    body = fake.instance(P, started)
    assert body is not None and MARK_KEY not in {t["key"] for t in body["tags"]}


def old_api(fake: FakeModelArts) -> None:
    running = fake.add_instance(P, api=DEVENVIRON, status="RUNNING")
    event = {"targets": [{"project_id": P, "instance_id": running}]}
    report = run(fake, event, MODELARTS_CLEANUP_API="devenviron")
    assert [r["outcome"] for r in report["results"]] == ["deleted"]


def digest(fake: FakeModelArts) -> None:
    """Only the publish: a target the settings protect is kept with no request to ModelArts."""
    topic = fake.add_topic(f"urn:smn:cn-north-4:{P}:cleanup-digest")
    kept = fake.add_instance(P)
    report = run(
        fake,
        {"targets": [{"project_id": P, "instance_id": kept}]},
        MODELARTS_CLEANUP_PROTECTED_INSTANCES=kept,
        MODELARTS_CLEANUP_NOTIFY_TOPIC=topic,
        MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
    )
    assert report["notification"]["status"] == "sent", report["notification"]
    assert [m.topic for m in fake.published] == [topic]


SCENARIOS: dict[str, Callable[[FakeModelArts], None]] = {
    "a digest to an SMN topic (`MODELARTS_CLEANUP_NOTIFY_TOPIC`), added to the use's own": digest,
    "named targets, `notebook` API": named_targets,
    "rules (selectors)": rules,
    "rules with a grace period (`grace_hours`, the template's default rule)": rules_with_grace,
    "the old `devenviron` API": old_api,
}
# The base policy is written for the notebook API: the old one stops through `action` instead.
UNUSED = {"the old `devenviron` API": {"modelarts:notebook:stop"}}


def test_every_modelarts_use_the_docs_name_is_exercised() -> None:
    modelarts_uses = {use for use in ATTACH if "failure destination" not in use}
    assert modelarts_uses == set(SCENARIOS)


@pytest.mark.parametrize("use", sorted(SCENARIOS))
def test_the_policies_the_docs_name_for_a_use_are_enough_and_all_used(
    fake: FakeModelArts, use: str
) -> None:
    fake.permissions = attached(use)

    SCENARIOS[use](fake)

    assert not [r for r in fake.requests if r.status == 403]
    used = fake.iam_actions()
    assert used == attached(use) - UNUSED.get(use, set())


@pytest.mark.parametrize("use", sorted(SCENARIOS))
def test_without_any_one_of_its_actions_a_use_fails_and_deletes_less(use: str) -> None:
    """Each action is needed: a policy missing it makes the run fail (fail closed), never
    quietly do something else."""
    for missing in sorted(attached(use) - UNUSED.get(use, set())):
        with local_endpoint(stop_before_delete=True) as short:
            short.permissions = attached(use) - {missing}
            with pytest.raises(AssertionError):
                SCENARIOS[use](short)
            refused = [r for r in short.requests if r.status == 403]
            assert refused and {r.iam_action for r in refused} == {missing}, missing
