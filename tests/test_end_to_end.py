"""The whole function over real sockets against the local endpoint: handler and `invoke`."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import handler as handler_module
import pytest

from modelarts_cleanup.__main__ import main
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ConfigurationError, CredentialsError, PayloadError
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import (
    AK,
    SK,
    FunctionGraphContext,
    endpoint_environ,
    invoke,
    local_endpoint,
    no_sleep,
)

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
OTHER_PROJECT = "0123456789abcdef0123456789abcdef"
MISSING = "6fa459ea-ee8a-3ca4-894e-db77e160355e"


def payload(*instance_ids: str, project: str = PROJECT, **extra: Any) -> dict[str, Any]:
    return {"targets": [{"project_id": project, "instance_id": i} for i in instance_ids], **extra}


def run(
    fake: FakeModelArts, event: object, context: object = None, **env: str
) -> tuple[dict[str, Any], str]:
    log = io.StringIO()
    report = run_function(
        event, context, environ=endpoint_environ(fake.url, **env), log_stream=log, sleep=no_sleep
    )
    return report, log.getvalue()


def test_mixed_batch_gives_one_right_result_per_target(fake: FakeModelArts) -> None:
    plain = [fake.add_instance(PROJECT) for _ in range(3)]
    flaky = fake.add_instance(PROJECT)
    fake.add_fault(Fault("status", status=503, times=2), instance_id=flaky)
    forbidden = fake.add_instance(PROJECT)
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None), instance_id=forbidden
    )
    ids = [*plain, flaky, forbidden, MISSING]

    # The DELETE path itself: named targets straight to DELETE (test_guards.py: with the read).
    report, log = run(fake, payload(*ids, *ids[:2]), MODELARTS_CLEANUP_PROTECT_TAGS="[]")

    outcomes = {r["instance_id"]: (r["outcome"], r["attempts"]) for r in report["results"]}
    assert outcomes == {
        **dict.fromkeys(plain, ("deleted", 1)),
        flaky: ("deleted", 3),
        forbidden: ("failed", 1),
        MISSING: ("already_absent", 1),
    }
    assert len(report["results"]) == len(ids)
    assert report["status"] == "partial"
    assert report["counts"]["deleted"] == 4
    assert fake.instance_ids(PROJECT) == {(PROJECT, forbidden)}
    failed = next(r for r in report["results"] if r["outcome"] == "failed")
    assert (failed["http_status"], failed["error_code"]) == (403, "ModelArts.0108")
    assert all(r["request_id"] for r in report["results"])
    lines = [json.loads(line) for line in log.splitlines()]
    assert sorted(line["instance_id"] for line in lines if "instance_id" in line) == sorted(ids)
    assert lines[-1]["message"] == "run finished"
    assert SK not in log


def test_every_request_is_signed_and_names_its_project(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    run(fake, payload(instance))
    read, request = fake.requests
    assert (read.method, read.path) == ("GET", f"/v1/{PROJECT}/notebooks/{instance}")
    assert read.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK},")
    assert request.method == "DELETE"
    assert request.path == f"/v1/{PROJECT}/notebooks/{instance}"
    assert request.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK},")
    assert request.headers["X-Project-Id"] == PROJECT
    assert request.status == 200


def test_old_api_deletes_through_demanager(fake: FakeModelArts) -> None:
    instance = fake.add_instance(
        PROJECT, "DE-0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b", api="devenviron"
    )
    report, _ = run(fake, payload(instance, MISSING), MODELARTS_CLEANUP_API="devenviron")
    assert [r["outcome"] for r in report["results"]] == ["deleted", "already_absent"]
    assert {r.path for r in fake.requests} == {
        f"/v1/{PROJECT}/demanager/instances/{instance}",
        f"/v1/{PROJECT}/demanager/instances/{MISSING}",
    }
    assert report["api"] == "devenviron"


def test_old_instance_ids_with_the_new_api_are_refused_before_any_request(
    fake: FakeModelArts,
) -> None:
    with pytest.raises(PayloadError, match="devenviron"):
        run(fake, payload("DE-0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b"))
    assert fake.requests == []


def test_invalid_payload_sends_nothing(fake: FakeModelArts) -> None:
    fake.add_instance(PROJECT)
    with pytest.raises(PayloadError):
        run(fake, payload(MISSING, "../../etc/passwd"))
    assert fake.requests == []


def test_wrong_secret_key_fails_once_without_retry_storm(fake: FakeModelArts) -> None:
    instances = [fake.add_instance(PROJECT) for _ in range(3)]
    report, log = run(
        fake,
        payload(*instances),
        HUAWEICLOUD_SDK_SK="not-the-right-secret-key",
        MODELARTS_CLEANUP_PROTECT_TAGS="[]",
    )
    assert {(r["outcome"], r["error_code"], r["attempts"]) for r in report["results"]} == {
        ("failed", "APIGW.0301", 1)
    }
    assert report["status"] == "failed"
    assert len(fake.requests) == 3
    assert len(fake.instance_ids(PROJECT)) == 3
    assert "not-the-right-secret-key" not in log + json.dumps(report)


def test_iam_token_is_accepted(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    log = io.StringIO()
    env = {"MODELARTS_CLEANUP_ENDPOINT": fake.url, "MODELARTS_CLEANUP_ALLOW_HTTP": "true"}
    env["MODELARTS_CLEANUP_AUTH_TOKEN"] = "fake-iam-token"
    report = run_function(payload(instance), None, environ=env, log_stream=log)
    assert report["results"][0]["outcome"] == "deleted"
    assert fake.requests[0].headers["X-Auth-Token"] == "***"
    assert "fake-iam-token" not in log.getvalue()


def test_dry_run_from_the_payload_deletes_nothing(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    report, _ = run(fake, payload(instance, dry_run=True))
    assert report["results"][0]["outcome"] == "would_delete"
    assert report["dry_run"] is True
    assert [r.method for r in fake.requests] == ["GET"]  # the read, nothing written


def test_configured_dry_run_cannot_be_switched_off_by_the_payload(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    report, _ = run(fake, payload(instance, dry_run=False), MODELARTS_CLEANUP_DRY_RUN="true")
    assert report["results"][0]["outcome"] == "would_delete"
    assert [r.method for r in fake.requests] == ["GET"]  # the read, nothing written


def test_timer_event_with_empty_user_event_uses_default_targets(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    defaults = json.dumps(payload(instance)["targets"])
    event = {"trigger_type": "TIMER", "trigger_name": "t", "user_event": ""}
    report, _ = run(fake, event, MODELARTS_CLEANUP_TARGETS=defaults)
    assert [r["outcome"] for r in report["results"]] == ["deleted"]


def test_handler_with_a_functiongraph_context_reads_user_data(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    context = FunctionGraphContext(user_data=endpoint_environ(fake.url))
    log = io.StringIO()
    report = run_function(payload(instance), context, environ={}, log_stream=log)
    assert report["status"] == "succeeded"
    assert report["request_id"] == "fg-request-1"
    assert json.loads(log.getvalue().splitlines()[0])["function_request_id"] == "fg-request-1"


def test_handler_entry_point_runs_with_none_and_partial_contexts(
    fake: FakeModelArts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in endpoint_environ(fake.url).items():
        monkeypatch.setenv(name, value)

    partial = FunctionGraphContext(
        request_id="partial-1", missing=FunctionGraphContext.GETTERS - {"getRequestID"}
    )
    for context in (None, partial, object()):
        instance = fake.add_instance(PROJECT)
        report = handler_module.handler(payload(instance), context)
        assert report["results"][0]["outcome"] == "deleted"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["function_request_id"] for line in lines}.issuperset({"partial-1"})
    assert lines[0]["cold_start"] in (True, False)


def test_no_credentials_is_a_configuration_error(fake: FakeModelArts) -> None:
    env = {"MODELARTS_CLEANUP_ENDPOINT": fake.url, "MODELARTS_CLEANUP_ALLOW_HTTP": "true"}
    with pytest.raises(CredentialsError):
        run_function(
            payload(MISSING), FunctionGraphContext(), environ=env, log_stream=io.StringIO()
        )
    assert fake.requests == []


def test_invalid_configuration_raises_and_logs_one_line(fake: FakeModelArts) -> None:
    log = io.StringIO()
    env = endpoint_environ(fake.url, MODELARTS_CLEANUP_CONCURRENCY="lots")
    with pytest.raises(ConfigurationError):
        run_function(payload(MISSING), None, environ=env, log_stream=log)
    (line,) = log.getvalue().splitlines()
    assert json.loads(line)["level"] == "ERROR"
    assert "MODELARTS_CLEANUP_CONCURRENCY" in json.loads(line)["message"]
    assert fake.requests == []


def test_cold_start_is_true_only_for_the_first_invocation(fake: FakeModelArts) -> None:
    _, first = run(fake, payload(MISSING))
    _, second = run(fake, payload(MISSING))
    assert json.loads(second.splitlines()[0])["cold_start"] is False
    assert json.loads(first.splitlines()[0])["cold_start"] in (True, False)


def test_a_warm_container_carries_nothing_over(fake: FakeModelArts) -> None:
    protected = fake.add_instance(PROJECT)
    report, _ = run(fake, payload(protected), MODELARTS_CLEANUP_PROTECTED_INSTANCES=protected)
    assert report["results"][0]["outcome"] == "refused"
    report, _ = run(fake, payload(protected))
    assert report["results"][0]["outcome"] == "deleted"


def test_schema_command_prints_the_payload_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["targets"]["type"] == "array"


def test_demo_command_runs_and_checks_itself(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "named targets OK" in out
    assert "cleanup by rule OK" in out
    # The grace period's three runs each print the digest they sent.
    assert out.count("  the digest it sent to urn:smn:") == 3
    assert "    Subject: ModelArts cleanup run succeeded: 6 marked, first deletion " in out
    assert "grace period OK" in out
    assert "FAILED" not in out
    assert "demo-secret-key-never-logged" not in out


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "events").glob("*.json")))
def test_example_events_are_valid(name: str) -> None:
    from modelarts_cleanup.events.envelopes import parse_event
    from modelarts_cleanup.events.payload import Target

    default = (Target(project_id=PROJECT, instance_id=MISSING),)
    assert parse_event((ROOT / "events" / name).read_bytes(), default_targets=default).targets


# `invoke` as a user runs it: a separate process, report on stdout, logs on stderr, exit status.


def test_invoke_exits_0_when_everything_succeeded(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    done = invoke(fake, "--event", "-", stdin=json.dumps(payload(instance, MISSING)))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [r["outcome"] for r in report["results"]] == ["deleted", "already_absent"]
    assert all(
        json.loads(line)["service"] == "modelarts-cleanup" for line in done.stderr.splitlines()
    )
    assert SK not in done.stdout + done.stderr


def test_invoke_exits_1_when_a_target_failed(fake: FakeModelArts, tmp_path: Path) -> None:
    instance = fake.add_instance(PROJECT)
    fake.add_fault(Fault("status", status=500, times=None), instance_id=instance)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload(instance)))
    done = invoke(fake, "--event", str(event))
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failed"


def test_invoke_exits_1_when_the_run_is_refused(fake: FakeModelArts) -> None:
    ids = [fake.add_instance(PROJECT) for _ in range(3)]
    done = invoke(
        fake, "--event", "-", stdin=json.dumps(payload(*ids)), MODELARTS_CLEANUP_MAX_DELETIONS="2"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "refused"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "stdin", "env"),
    [
        (("--event", "-"), '{"targets": [{"project_id": "nope"}]}', {}),
        (("--event", "-"), "not json", {}),
        (("--event", "/nonexistent/event.json"), None, {}),
        ((), None, {}),  # no event and no default targets
        (
            ("--event", "-"),
            json.dumps(payload(MISSING)),
            {"MODELARTS_CLEANUP_MAX_ATTEMPTS": "zero"},
        ),
        (("--event", "-"), json.dumps(payload(MISSING)), {"HUAWEICLOUD_SDK_AK": ""}),
    ],
)
def test_invoke_exits_2_on_invalid_input_and_sends_nothing(
    fake: FakeModelArts, args: tuple[str, ...], stdin: str | None, env: dict[str, str]
) -> None:
    done = invoke(fake, *args, stdin=stdin, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip()
    assert fake.requests == []


def test_invoke_dry_run_flag_overrides_the_event(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    done = invoke(fake, "--event", "-", "--dry-run", stdin=json.dumps(payload(instance)))
    assert done.returncode == 0
    assert json.loads(done.stdout)["results"][0]["outcome"] == "would_delete"
    assert [r.method for r in fake.requests] == ["GET"]  # the read, nothing written


def test_handler_returns_before_the_platform_would_stop_it() -> None:
    slow = local_endpoint(latency=0.25).start()
    try:
        ids = [slow.add_instance(PROJECT) for _ in range(40)]
        # A function this short needs a connect timeout to match: until a request has been
        # answered, one is allowed the connect timeout, and 5 s would leave nothing to start.
        user_data = endpoint_environ(slow.url, MODELARTS_CLEANUP_CONNECT_TIMEOUT="0.5")
        context = FunctionGraphContext(remaining_ms=3000, user_data=user_data)
        report = run_function(
            payload(*ids),
            context,
            environ={"MODELARTS_CLEANUP_CONCURRENCY": "1"},
            log_stream=io.StringIO(),
        )
    finally:
        slow.stop()
    by_outcome: dict[str, set[str]] = {}
    for result in report["results"]:
        by_outcome.setdefault(result["outcome"], set()).add(result["instance_id"])
    assert by_outcome["deleted"]
    assert by_outcome["not_attempted"]
    assert report["status"] == "partial"
    # At most the one request in flight when the deadline came is cut short; what became of it
    # is unknown, so it is `failed`, never `deleted` (the next run will find it absent or not).
    cut = [r for r in report["results"] if r["outcome"] == "failed"]
    assert len(cut) <= 1
    assert all((r["error_code"], r["reason"]) == ("DeadlineExceeded", "deadline") for r in cut)
    left = {i for _, i in slow.instance_ids(PROJECT)}
    assert by_outcome["deleted"].isdisjoint(left)
    assert by_outcome["not_attempted"] <= left
    # The platform stops the function at 3000 ms; the report must be out before that.
    assert report["duration_ms"] < 3000


@pytest.mark.parametrize("deadline", ["0", "-3", "soon", "nan", "inf"])
def test_invoke_refuses_a_deadline_that_is_not_a_positive_time(
    fake: FakeModelArts, deadline: str
) -> None:
    done = invoke(fake, "--event", "-", "--deadline", deadline, stdin=json.dumps(payload(MISSING)))
    assert done.returncode == 2
    assert "--deadline" in done.stderr
    assert fake.requests == []


def test_invoke_deadline_leaves_what_it_cannot_start_for_the_next_run() -> None:
    with local_endpoint(latency=0.3) as slow:
        ids = [slow.add_instance(PROJECT) for _ in range(20)]
        # A connect timeout short enough for a 2 s run to start anything at all.
        env = {"MODELARTS_CLEANUP_CONCURRENCY": "1", "MODELARTS_CLEANUP_CONNECT_TIMEOUT": "0.5"}
        done = invoke(
            slow, "--event", "-", "--deadline", "2", stdin=json.dumps(payload(*ids)), **env
        )
        assert slow.wait_until_idle(timeout=10)
        left = {i for _, i in slow.instance_ids(PROJECT)}
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["counts"]["deleted"] >= 1
    not_attempted = {r["instance_id"] for r in report["results"] if r["outcome"] == "not_attempted"}
    assert not_attempted
    assert not_attempted <= left
    assert {r["reason"] for r in report["results"] if r["outcome"] == "not_attempted"} == {
        "deadline"
    }


def test_a_timer_event_delivered_twice_ends_the_same_and_reports_no_failure(
    fake: FakeModelArts,
) -> None:
    ids = [fake.add_instance(PROJECT) for _ in range(4)]
    event = {
        "trigger_type": "TIMER",
        "trigger_name": "nightly",
        "user_event": json.dumps(payload(*ids, MISSING)),
    }
    first, _ = run(fake, event)
    second, _ = run(fake, event)  # the platform retries asynchronous invocations
    assert [r["outcome"] for r in first["results"]] == ["deleted"] * 4 + ["already_absent"]
    assert [r["outcome"] for r in second["results"]] == ["already_absent"] * 5
    assert first["status"] == second["status"] == "succeeded"
    assert fake.instance_ids(PROJECT) == set()


def test_a_retry_while_the_first_delivery_still_runs_loses_nothing(fake: FakeModelArts) -> None:
    ids = [fake.add_instance(PROJECT) for _ in range(30)]
    event = payload(*ids)
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda _: run(fake, event)[0], range(2)))
    for report in reports:
        assert {r["outcome"] for r in report["results"]} <= {"deleted", "already_absent"}
    deleted = [
        r["instance_id"] for rep in reports for r in rep["results"] if r["outcome"] == "deleted"
    ]
    assert sorted(deleted) == sorted(ids)  # each instance deleted exactly once, by one of them
    assert fake.instance_ids(PROJECT) == set()
