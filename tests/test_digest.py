"""The digest people receive: its whole text for one run, dry runs, when a run has something to
say, SMN's size limits over thousands of notebooks, and nothing secret or credential-bearing."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest

from modelarts_cleanup.cleanup.digest import digest, should_notify
from modelarts_cleanup.cleanup.report import Outcome, Report, Result, RunStatus
from modelarts_cleanup.cloud.notify import MAX_MESSAGE_BYTES, MAX_SUBJECT_BYTES

P1 = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
STARTED = datetime(2026, 12, 5, 9, 30, 15, tzinfo=timezone.utc)
ALICE = {"id": "a" * 32, "name": "alice"}
BOB = {"id": "b" * 32, "name": "bob"}
CHEN = {"id": "c" * 32, "name": None}


def iid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def selected(
    n: int, outcome: Outcome, owner: dict[str, Any] | None, *, project: str = P1, **extra: Any
) -> dict[str, Any]:
    region = extra.pop("region", None)
    fields: dict[str, Any] = {
        "matched_by": "selectors[0]",
        "instance_name": f"tmp-{n}",
        "listed_status": "STOPPED",
        "workspace_id": "0",
        "owner": owner,
        "updated": "2026-11-20T09:00:00+00:00",
        **extra,
    }
    result = Result(project, iid(n), outcome, **fields).to_dict()
    # Results of a run over several regions name theirs.
    return result if region is None else {**result, "region": region}


def report_of(
    results: list[dict[str, Any]], status: str = "partial", *, dry_run: bool = False
) -> dict[str, Any]:
    base = Report(RunStatus(status), dry_run, "notebook", "req-7f3a", 1234, ()).to_dict()
    return {**base, "results": results}


def one_of_each() -> dict[str, Any]:
    o = Outcome
    return report_of(
        [
            selected(1, o.MARKED, BOB, delete_after="2026-12-07T09:30:15Z"),
            selected(2, o.MARKED, ALICE, delete_after="2026-12-06T08:00:00Z", region="cn-east-3"),
            selected(3, o.DELETED, ALICE, instance_status="DELETING", listed_status=None),
            selected(4, o.DELETED, BOB, updated="2026-12-05T09:00:00+00:00"),
            selected(5, o.REFUSED, CHEN, reason="protected"),
            Result(P1, iid(6), o.REFUSED, reason="project_not_allowed").to_dict(),
            selected(
                7,
                o.FAILED,
                ALICE,
                http_status=403,
                error_code="ModelArts.0108",
                error_msg="Insufficient\npermissions, see https://u:p@h.example/x",
            ),
            selected(8, o.NOT_ATTEMPTED, BOB, reason="deadline"),
            selected(9, o.NOT_ATTEMPTED, BOB, reason="cap"),
            selected(10, o.UNMARKED, ALICE, reason="state_changed", project=P2),
            selected(11, o.ALREADY_ABSENT, ALICE),
        ]
    )


def test_the_digest_of_a_run_reads_in_full_as_people_need_it() -> None:
    found = digest(
        one_of_each(), started=STARTED, region="cn-north-4", protect_tags=["modelarts-cleanup:keep"]
    )
    assert found.subject == (
        "ModelArts cleanup run partial: 2 marked, 2 deleted, 1 already gone, 2 kept back, "
        "1 failed, 2 deferred, 1 unmarked, first deletion 2026-12-06 08:00 UTC"
    )
    assert found.message == EXPECTED


EXPECTED = """\
ModelArts notebook cleanup: the run did part of its work (partial).
When: 2026-12-05 09:30:15 UTC.
Regions: cn-east-3, cn-north-4.
Projects: 0123456789abcdef0123456789abcdef, ed43aef64dff4e5c81cb84b71adcb3fd.
Not a dry run: what is listed below was done.

Will be deleted (2), each after its date unless it is kept
  alice (user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)
    - tmp-2, ID 00000000-0000-4000-8000-000000000002, project ed43aef64dff4e5c81cb84b71adcb3fd, region cn-east-3, workspace 0, STOPPED, idle 15 days: to be deleted after 2026-12-06 08:00 UTC
  bob (user bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)
    - tmp-1, ID 00000000-0000-4000-8000-000000000001, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 15 days: to be deleted after 2026-12-07 09:30 UTC

Deleted (2)
  alice (user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)
    - tmp-3, ID 00000000-0000-4000-8000-000000000003, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, DELETING, idle 15 days
  bob (user bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)
    - tmp-4, ID 00000000-0000-4000-8000-000000000004, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 0 days

Kept back (2)
  user cccccccccccccccccccccccccccccccc
    - tmp-5, ID 00000000-0000-4000-8000-000000000005, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 15 days: protected (a protect tag, or listed in MODELARTS_CLEANUP_PROTECTED_INSTANCES)
  owner not known (named targets are not read)
    - ID 00000000-0000-4000-8000-000000000006, project ed43aef64dff4e5c81cb84b71adcb3fd: its project is not in MODELARTS_CLEANUP_ALLOWED_PROJECTS

Failed (1)
  alice (user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)
    - tmp-7, ID 00000000-0000-4000-8000-000000000007, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 15 days: ModelArts.0108 (HTTP 403): Insufficient permissions, see (a URL)

Deferred to a later run (2)
  bob (user bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)
    - tmp-8, ID 00000000-0000-4000-8000-000000000008, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 15 days: the run ran out of time
    - tmp-9, ID 00000000-0000-4000-8000-000000000009, project ed43aef64dff4e5c81cb84b71adcb3fd, workspace 0, STOPPED, idle 15 days: more than MODELARTS_CLEANUP_MAX_DELETIONS allows in one run; a later run takes it

No longer marked for deletion (1)
  alice (user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)
    - tmp-10, ID 00000000-0000-4000-8000-000000000010, project 0123456789abcdef0123456789abcdef, workspace 0, STOPPED, idle 15 days: it changed since it was listed and no longer matches

To keep a notebook, give it the tag modelarts-cleanup:keep before its deletion date.
To find this run's log lines, search the function's logs for function_request_id:"req-7f3a".
"""  # noqa: E501  (the lines as people read them)


def test_a_dry_run_says_would_and_that_nothing_changed() -> None:
    o = Outcome
    report = report_of(
        [
            selected(1, o.WOULD_MARK, BOB, delete_after="2026-12-07T09:30:15Z"),
            selected(2, o.WOULD_DELETE, ALICE),
            selected(3, o.WOULD_UNMARK, ALICE, reason="protected"),
        ],
        "succeeded",
        dry_run=True,
    )
    found = digest(report, started=STARTED, region="cn-north-4", protect_tags=["keep"])
    assert found.subject == (
        "ModelArts cleanup dry run succeeded: 1 would mark, 1 would delete, 1 would unmark, "
        "first deletion 2026-12-07 09:30 UTC"
    )
    lines = found.message.splitlines()
    assert "Dry run: nothing was changed; this says what a real run would do." in lines
    assert "Would be marked for deletion (1), each after the date shown" in lines
    assert "Would be deleted (1)" in lines
    assert "Would no longer be marked for deletion (1)" in lines
    assert any(line.endswith(": would be deleted after 2026-12-07 09:30 UTC") for line in lines)
    assert not any(line.startswith(("Deleted", "Will be deleted")) for line in lines)


def test_a_run_without_a_region_setting_says_where_its_endpoint_is_set() -> None:
    report = report_of([selected(1, Outcome.DELETED, ALICE)], "succeeded")
    found = digest(report, started=STARTED, region=None, protect_tags=[])
    assert "Region: the one MODELARTS_CLEANUP_ENDPOINT serves." in found.message
    assert "No protect tag is set: to keep a notebook, ask whoever runs this cleanup." in (
        found.message
    )


def test_nothing_to_do_says_so_in_the_subject() -> None:
    found = digest(report_of([], "succeeded"), started=STARTED, region="r", protect_tags=[])
    assert found.subject == "ModelArts cleanup run succeeded: nothing to do"


def test_a_selector_that_could_not_be_applied_is_named_with_its_error() -> None:
    report = {
        **report_of([], "partial"),
        "selectors": [
            {
                "selector": "selectors[0]",
                "project_id": P1,
                "error_code": "ModelArts.0108",
                "error_msg": "no right to list",
                "failed_workspace": "a1" * 16,
            }
        ],
    }
    found = digest(report, started=STARTED, region="r", protect_tags=[])
    assert (
        f"  - selectors[0], project {P1}, workspace {'a1' * 16}: ModelArts.0108 no right to list"
    ) in found.message.splitlines()


# -- when a run has something to say ---------------------------------------------------------

EACH_OUTCOME = [(o, "succeeded") for o in Outcome] + [
    (None, s) for s in ("succeeded", "partial", "failed", "refused")
]


@pytest.mark.parametrize(("outcome", "status"), EACH_OUTCOME)
def test_notify_on_changes_problems_and_always(outcome: Outcome | None, status: str) -> None:
    results = [] if outcome is None else [selected(1, outcome, ALICE)]
    report = report_of(results, status)
    quiet = {Outcome.ALREADY_ABSENT, None}
    assert should_notify("always", report)
    assert should_notify("problems", report) is (status != "succeeded")
    assert should_notify("changes", report) is (status != "succeeded" or outcome not in quiet)


# -- SMN's limits ----------------------------------------------------------------------------


def many(count: int) -> dict[str, Any]:
    kinds = [Outcome.MARKED, Outcome.DELETED, Outcome.FAILED, Outcome.REFUSED]
    owners = [ALICE, BOB, CHEN, {"id": "d" * 32, "name": "dörte-ünïcode-名前"}]
    results = [
        selected(
            n,
            kinds[n % 4],
            owners[(n // 4) % 4],
            delete_after="2026-12-07T09:30:15Z",
            reason="protected" if kinds[n % 4] is Outcome.REFUSED else None,
            error_code="ModelArts.6102" if kinds[n % 4] is Outcome.FAILED else None,
            error_msg="Internal server error. " * 40 if kinds[n % 4] is Outcome.FAILED else None,
            instance_name=f"notebook-名前-{n:05d}",
        )
        for n in range(count)
    ]
    return report_of(results)


def test_five_thousand_results_fit_smns_limits_and_say_how_many_more() -> None:
    found = digest(many(5000), started=STARTED, region="cn-north-4", protect_tags=["keep"])
    assert len(found.subject.encode("utf-8")) <= MAX_SUBJECT_BYTES
    assert "\n" not in found.subject
    assert len(found.message.encode("utf-8")) <= MAX_MESSAGE_BYTES
    listed = sum(1 for line in found.message.splitlines() if line.startswith("    - "))
    trailer = next(line for line in found.message.splitlines() if line.startswith("... and "))
    more = int(trailer.split()[2])
    assert listed + more == 5000
    assert 1000 < listed < 5000
    # Every section's share of what is left, named; they add up.
    shares = re.findall(r"(\d+) (marked|deleted|kept back|failed)", trailer)
    assert sum(int(n) for n, _ in shares) == more
    # The footer survives the cut.
    assert found.message.endswith(
        'search the function\'s logs for function_request_id:"req-7f3a".\n'
    )


@pytest.mark.parametrize("limit", [2_000, 5_000, 20_000])
def test_the_message_never_passes_the_limit_it_is_given(limit: int) -> None:
    found = digest(
        many(300), started=STARTED, region="r", protect_tags=["keep"], max_message_bytes=limit
    )
    assert len(found.message.encode("utf-8")) <= limit
    assert "... and " in found.message


def test_a_subject_is_clipped_to_512_bytes_on_a_character_boundary() -> None:
    # No status is this long; the clip holds whatever the subject says.
    report = {**report_of([selected(1, Outcome.DELETED, ALICE)]), "status": "é" * 600}
    found = digest(report, started=STARTED, region="r", protect_tags=[])
    assert len(found.subject.encode("utf-8")) <= MAX_SUBJECT_BYTES
    assert found.subject.endswith("...")


# -- nothing secret ----------------------------------------------------------------------------


def test_error_messages_lose_urls_and_line_breaks() -> None:
    report = report_of(
        [
            selected(
                1,
                Outcome.FAILED,
                ALICE,
                error_code="APIGW.0301",
                error_msg="see https://ak:sk-secret@proxy.example:8443/path?token=abc\nand more",
            )
        ]
    )
    found = digest(report, started=STARTED, region="r", protect_tags=[])
    assert "://" not in found.message and "sk-secret" not in found.message
    assert "token=abc" not in found.message
    assert ": APIGW.0301: see (a URL) and more" in found.message
