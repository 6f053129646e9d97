"""`make demo`: the real function over real HTTP, AK/SK signed, against the local endpoint."""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any, TextIO

from modelarts_cleanup.cleanup.tables import render_plan, render_table
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import RunNotClean

from .faults import Fault
from .regions import LocalCloud
from .server import FakeModelArts
from .state import User

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
GONE = "6fa459ea-ee8a-3ca4-894e-db77e160355e"  # the seed page's example: never created here
DEMO_AK, DEMO_SK = "DEMOACCESSKEY0000001", "demo-secret-key-never-logged"


FLEET_PROJECT = "0123456789abcdef0123456789abcdef"
RULE = {
    "project_id": FLEET_PROJECT,
    "statuses": ["STOPPED", "ERROR"],
    "idle_hours": 72,
    "name_pattern": "tmp-*",
    "exclude_names": ["tmp-keep-*"],
    "exclude_tags": ["team=platform"],
}
# Three teams' workspaces besides the default one, and three people who create notebooks.
WORKSPACES = ("0", "a1" * 16, "b2" * 16, "c3" * 16)
WORKSPACE_NAMES = {"a1" * 16: "team-vision", "b2" * 16: "team-nlp", "c3" * 16: "course-2026"}
OWNERS = (User("a" * 32, "alice"), User("b" * 32, "bob"), User("c" * 32, "chen"))
FLEET_SIZE = 300
TOPIC = f"urn:smn:cn-north-4:{FLEET_PROJECT}:modelarts-cleanup"


def run_demo(out: TextIO | None = None) -> int:
    """The demos: named targets, cleanup by rule, a grace period; 0 if each went as expected."""
    out = sys.stdout if out is None else out
    named = _named_targets(out)
    print(file=out)
    by_rule = _by_rule(out)
    print(file=out)
    grace = _grace_period(out)
    print(file=out)
    backlog = _backlog(out)
    regions = _regions(out)
    return 0 if named and by_rule and grace and backlog and regions else 1


def seed_demo_fleet(fake: FakeModelArts, count: int = FLEET_SIZE, seed: int = 0) -> None:
    """The demo's fleet: `count` notebooks of three people in four named workspaces."""
    for workspace_id, name in WORKSPACE_NAMES.items():
        fake.add_workspace(FLEET_PROJECT, workspace_id, name=name)
    fake.seed_fleet(FLEET_PROJECT, count, workspaces=WORKSPACES, owners=OWNERS, seed=seed)


def _environ(fake: FakeModelArts, **extra: str) -> dict[str, str]:
    return {
        "MODELARTS_CLEANUP_ENDPOINT": fake.url,
        "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
        "HUAWEICLOUD_SDK_AK": DEMO_AK,
        "HUAWEICLOUD_SDK_SK": DEMO_SK,
        **extra,
    }


def _named_targets(out: TextIO) -> bool:
    """Six named instances: deleted, deleted after two 503s, refused by IAM, already gone."""
    with FakeModelArts(access_key=DEMO_AK, secret_key=DEMO_SK) as fake:
        expected: dict[str, str] = {}
        for name in ("idle-training-box", "tmp-experiment-7", "old-course-notebook"):
            expected[fake.add_instance(PROJECT, name=name, status="STOPPED")] = "deleted"
        flaky = fake.add_instance(PROJECT, name="flaky-notebook", status="STOPPED")
        fake.add_fault(
            Fault("status", status=503, error_code="ModelArts.6102", times=2),
            instance_id=flaky,
            action="notebook_delete",
        )
        expected[flaky] = "deleted"
        locked = fake.add_instance(PROJECT, name="someone-elses-notebook", status="STOPPED")
        fake.add_fault(
            Fault(
                "status",
                status=403,
                error_code="ModelArts.0108",
                error_msg="You are not authorized to perform this operation.",
                times=None,
            ),
            instance_id=locked,
        )
        expected[locked] = "failed"
        keep = {"modelarts-cleanup:keep": "owner"}
        kept = fake.add_instance(PROJECT, name="thesis-notebook", status="STOPPED", tags=keep)
        expected[kept] = "refused"  # named, but its owner tagged it to keep: read, not deleted
        expected[GONE] = "already_absent"

        event = {"targets": [{"project_id": PROJECT, "instance_id": i} for i in expected]}
        print(f"# 1. named targets; local ModelArts endpoint at {fake.url}", file=out)
        print("# JSON log lines, as LTS would index them:\n", file=out)
        report = run_function(event, None, environ=_environ(fake), log_stream=out)
        served = fake.requests
        remaining = {i for _, i in fake.instance_ids(PROJECT)}
        deletes_of_kept = [r for r in served if r.instance_id == kept and r.method == "DELETE"]

    print(file=out)
    columns = (
        "instance_id",
        "instance_name",
        "outcome",
        "reason",
        "http_status",
        "attempts",
        "error_code",
        "duration_ms",
    )
    print(render_table(report["results"], columns), file=out)
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
    print(f"\nrun {report['status']} in {report['duration_ms']} ms: {counts}", file=out)
    signed = sum(1 for r in served if r.headers.get("Authorization", "").startswith("SDK-HMAC"))
    print(f"endpoint served {len(served)} requests, {signed} of them AK/SK signed", file=out)
    reads = sum(1 for r in served if r.method == "GET")
    print(
        f"each named notebook was read first ({reads} GETs; protect tags): {kept} "
        f"(modelarts-cleanup:keep) was refused, {GONE} (not there) was sent no DELETE",
        file=out,
    )

    got = {r["instance_id"]: r["outcome"] for r in report["results"]}
    still_there = {i for i, o in expected.items() if o == "deleted"} & remaining
    if got != expected or still_there or deletes_of_kept or kept not in remaining:
        print(
            f"demo FAILED: expected {expected}, got {got}; still present: {still_there}", file=out
        )
        return False
    print("named targets OK: every outcome is the expected one", file=out)
    return True


def _by_rule(out: TextIO) -> bool:
    """A fleet of several workspaces and users, with tags; the plan, then a run that deletes it."""
    with FakeModelArts(access_key=DEMO_AK, secret_key=DEMO_SK) as fake:
        seed_demo_fleet(fake)
        environ = _environ(fake, MODELARTS_CLEANUP_MAX_DELETIONS="200")
        event = {"selectors": [RULE]}
        print("# 2. cleanup by rule: " + json.dumps(RULE), file=out)
        print(
            f"# {FLEET_SIZE} notebooks of {len(OWNERS)} users in {len(WORKSPACES)} workspaces; "
            "the tag modelarts-cleanup:keep protects some",
            file=out,
        )
        print("# python -m modelarts_cleanup plan shows, deleting nothing:\n", file=out)
        plan = run_function(
            event, None, environ=environ, log_stream=io.StringIO(), force_dry_run=True
        )
        print(render_plan(plan), file=out)
        pages = sum(1 for r in fake.requests if r.method == "GET" and r.instance_id is None)
        report = run_function(event, None, environ=environ, log_stream=io.StringIO())
        remaining = {i for _, i in fake.instance_ids(FLEET_PROJECT)}
        protected = {r["instance_id"] for r in plan["results"] if r["reason"] == "protected"}
        kept = {i for i in protected if fake.instance(FLEET_PROJECT, i) is not None}

    planned = {r["instance_id"] for r in plan["results"] if r["outcome"] == "would_delete"}
    deleted = {r["instance_id"] for r in report["results"] if r["outcome"] == "deleted"}
    seen = {(r["workspace_id"], (r["owner"] or {}).get("name")) for r in plan["results"]}
    print(
        f"\nlisted {FLEET_SIZE} instances in {pages} requests; the plan picked {len(planned)} "
        f"from {len({w for w, _ in seen})} workspaces and {len({o for _, o in seen})} owners, "
        f"kept {len(protected)} by their protect tag; the run then deleted {len(deleted)}",
        file=out,
    )
    if not planned or planned != deleted or deleted & remaining or kept != protected:
        print("demo FAILED: the run did not delete exactly what the plan showed", file=out)
        return False
    if len({w for w, _ in seen}) < len(WORKSPACES) or len({o for _, o in seen}) < len(OWNERS):
        print("demo FAILED: the rule did not see the whole fleet", file=out)
        return False
    print("cleanup by rule OK: the run deleted exactly the plan, across the whole fleet", file=out)
    return True


def _grace_period(out: TextIO) -> bool:
    """A rule with a grace period over three runs: it marks, waits, then deletes or unmarks."""
    hour = 3_600_000
    now_ms = int(time.time()) * 1000
    rule = {**RULE, "exclude_tags": [], "grace_hours": 48}
    digests: list[str] = []
    with FakeModelArts(access_key=DEMO_AK, secret_key=DEMO_SK) as fake:
        seed_demo_fleet(fake, 60, seed=11)
        # The local endpoint answers SMN too: each run's digest goes to this topic.
        topic = fake.add_topic(TOPIC)
        environ = _environ(
            fake,
            MODELARTS_CLEANUP_MAX_DELETIONS="200",
            MODELARTS_CLEANUP_NOTIFY_TOPIC=topic,
            MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
        )

        def run(at_ms: int) -> dict[str, Any]:
            return run_function(
                {"selectors": [rule]},
                None,
                environ=environ,
                log_stream=io.StringIO(),
                wall_clock=lambda: at_ms / 1000,
            )

        def show_digest() -> None:
            """The digest the last run sent, as its subscribers read it."""
            sent = fake.published[len(digests) :]
            digests.extend(m.message_id for m in sent)
            for message in sent:
                print(f"  the digest it sent to {topic}:", file=out)
                print(f"    Subject: {message.subject}", file=out)
                for line in message.message.splitlines():
                    print(f"    | {line}".rstrip(), file=out)

        print(
            "# 3. a grace period: " + json.dumps({"grace_hours": 48}) + " added to the rule",
            file=out,
        )
        first = run(now_ms)
        marked = {r["instance_id"] for r in first["results"] if r["outcome"] == "marked"}
        after = {r["delete_after"] for r in first["results"] if r["outcome"] == "marked"}
        print(
            f"run 1 (now): marked {len(marked)}, deleted 0; delete after {sorted(after)}", file=out
        )
        show_digest()
        second = run(now_ms + 24 * hour)
        waiting = {r["instance_id"] for r in second["results"] if r["outcome"] == "marked"}
        print(f"run 2 (+24 h): {len(waiting)} marks waiting, nothing written", file=out)
        show_digest()
        kept = sorted(marked)[0]
        fake.tag(FLEET_PROJECT, kept, {"modelarts-cleanup:keep": "yes"})
        print(f"meanwhile its owner tags {kept} modelarts-cleanup:keep", file=out)
        third = run(now_ms + 49 * hour)
        outcomes = {r["instance_id"]: r["outcome"] for r in third["results"]}
        deleted = {i for i, o in outcomes.items() if o == "deleted"}
        print(
            f"run 3 (+49 h): deleted {len(deleted)}, unmarked "
            f"{sum(o == 'unmarked' for o in outcomes.values())} ({kept}: {outcomes.get(kept)})",
            file=out,
        )
        show_digest()
        survived = fake.instance(FLEET_PROJECT, kept) is not None
    notified = [r["notification"]["status"] for r in (first, second, third)]
    if notified != ["sent"] * 3 or len(digests) != 3:
        print(f"demo FAILED: each run should have sent one digest: {notified}", file=out)
        return False
    if not marked or waiting != marked or deleted != marked - {kept} or not survived:
        print("demo FAILED: the grace period did not go mark, wait, delete", file=out)
        return False
    print(
        "grace period OK: marked, waited, deleted what still matched, unmarked the rest", file=out
    )
    return True


NORTH_PROJECT, SOUTHEAST_PROJECT = "1a" * 16, "3c" * 16
STRANGER_PROJECT = "9f" * 16  # a project IAM does not list for these credentials


def _regions(out: TextIO) -> bool:
    """One payload over two regions, each project found by IAM, and one IAM does not know."""
    regions = {"cn-north-4": [NORTH_PROJECT], "ap-southeast-3": [SOUTHEAST_PROJECT]}
    with LocalCloud(regions, access_key=DEMO_AK, secret_key=DEMO_SK) as cloud:
        pairs = [
            (NORTH_PROJECT, cloud["cn-north-4"].add_instance(NORTH_PROJECT, name="north-box")),
            (
                SOUTHEAST_PROJECT,
                cloud["ap-southeast-3"].add_instance(SOUTHEAST_PROJECT, name="southeast-box"),
            ),
            (STRANGER_PROJECT, GONE),
        ]
        event = {"targets": [{"project_id": p, "instance_id": i} for p, i in pairs]}
        environ = {
            **cloud.environ(),
            "MODELARTS_CLEANUP_REGION": "cn-north-4",
            "HUAWEICLOUD_SDK_AK": DEMO_AK,
            "HUAWEICLOUD_SDK_SK": DEMO_SK,
        }
        print("# 5. one payload over two regions; each project's region found by IAM", file=out)
        for region, fake in cloud.regions.items():
            print(f"# {region}: local ModelArts endpoint at {fake.url}", file=out)
        print(f"# IAM (GET /v3/auth/projects) at {cloud.iam.url}\n", file=out)
        report = run_function(event, None, environ=environ, log_stream=io.StringIO())
        asked = len(cloud.iam.requests)
        left = {r: fake.instance_ids() for r, fake in cloud.regions.items()}
    columns = ("project_id", "region", "outcome", "reason", "http_status")
    print(render_table(report["results"], columns), file=out)
    print(
        f"\nrun {report['status']}: regions {', '.join(report['regions'])}; "
        f"IAM asked {asked} time(s)",
        file=out,
    )
    got = [(r["region"], r["outcome"], r["reason"]) for r in report["results"]]
    want = [
        ("cn-north-4", "deleted", None),
        ("ap-southeast-3", "deleted", None),
        (None, "refused", "region_unknown"),
    ]
    if got != want or asked != 1 or any(left.values()) or report["status"] != "partial":
        print(f"demo FAILED: expected {want}, got {got}", file=out)
        return False
    print(
        "regions OK: each project went to its own region; the one IAM does not know was "
        "left alone (region_unknown)",
        file=out,
    )
    return True


def _backlog(out: TextIO) -> bool:
    """Going live on a backlog: over the cap, refused (a timer run FunctionGraph sees fail), or
    deferred (the first MAX_DELETIONS done, the longest idle first, the rest left for later)."""
    with FakeModelArts(access_key=DEMO_AK, secret_key=DEMO_SK) as fake:
        fake.seed_fleet(FLEET_PROJECT, FLEET_SIZE, workspaces=WORKSPACES, owners=OWNERS)
        rule = {**RULE, "exclude_tags": []}
        timer = {"trigger_type": "TIMER", "user_event": json.dumps({"selectors": [rule]})}
        environ = _environ(fake, MODELARTS_CLEANUP_MAX_DELETIONS="20")
        print("# 4. a backlog over MODELARTS_CLEANUP_MAX_DELETIONS=20, on a timer", file=out)
        refused: dict[str, Any] = {}
        try:
            run_function(timer, None, environ=environ, log_stream=io.StringIO())
        except RunNotClean as raised:
            refused = raised.report
        print(
            f"OVER_CAP=refuse (default): run {refused.get('status')}, nothing sent; the "
            "invocation ends in an error (MODELARTS_CLEANUP_FAIL_ON=refused,failed)",
            file=out,
        )
        before = len(fake.instance_ids(FLEET_PROJECT))
        deferred = run_function(
            timer,
            None,
            environ={**environ, "MODELARTS_CLEANUP_OVER_CAP": "defer"},
            log_stream=io.StringIO(),
        )
        gone = before - len(fake.instance_ids(FLEET_PROJECT))
        counts = deferred["counts"]
        print(
            f"OVER_CAP=defer: run {deferred['status']}, deleted {counts['deleted']} (the longest "
            f"idle first), {counts['not_attempted']} not_attempted (reason cap) for later runs",
            file=out,
        )
    if refused.get("status") != "refused" or counts["deleted"] != 20 or gone != 20:
        print("demo FAILED: the cap did not refuse, then defer", file=out)
        return False
    print("backlog OK: refused loudly, then worked off 20 at a time", file=out)
    return True
