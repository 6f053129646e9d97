"""Every guard on every path a user takes: unknown settings, protect tags on named targets, dry
runs that read what they name, summaries that count marks, the cap's two ways, and runs that
FunctionGraph sees fail. Real sockets against the local endpoint; its request log says what was
and was not sent."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from modelarts_cleanup.cleanup.guard import Reading, named_reader, refusal
from modelarts_cleanup.cleanup.planning import Candidate, Policy, make_plan
from modelarts_cleanup.cleanup.report import Outcome, Reason, Report, Result, RunStatus
from modelarts_cleanup.cleanup.tables import render_plan, summary_line
from modelarts_cleanup.cloud.instances import ListedInstance
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.environment import function_environment
from modelarts_cleanup.events.payload import Target
from modelarts_cleanup.events.tags import TagCondition
from modelarts_cleanup.exceptions import (
    AnswerLost,
    ApiError,
    ConfigurationError,
    DeadlineExceeded,
    RunNotClean,
)
from modelarts_cleanup.settings import ENV_NAMES, load_settings
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import (
    FunctionGraphContext,
    apig_event,
    endpoint_environ,
    invoke,
    no_sleep,
    run_command,
    smn_event,
)

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
MISSING = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
KEEP = {"modelarts-cleanup:keep": "yes"}
DAY_MS = 86_400_000

Wrap = Callable[[str], object]
ENVELOPES: dict[str, Wrap] = {
    "direct": json.loads,
    "timer": lambda body: {"trigger_type": "TIMER", "user_event": body},
    "apig": apig_event,
    "smn": smn_event,
}


def body(*instance_ids: str, **extra: Any) -> str:
    targets = [{"project_id": P, "instance_id": i} for i in instance_ids]
    return json.dumps({"targets": targets, **extra})


class Run:
    """One invocation: the report it made, what it returned or raised, its log lines."""

    def __init__(self, fake: FakeModelArts, event: object, **env: str) -> None:
        self.reports: list[dict[str, Any]] = []
        self.raised: Exception | None = None
        self.returned: Any = None
        stream = io.StringIO()
        settings = {"MODELARTS_CLEANUP_MAX_ATTEMPTS": "1", **env}
        try:
            self.returned = run_function(
                event,
                FunctionGraphContext(),
                environ=endpoint_environ(fake.url, **settings),
                log_stream=stream,
                sleep=no_sleep,
                on_report=self.reports.append,
            )
        except Exception as exc:  # noqa: BLE001  (what was raised is what the tests look at)
            self.raised = exc
        self.log = [json.loads(line) for line in stream.getvalue().splitlines()]

    @property
    def report(self) -> dict[str, Any]:
        (report,) = self.reports
        return report

    def result(self, instance_id: str) -> dict[str, Any]:
        (result,) = [r for r in self.report["results"] if r["instance_id"] == instance_id]
        return result


def now_ms() -> int:
    return int(time.time() * 1000)


def sent(fake: FakeModelArts) -> list[tuple[str, str | None]]:
    return [(r.method, r.instance_id) for r in fake.requests]


# --- 1. unknown settings ---------------------------------------------------------------------


def test_a_misspelt_setting_is_refused_naming_it_and_the_nearest_setting_never_its_value() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(
            {
                "MODELARTS_CLEANUP_REGION": "cn-north-4",
                "MODELARTS_CLEANUP_DRYRUN": "value-never-shown",
                "MODELARTS_CLEANUP_NOTHING_LIKE_ANY": "x",
            }
        )
    message = str(raised.value)
    assert "MODELARTS_CLEANUP_DRYRUN: not a setting; did you mean MODELARTS_CLEANUP_DRY_RUN?" in (
        message
    )
    assert "MODELARTS_CLEANUP_NOTHING_LIKE_ANY: not a setting\n" in message + "\n"
    assert "value-never-shown" not in message


def test_every_setting_is_known_and_other_prefixes_are_not_checked() -> None:
    # Derived from the model: every field's variable is accepted (values left to their checks).
    environ = dict.fromkeys(ENV_NAMES, "")
    environ.update({"MODELARTS_CLEANUP_REGION": "cn-north-4", "MODELARTS_OTHER_TOOL": "x"})
    environ["HUAWEICLOUD_SDK_AK"] = environ["HUAWEICLOUD_SDK_SK"] = "k"
    environ["MODELARTS_CLEANUP_MAX_DELETIONS"] = "5"
    for numeric in (
        "CONCURRENCY",
        "MAX_ATTEMPTS",
        "CONNECT_TIMEOUT",
        "READ_TIMEOUT",
        "CONFIRM_SECONDS",
    ):
        del environ[f"MODELARTS_CLEANUP_{numeric}"]
    for name in (
        "ALLOW_HTTP",
        "DRY_RUN",
        "API",
        "LOG_LEVEL",
        "LIST_SCOPE",
        "OVER_CAP",
        "NOTIFY_ON",
    ):
        del environ[f"MODELARTS_CLEANUP_{name}"]
    assert load_settings(environ).max_deletions == 5


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_a_misspelt_dry_run_deletes_nothing_in_any_envelope(
    fake: FakeModelArts, envelope: str
) -> None:
    instance = fake.add_instance(P)
    run = Run(fake, ENVELOPES[envelope](body(instance)), MODELARTS_CLEANUP_DRYRUN="true")
    if envelope == "apig":
        assert run.returned["statusCode"] == 500  # configuration_error, the reason only logged
        assert "DRYRUN" not in run.returned["body"]
    else:
        assert isinstance(run.raised, ConfigurationError)
    assert run.reports == []
    assert any("did you mean MODELARTS_CLEANUP_DRY_RUN?" in line["message"] for line in run.log)
    assert fake.requests == []
    assert fake.instance_ids(P) == {(P, instance)}


def test_a_misspelt_setting_in_the_function_user_data_is_refused(fake: FakeModelArts) -> None:
    environ = endpoint_environ(fake.url)
    environ["RUNTIME_USERDATA"] = json.dumps({"MODELARTS_CLEANUP_MAX_DELETION": "1"})
    merged = function_environment(None, environ)
    assert merged["MODELARTS_CLEANUP_MAX_DELETION"] == "1"
    with pytest.raises(ConfigurationError, match="did you mean MODELARTS_CLEANUP_MAX_DELETIONS"):
        run_function(json.loads(body(MISSING)), None, environ=environ, log_stream=io.StringIO())
    assert fake.requests == []


def test_a_misspelt_setting_on_the_command_line_exits_2_and_sends_nothing(
    fake: FakeModelArts,
) -> None:
    instance = fake.add_instance(P)
    done = invoke(fake, "--event", "-", stdin=body(instance), MODELARTS_CLEANUP_DRYRUN="true")
    assert done.returncode == 2
    assert "did you mean MODELARTS_CLEANUP_DRY_RUN?" in done.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("name", "value", "where"),
    [
        ("MODELARTS_CLEANUP_TARGETS", [{"project_id": P, "instance_id": MISSING, "x": 1}], "x"),
        ("MODELARTS_CLEANUP_SELECTORS", [{"project_id": P, "statuses": ["STOPPED"], "y": 1}], "y"),
        ("MODELARTS_CLEANUP_PROTECT_TAGS", [{"key": "keep", "vlaue": "x"}], "key"),
    ],
)
def test_unknown_keys_inside_json_settings_are_refused(name: str, value: Any, where: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", name: json.dumps(value)})
    assert name in str(raised.value)
    assert where in str(raised.value)


# --- 2. protect tags hold for named targets --------------------------------------------------


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_a_named_notebook_carrying_a_protect_tag_is_refused_in_every_envelope(
    fake: FakeModelArts, envelope: str
) -> None:
    kept = fake.add_instance(P, name="keep-me", tags=KEEP)
    plain = fake.add_instance(P, name="tmp-1", workspace_id="0", pool=("pool-1", "gpu"))
    run = Run(fake, ENVELOPES[envelope](body(kept, plain, MISSING)))
    protected = run.result(kept)
    assert (protected["outcome"], protected["reason"]) == ("refused", "protected")
    assert protected["tags"] == [{"key": "modelarts-cleanup:keep", "value": "yes"}]
    assert protected["instance_name"] == "keep-me"
    deleted = run.result(plain)
    assert deleted["outcome"] == "deleted"
    assert deleted["instance_name"] == "tmp-1"
    assert deleted["listed_status"] == "STOPPED"
    assert deleted["workspace_id"] == "0"
    assert deleted["owner"] is not None and deleted["owner"]["id"]
    assert deleted["created"] and deleted["updated"]
    assert deleted["tags"] == []
    assert deleted["pool"] == {"id": "pool-1", "name": "gpu"}
    absent = run.result(MISSING)
    assert (absent["outcome"], absent["attempts"]) == ("already_absent", 0)
    # One read each; a DELETE only for the one nothing keeps.
    assert sorted(sent(fake)) == sorted(
        [("GET", kept), ("GET", plain), ("GET", MISSING), ("DELETE", plain)]
    )
    assert fake.instance_ids(P) == {(P, kept)}


def test_without_protect_tags_named_targets_go_straight_to_delete(fake: FakeModelArts) -> None:
    kept = fake.add_instance(P, tags=KEEP)
    run = Run(fake, json.loads(body(kept, MISSING)), MODELARTS_CLEANUP_PROTECT_TAGS="[]")
    assert [r["outcome"] for r in run.report["results"]] == ["deleted", "already_absent"]
    assert run.result(kept)["tags"] is None  # nothing was read
    assert sorted(sent(fake)) == sorted([("DELETE", kept), ("DELETE", MISSING)])


def test_other_protect_tags_replace_the_default_for_named_targets(fake: FakeModelArts) -> None:
    default_kept = fake.add_instance(P, tags=KEEP)
    team = fake.add_instance(P, tags={"team": "ml"})
    run = Run(fake, json.loads(body(default_kept, team)), MODELARTS_CLEANUP_PROTECT_TAGS="team=ml")
    assert run.result(default_kept)["outcome"] == "deleted"
    assert (run.result(team)["outcome"], run.result(team)["reason"]) == ("refused", "protected")


def test_the_old_api_has_no_tags_so_named_targets_go_straight_to_delete(
    fake: FakeModelArts,
) -> None:
    old = fake.add_instance(P, "DE-0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b", api="devenviron")
    run = Run(fake, json.loads(body(old)), MODELARTS_CLEANUP_API="devenviron")
    assert run.result(old)["outcome"] == "deleted"
    assert sent(fake) == [("DELETE", old)]


def test_a_named_target_whose_read_fails_is_failed_and_never_deleted(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None),
        instance_id=instance,
        action="notebook_show",
    )
    run = Run(fake, json.loads(body(instance)))
    result = run.result(instance)
    assert (result["outcome"], result["reason"], result["attempts"]) == (
        "failed",
        "recheck_failed",
        0,
    )
    assert result["error_code"] == "ModelArts.0108"
    assert sent(fake) == [("GET", instance)]
    assert fake.instance_ids(P) == {(P, instance)}


def test_the_read_obeys_the_deadline_admission(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    log = io.StringIO()
    # 1 s of budget, less its quarter, is less than a first request may take (connect 5 s).
    report = run_function(
        json.loads(body(instance)),
        None,
        environ=endpoint_environ(fake.url),
        log_stream=log,
        deadline_seconds=1.0,
        sleep=no_sleep,
    )
    ((outcome, reason),) = [(r["outcome"], r["reason"]) for r in report["results"]]
    assert (outcome, reason) == ("not_attempted", "deadline")
    assert fake.requests == []


def test_a_notebook_whose_tags_cannot_be_read_is_kept_while_protect_tags_are_set() -> None:
    unreadable = ListedInstance(P, MISSING, "n", "STOPPED", None, None, None, None, tags=None)
    tagged = ListedInstance(P, MISSING, "n", "STOPPED", None, None, None, None, tags=(("k", ""),))
    keep = (TagCondition("k"),)
    assert refusal(unreadable, keep) == "state_unreadable"
    assert refusal(unreadable, ()) is None
    assert refusal(tagged, keep) == "protected"
    assert refusal(tagged, (TagCondition("other"),)) is None

    class Client:
        def get_listed_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> ListedInstance | None:
            assert deadline == 12.5
            return tagged if instance_id == MISSING else None

    read = named_reader(Client(), 12.5, keep)
    reading = read(Target(project_id=P, instance_id=MISSING))
    assert reading == Reading("protected", "n", reading.details if reading else {})
    assert reading is not None and reading.details["tags"] == [{"key": "k", "value": ""}]
    assert read(Target(project_id=P, instance_id="DE-" + MISSING)) is None


# --- 3. dry runs read what they name ---------------------------------------------------------


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("protect", ["", "[]"], ids=["guard", "no-guard"])
def test_a_dry_run_reads_each_named_target_and_says_what_the_run_would_do(
    fake: FakeModelArts, envelope: str, protect: str
) -> None:
    kept = fake.add_instance(P, name="keep-me", tags=KEEP)
    plain = fake.add_instance(P, name="tmp-1")
    run = Run(
        fake,
        ENVELOPES[envelope](body(kept, plain, MISSING, dry_run=True)),
        MODELARTS_CLEANUP_PROTECT_TAGS=protect,
    )
    outcomes = {r["instance_id"]: (r["outcome"], r["reason"]) for r in run.report["results"]}
    assert outcomes == {
        kept: ("refused", "protected") if protect == "" else ("would_delete", None),
        plain: ("would_delete", None),
        MISSING: ("already_absent", None),
    }
    assert run.result(plain)["instance_name"] == "tmp-1"
    assert run.result(plain)["listed_status"] == "STOPPED"
    assert sorted(sent(fake)) == sorted([("GET", kept), ("GET", plain), ("GET", MISSING)])
    assert fake.instance_ids(P) == {(P, kept), (P, plain)}


def test_plan_shows_a_mistyped_id_as_already_absent(fake: FakeModelArts) -> None:
    typo = "6fa459ea-ee8a-3ca4-894e-db77e160355f"
    done = run_command("plan", "--event", "-", stdin=body(typo), env=endpoint_environ(fake.url))
    assert done.returncode == 0, done.stderr
    assert "already_absent" in done.stdout
    assert "would delete 0" in done.stdout
    assert sent(fake) == [("GET", typo)]


def test_an_old_api_dry_run_reads_named_targets_too(fake: FakeModelArts) -> None:
    old = fake.add_instance(P, "DE-0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b", api="devenviron")
    gone = "DE-" + MISSING
    run = Run(fake, json.loads(body(old, gone, dry_run=True)), MODELARTS_CLEANUP_API="devenviron")
    assert [r["outcome"] for r in run.report["results"]] == ["would_delete", "already_absent"]
    assert sorted(sent(fake)) == sorted([("GET", old), ("GET", gone)])


# --- 4. summaries count marks ----------------------------------------------------------------


def grace_rule(**extra: Any) -> dict[str, Any]:
    return {"project_id": P, "statuses": ["STOPPED"], "idle_hours": 24, "grace_hours": 48, **extra}


@pytest.mark.parametrize("dry_run", [True, False], ids=["plan", "run"])
def test_the_summary_counts_marks_with_the_earliest_delete_after(
    fake: FakeModelArts, dry_run: bool
) -> None:
    old = now_ms() - 10 * DAY_MS
    for _ in range(3):
        fake.add_instance(P, status="STOPPED", updated_ms=old, created_ms=old)
    event = {"selectors": [grace_rule()], "dry_run": dry_run}
    run = Run(fake, {"trigger_type": "TIMER", "user_event": json.dumps(event)})
    report = run.report
    mark = "would_mark" if dry_run else "marked"
    assert report["counts"][mark] == 3
    marks = {r["delete_after"] for r in report["results"]}
    assert report["earliest_delete_after"] == min(marks)
    summary = run.log[-1]
    assert summary["message"] == "run finished"
    assert summary["counts"][mark] == 3
    assert summary["earliest_delete_after"] == report["earliest_delete_after"]
    line = summary_line(report)
    if dry_run:
        assert line.startswith(
            f"would delete 0, would mark 3 (earliest delete_after {min(marks)}), marks waiting 0"
        )
        assert not [r for r in fake.requests if r.method != "GET"]
    else:
        assert line.startswith(f"deleted 0, marked 3 (earliest delete_after {min(marks)})")
    assert line.endswith("refused 0; status succeeded")


def test_the_summary_line_names_what_was_left_and_only_what_there_is() -> None:
    def result(outcome: Outcome, delete_after: str | None = None) -> Result:
        return Result(P, MISSING, outcome, delete_after=delete_after)

    results = (
        result(Outcome.MARKED, "2026-12-02T02:00:00Z"),
        result(Outcome.MARKED, "2026-12-01T02:00:00Z"),
        result(Outcome.UNMARKED, "2025-01-01T00:00:00Z"),
        result(Outcome.DELETED),
        result(Outcome.NOT_ATTEMPTED),
        result(Outcome.FAILED),
        result(Outcome.REFUSED),
    )
    report = Report(RunStatus.PARTIAL, False, "notebook", "r", 1, results).to_dict()
    assert report["earliest_delete_after"] == "2026-12-01T02:00:00Z"
    assert summary_line(report) == (
        "deleted 1, marked 2 (earliest delete_after 2026-12-01T02:00:00Z), unmarked 1, "
        "refused 1, failed 1, not attempted 1; status partial"
    )
    plain = Report(RunStatus.SUCCEEDED, True, "notebook", "r", 1, (result(Outcome.ALREADY_ABSENT),))
    assert summary_line(plain.to_dict()) == (
        "would delete 0, would mark 0, marks waiting 0, would unmark 0, refused 0, "
        "already absent 1; status succeeded"
    )
    assert render_plan(plain.to_dict()).endswith(summary_line(plain.to_dict()))


# --- 5. over the cap: refuse or defer --------------------------------------------------------


def selected(instance_id: str, updated: str | None, label: str = "selectors[0]") -> Candidate:
    from modelarts_cleanup.events.rules import Selector

    rule = Selector(project_id=P, statuses=("STOPPED",))
    target = Target(project_id=P, instance_id=instance_id)
    return Candidate(target, matched_by=label, selector=rule, details={"updated": updated})


def test_defer_carries_out_named_targets_then_the_longest_idle_and_leaves_the_rest() -> None:
    ids = [f"{n:08x}-ee8a-3ca4-894e-db77e160355e" for n in range(6)]
    named = [Target(project_id=P, instance_id=i) for i in ids[:2]]
    recent = selected(ids[2], "2026-11-20T00:00:00Z")
    oldest = selected(ids[3], "2026-01-01T00:00:00Z")
    unknown = selected(ids[4], None)
    middle = selected(ids[5], "2026-06-01T00:00:00Z", label="selectors[1]")
    candidates = [recent, *named, oldest, unknown, middle]
    plan = make_plan(candidates, Policy(max_deletions=4, over_cap="defer"), dry_run=False)
    assert plan.refused_run is None
    assert [c.target.instance_id for c in plan.to_delete] == [ids[0], ids[1], ids[3], ids[5]]
    left = {r.instance_id: (r.outcome, r.reason, r.matched_by) for r in plan.refused}
    assert left == {
        ids[2]: (Outcome.NOT_ATTEMPTED, "cap", "selectors[0]"),
        ids[4]: (Outcome.NOT_ATTEMPTED, "cap", "selectors[0]"),
    }
    # Within the cap, nothing is deferred; refuse (the default) refuses the whole run.
    within = make_plan(candidates, Policy(max_deletions=6, over_cap="defer"), dry_run=False)
    assert (len(within.to_delete), within.refused) == (6, ())
    refused = make_plan(candidates, Policy(max_deletions=4), dry_run=False)
    assert refused.refused_run is not None and refused.to_delete == ()
    assert {r.reason for r in refused.refused} == {"max_deletions_exceeded"}


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_defer_over_the_cap_deletes_the_first_and_reports_the_rest_partial(
    fake: FakeModelArts, envelope: str
) -> None:
    ids = [fake.add_instance(P) for _ in range(3)]
    run = Run(
        fake,
        ENVELOPES[envelope](body(*ids)),
        MODELARTS_CLEANUP_MAX_DELETIONS="2",
        MODELARTS_CLEANUP_OVER_CAP="defer",
    )
    assert run.raised is None  # partial is not in FAIL_ON's default
    assert run.report["status"] == "partial"
    outcomes = [(r["outcome"], r["reason"]) for r in run.report["results"]]
    assert outcomes == [("deleted", None), ("deleted", None), ("not_attempted", "cap")]
    assert sorted(i for m, i in sent(fake) if m == "DELETE") == sorted(ids[:2])
    assert ids[2] not in {i for _, i in sent(fake)}  # not even read
    assert fake.instance_ids(P) == {(P, ids[2])}
    if envelope == "apig":
        assert run.returned["statusCode"] == 207


def test_defer_counts_marks_against_the_cap_and_writes_no_more_than_it(
    fake: FakeModelArts,
) -> None:
    now = now_ms()
    ages = [3, 9, 5]
    ids = [
        fake.add_instance(
            P, status="STOPPED", updated_ms=now - d * DAY_MS, created_ms=now - 20 * DAY_MS
        )
        for d in ages
    ]
    event = {"selectors": [grace_rule()]}
    run = Run(
        fake,
        {"trigger_type": "TIMER", "user_event": json.dumps(event)},
        MODELARTS_CLEANUP_MAX_DELETIONS="2",
        MODELARTS_CLEANUP_OVER_CAP="defer",
    )
    outcomes = {r["instance_id"]: (r["outcome"], r["reason"]) for r in run.report["results"]}
    # The longest idle first: 9 days, then 5; the 3-day one waits for a later run.
    assert outcomes == {
        ids[1]: ("marked", None),
        ids[2]: ("marked", None),
        ids[0]: ("not_attempted", "cap"),
    }
    writes = {r.instance_id for r in fake.requests if r.method == "POST"}
    assert writes == {ids[1], ids[2]}


# --- 6. refused and failed runs reach FunctionGraph -------------------------------------------


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_a_refused_run_is_an_error_for_timer_and_smn_only(
    fake: FakeModelArts, envelope: str
) -> None:
    instance = fake.add_instance(P)
    run = Run(fake, ENVELOPES[envelope](body(instance)), MODELARTS_CLEANUP_MAX_DELETIONS="0")
    assert run.report["status"] == "refused"
    assert fake.requests == []
    if envelope in ("timer", "smn"):
        assert isinstance(run.raised, RunNotClean)
        assert run.raised.report == run.report
        # After the report and the summary are logged, one line says why the invocation fails.
        assert run.log[-2]["message"] == "run finished"
        assert run.log[-1]["error_type"] == "RunNotClean"
        assert "MODELARTS_CLEANUP_FAIL_ON" in run.log[-1]["message"]
    elif envelope == "apig":
        assert run.raised is None and run.returned["statusCode"] == 409
    else:
        assert run.raised is None and run.returned == run.report


@pytest.mark.parametrize("envelope", ["timer", "smn"])
def test_a_failed_run_is_an_error_and_fail_on_chooses_which_statuses(
    fake: FakeModelArts, envelope: str
) -> None:
    instance = fake.add_instance(P)
    fake.add_fault(Fault("status", status=500, times=None), instance_id=instance)
    failed = Run(fake, ENVELOPES[envelope](body(instance)))
    assert failed.report["status"] == "failed"
    assert isinstance(failed.raised, RunNotClean)
    never = Run(fake, ENVELOPES[envelope](body(instance)), MODELARTS_CLEANUP_FAIL_ON="")
    assert never.raised is None and never.returned["status"] == "failed"
    ok = fake.add_instance(P)
    strict = Run(fake, ENVELOPES[envelope](body(ok)), MODELARTS_CLEANUP_FAIL_ON="succeeded")
    assert strict.report["status"] == "succeeded"
    assert isinstance(strict.raised, RunNotClean)
    assert fake.instance_ids(P) == {(P, instance)}  # deleted before it was raised: ok is gone


def test_an_unknown_fail_on_status_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MODELARTS_CLEANUP_FAIL_ON"):
        load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", "MODELARTS_CLEANUP_FAIL_ON": "x"})
    with pytest.raises(ConfigurationError, match="MODELARTS_CLEANUP_OVER_CAP"):
        load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", "MODELARTS_CLEANUP_OVER_CAP": "x"})


def test_invoke_prints_the_report_of_a_refused_timer_run_and_exits_1(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    timer = json.dumps({"trigger_type": "TIMER", "user_event": body(instance)})
    done = invoke(fake, "--event", "-", stdin=timer, MODELARTS_CLEANUP_MAX_DELETIONS="0")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "refused"
    assert "RunNotClean" in done.stderr
    assert fake.requests == []


def test_reason_cap_is_a_reason() -> None:
    assert Reason.CAP.value == "cap"


# --- the read before a named DELETE, unit by unit (execution) ---------------------------------


class Deleting:
    """A client whose DELETEs all succeed, recording them."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> Any:
        from modelarts_cleanup.cloud.client import DeleteResult

        self.deleted.append(instance_id)
        return DeleteResult("deleted", 200, "req", 1, "DELETING")


def execute_named(
    read: Callable[[Target], Reading | None],
    *,
    dry_run: bool = False,
    deadline: float | None = None,
    clock: Callable[[], float] = lambda: 0.0,
    concurrency: int = 1,
    count: int = 1,
) -> tuple[list[Result], Deleting]:
    from modelarts_cleanup.cleanup.execution import execute
    from modelarts_cleanup.cleanup.report import JsonLog

    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(count)]
    plan = make_plan([Target(project_id=P, instance_id=i) for i in ids], Policy(), dry_run=dry_run)
    client = Deleting()
    results = execute(
        plan,
        client,  # type: ignore[arg-type]
        concurrency=concurrency,
        deadline=deadline,
        log=JsonLog(io.StringIO()),
        clock=clock,
        read_named=read,
    )
    return list(results), client


DETAILS = {"listed_status": "STOPPED", "workspace_id": "0", "tags": []}


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_read_that_finds_nothing_keeping_it_carries_what_it_read(dry_run: bool) -> None:
    (result,), client = execute_named(lambda t: Reading(None, "nb", DETAILS), dry_run=dry_run)
    outcome = Outcome.WOULD_DELETE if dry_run else Outcome.DELETED
    assert (result.outcome, result.instance_name, result.listed_status) == (
        outcome,
        "nb",
        "STOPPED",
    )
    assert (result.workspace_id, result.tags, result.matched_by) == ("0", [], "targets")
    assert client.deleted == ([] if dry_run else [result.instance_id])


def test_a_read_that_gives_a_reason_refuses_and_one_that_finds_it_gone_sends_no_delete() -> None:
    (kept,), client = execute_named(lambda t: Reading("protected", "nb", DETAILS))
    assert (kept.outcome, kept.reason, kept.instance_name, kept.attempts) == (
        Outcome.REFUSED,
        "protected",
        "nb",
        0,
    )
    assert kept.listed_status == "STOPPED"
    now = [1.0]

    def read_gone(target: Target) -> Reading | None:
        now[0] += 0.25  # the read takes a quarter of a second
        return None

    (gone,), client_two = execute_named(read_gone, clock=lambda: now[0])
    assert (gone.outcome, gone.attempts, gone.duration_ms) == (Outcome.ALREADY_ABSENT, 0, 250)
    assert (gone.project_id, gone.matched_by) == (P, "targets")
    assert client.deleted == client_two.deleted == []


@pytest.mark.parametrize(
    ("raised", "outcome", "reason", "code", "message"),
    [
        (
            ApiError("no", http_status=403, error_code="ModelArts.0108", error_msg="denied"),
            Outcome.FAILED,
            "recheck_failed",
            "ModelArts.0108",
            "denied",
        ),
        (DeadlineExceeded("late", attempts=0), Outcome.NOT_ATTEMPTED, "deadline", None, None),
        (
            AnswerLost("lost", error_code="DeadlineExceeded", error_msg="cut", attempts=1),
            Outcome.FAILED,
            "deadline",
            "DeadlineExceeded",
            "cut",
        ),
        (
            DeadlineExceeded("late", attempts=1, http_status=503, error_code="ModelArts.6102"),
            Outcome.FAILED,
            "recheck_failed",
            "ModelArts.6102",
            "late",
        ),
    ],
)
def test_a_read_that_cannot_answer_deletes_nothing(
    raised: Exception, outcome: Outcome, reason: str, code: str | None, message: str | None
) -> None:
    def read(target: Target) -> Reading | None:
        raise raised

    (result,), client = execute_named(read)
    assert (result.outcome, result.reason, result.error_code, result.error_msg) == (
        outcome,
        reason,
        code,
        message,
    )
    assert (result.attempts, client.deleted) == (0, [])


def test_a_read_reached_at_the_deadline_itself_is_not_attempted() -> None:
    asked: list[Target] = []

    def read(target: Target) -> Reading | None:
        asked.append(target)
        return Reading(None, None, {})

    results, client = execute_named(read, deadline=5.0, clock=lambda: 5.0, dry_run=True)
    assert [(r.outcome, r.reason) for r in results] == [(Outcome.NOT_ATTEMPTED, "deadline")]
    assert (asked, client.deleted) == ([], [])
    before, _ = execute_named(read, deadline=5.0, clock=lambda: 4.99, dry_run=True)
    assert [r.outcome for r in before] == [Outcome.WOULD_DELETE]


def test_dry_runs_that_read_do_so_in_parallel_and_keep_the_payload_order() -> None:
    import threading

    started, gate = [], threading.Barrier(3, timeout=5)

    def read(target: Target) -> Reading | None:
        started.append(target.instance_id)
        gate.wait()  # only passes when three reads are in flight at once
        return Reading(None, target.instance_id[-1], {})

    results, _ = execute_named(read, dry_run=True, concurrency=3, count=3)
    assert [r.instance_name for r in results] == ["0", "1", "2"]
    assert len(started) == 3


def test_deletions_run_in_parallel_without_reads() -> None:
    import threading

    from modelarts_cleanup.cleanup.execution import execute
    from modelarts_cleanup.cleanup.report import JsonLog

    gate = threading.Barrier(3, timeout=5)

    class Parallel(Deleting):
        def delete_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> Any:
            gate.wait()  # only passes when three deletes are in flight at once
            return super().delete_instance(project_id, instance_id, deadline=deadline)

    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(3)]
    plan = make_plan([Target(project_id=P, instance_id=i) for i in ids], Policy(), dry_run=False)
    client = Parallel()
    results = execute(
        plan,
        client,  # type: ignore[arg-type]
        concurrency=3,
        deadline=None,
        log=JsonLog(io.StringIO()),
    )
    assert [r.outcome for r in results] == [Outcome.DELETED] * 3
    assert sorted(client.deleted) == ids


def test_at_exactly_the_cap_defer_keeps_the_order_actions_came_in() -> None:
    ids = [f"{n:08x}-ee8a-3ca4-894e-db77e160355e" for n in range(3)]
    recent = selected(ids[0], "2026-11-20T00:00:00Z")
    oldest = selected(ids[1], "2026-01-01T00:00:00Z")
    named = Target(project_id=P, instance_id=ids[2])
    plan = make_plan(
        [recent, oldest, named], Policy(max_deletions=3, over_cap="defer"), dry_run=False
    )
    assert [c.target.instance_id for c in plan.to_delete] == ids
    assert plan.refused == ()
