"""API Gateway and SMN events through the whole function, over real sockets to the local endpoint.

What an API Gateway caller gets back (shape, status code, nothing internal), what an SMN
message does, that every policy holds whatever the envelope, and that `invoke` takes both.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.apig import error_answer, report_answer
from modelarts_cleanup.events.payload import MAX_PAYLOAD_BYTES
from modelarts_cleanup.exceptions import (
    ConfigurationError,
    MethodNotAllowed,
    PayloadError,
    PayloadTooLarge,
    RunNotClean,
)
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import (
    SK,
    FunctionGraphContext,
    answer_body,
    apig_event,
    endpoint_environ,
    no_sleep,
    run_command,
    smn_event,
)

ROOT = Path(__file__).resolve().parent.parent
P = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
MISSING = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
ANSWER_KEYS = {"statusCode", "headers", "body", "isBase64Encoded"}


def payload(*instance_ids: str, project: str = P, **extra: Any) -> str:
    targets = [{"project_id": project, "instance_id": i} for i in instance_ids]
    return json.dumps({"targets": targets, **extra})


class Invocation:
    """One run_function call: what it returned, the report it made, and its log lines."""

    def __init__(self, fake: FakeModelArts, event: object, **env: str) -> None:
        self.reports: list[dict[str, Any]] = []
        # A timer or SMN run in a MODELARTS_CLEANUP_FAIL_ON status raises, its report made.
        self.raised: RunNotClean | None = None
        stream = io.StringIO()
        try:
            self.returned = run_function(
                event,
                FunctionGraphContext(request_id="fg-apig-1"),
                environ=endpoint_environ(
                    fake.url, **{"MODELARTS_CLEANUP_MAX_ATTEMPTS": "1", **env}
                ),
                log_stream=stream,
                sleep=no_sleep,
                on_report=self.reports.append,
            )
        except RunNotClean as exc:
            self.raised = exc
            self.returned = {}
        self.log = [json.loads(line) for line in stream.getvalue().splitlines()]

    @property
    def status(self) -> int:
        assert set(self.returned) == ANSWER_KEYS
        assert self.returned["headers"]["Content-Type"] == "application/json"
        assert isinstance(self.returned["body"], str)
        return int(self.returned["statusCode"])

    @property
    def body(self) -> Any:
        return answer_body(self.returned)


# --- API Gateway: a run, answered --------------------------------------------------------------


@pytest.mark.parametrize("base64_encoded", [True, False])
def test_apig_post_deletes_and_answers_200_with_the_report(
    fake: FakeModelArts, base64_encoded: bool
) -> None:
    instance = fake.add_instance(P)
    call = Invocation(fake, apig_event(payload(instance), base64_encoded=base64_encoded))
    assert call.status == 200
    assert call.body == call.reports[0]
    assert call.body["status"] == "succeeded"
    assert [r["outcome"] for r in call.body["results"]] == ["deleted"]
    assert call.body["request_id"] == "fg-apig-1"
    assert fake.instance_ids(P) == set()
    assert call.log[-1]["message"] == "run finished"
    assert call.log[-1]["envelope"] == "apig"


def test_apig_partial_run_answers_207(fake: FakeModelArts) -> None:
    gone, stuck = fake.add_instance(P), fake.add_instance(P)
    fake.add_fault(Fault("status", status=403, error_code="ModelArts.0108"), instance_id=stuck)
    call = Invocation(fake, apig_event(payload(gone, stuck)))
    assert (call.status, call.body["status"]) == (207, "partial")
    assert fake.instance_ids(P) == {(P, stuck)}


def test_apig_run_where_every_deletion_failed_answers_502(fake: FakeModelArts) -> None:
    stuck = fake.add_instance(P)
    fake.add_fault(Fault("status", status=403, error_code="ModelArts.0108"), instance_id=stuck)
    call = Invocation(fake, apig_event(payload(stuck)))
    assert (call.status, call.body["status"]) == (502, "failed")
    assert call.body["results"][0]["error_code"] == "ModelArts.0108"


def test_apig_run_over_the_cap_answers_409_and_sends_nothing(fake: FakeModelArts) -> None:
    ids = [fake.add_instance(P) for _ in range(3)]
    call = Invocation(fake, apig_event(payload(*ids)), MODELARTS_CLEANUP_MAX_DELETIONS="2")
    assert (call.status, call.body["status"]) == (409, "refused")
    assert {r["reason"] for r in call.body["results"]} == {"max_deletions_exceeded"}
    assert fake.requests == []
    assert "MODELARTS_CLEANUP_MAX_DELETIONS" not in call.returned["body"]


# --- API Gateway: requests that run nothing ----------------------------------------------------

REFUSED_REQUESTS: dict[str, tuple[dict[str, Any], int, str, str]] = {
    "get": (apig_event(payload(MISSING), method="GET"), 405, "method_not_allowed", "httpMethod"),
    "delete": (apig_event(payload(MISSING), method="DELETE"), 405, "method_not_allowed", "POST"),
    "bad_base64": (
        apig_event(b"") | {"body": "not*base64"},
        400,
        "invalid_payload",
        "body: not valid Base64",
    ),
    "not_json": (apig_event("delete it all"), 400, "invalid_payload", "body: not valid JSON"),
    "plain_not_json": (
        apig_event("{targets}", base64_encoded=False),
        400,
        "invalid_payload",
        "body: not valid JSON",
    ),
    "bad_id": (
        apig_event(payload("../x")),
        400,
        "invalid_payload",
        "targets[0].instance_id: must be a lowercase UUID",
    ),
    "query_dry_run": (
        apig_event(payload(MISSING), queryStringParameters={"dry_run": "true"}),
        400,
        "invalid_payload",
        "queryStringParameters.dry_run: not accepted",
    ),
    "oversized": (
        apig_event(payload(MISSING)[:-1] + ' "pad": "' + "x" * MAX_PAYLOAD_BYTES + '"}'),
        413,
        "payload_too_large",
        f"more than the {MAX_PAYLOAD_BYTES} allowed",
    ),
    "oversized_plain": (
        apig_event(" " * (MAX_PAYLOAD_BYTES + 1), base64_encoded=False),
        413,
        "payload_too_large",
        f"body: {MAX_PAYLOAD_BYTES + 1} bytes",
    ),
}


@pytest.mark.parametrize(
    ("event", "status", "error", "says"), REFUSED_REQUESTS.values(), ids=REFUSED_REQUESTS.keys()
)
def test_apig_request_that_runs_nothing_is_answered_and_sends_nothing(
    fake: FakeModelArts, event: dict[str, Any], status: int, error: str, says: str
) -> None:
    call = Invocation(fake, event)
    assert call.status == status
    body = call.body
    assert set(body) == {"error", "message", "problems", "request_id"}
    assert (body["error"], body["request_id"]) == (error, "fg-apig-1")
    assert "nothing was sent" in body["message"]
    assert any(says in problem for problem in body["problems"])
    assert call.reports == []
    assert fake.requests == []
    (line,) = call.log
    assert (line["level"], line["envelope"]) == ("ERROR", "apig")
    if status == 405:
        assert call.returned["headers"]["Allow"] == "POST"


CONFIGURATION_ERRORS = {
    "bad_number": {"MODELARTS_CLEANUP_CONCURRENCY": "lots"},
    "endpoint_with_credentials": {"MODELARTS_CLEANUP_ENDPOINT": f"https://ak:{SK}@10.1.2.3/"},
    "half_a_key_pair": {"HUAWEICLOUD_SDK_AK": ""},
    "no_credentials": {"HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""},
}


@pytest.mark.parametrize("env", CONFIGURATION_ERRORS.values(), ids=CONFIGURATION_ERRORS.keys())
def test_apig_configuration_error_answers_500_saying_nothing_of_the_settings(
    fake: FakeModelArts, env: dict[str, str]
) -> None:
    call = Invocation(fake, apig_event(payload(MISSING)), **env)
    assert call.status == 500
    assert call.body == {
        "error": "configuration_error",
        "message": "the function is not configured correctly; nothing was sent; its log says why",
        "request_id": "fg-apig-1",
    }
    assert fake.requests == []
    (line,) = call.log  # the reason is in the log, for whoever runs the function
    assert line["error_type"] in {"ConfigurationError", "CredentialsError"}


def test_apig_unexpected_error_answers_500_with_its_place_in_the_log_only(
    fake: FakeModelArts,
) -> None:
    def broken_session(pool_size: int, auth: object) -> Any:
        raise RuntimeError(f"session could not start with {SK}")

    stream = io.StringIO()
    answer = run_function(
        apig_event(payload(MISSING)),
        None,
        environ=endpoint_environ(fake.url),
        log_stream=stream,
        session_factory=broken_session,
    )
    assert answer["statusCode"] == 500
    assert answer_body(answer)["error"] == "internal_error"
    (line,) = (json.loads(text) for text in stream.getvalue().splitlines())
    assert (line["message"], line["error_type"]) == ("unexpected error", "RuntimeError")
    assert line["where"].startswith("test_apig_and_smn.py:")
    assert SK not in answer["body"] + stream.getvalue()


def test_direct_invocation_still_raises_for_the_same_errors(fake: FakeModelArts) -> None:
    with pytest.raises(PayloadError):
        Invocation(fake, json.loads(payload("../x")))
    with pytest.raises(ConfigurationError):
        Invocation(fake, json.loads(payload(MISSING)), MODELARTS_CLEANUP_CONCURRENCY="lots")


def test_apig_answer_names_no_endpoint_the_settings_hold() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host, port = closed.getsockname()
    url = f"http://{host}:{port}"
    stream = io.StringIO()
    answer = run_function(
        apig_event(payload(MISSING)),
        None,
        environ=endpoint_environ(url, MODELARTS_CLEANUP_MAX_ATTEMPTS="1"),
        log_stream=stream,
        sleep=no_sleep,
    )
    assert answer["statusCode"] == 502
    (result,) = answer_body(answer)["results"]
    assert result["error_msg"].startswith("connection to the ModelArts endpoint failed")
    assert host not in answer["body"]
    assert f"{host}:{port}" in stream.getvalue()  # the log, for the operator, keeps it


# --- the answer's shape, for every error kind ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (MethodNotAllowed(["httpMethod: ..."]), 405, "method_not_allowed"),
        (PayloadTooLarge(["body: ..."]), 413, "payload_too_large"),
        (PayloadError(["targets: ..."]), 400, "invalid_payload"),
        (ConfigurationError(f"HUAWEICLOUD_SDK_SK={SK}"), 500, "configuration_error"),
        (RuntimeError(f"internal detail {SK}"), 500, "internal_error"),
    ],
)
def test_error_answers_carry_a_code_a_message_and_never_the_exception_text(
    error: Exception, status: int, code: str
) -> None:
    answer = error_answer(error, "req-1")
    assert set(answer) == ANSWER_KEYS
    assert (answer["statusCode"], answer["isBase64Encoded"]) == (status, False)
    body = answer_body(answer)
    assert (body["error"], body["request_id"]) == (code, "req-1")
    assert SK not in answer["body"]
    assert ("problems" in body) == isinstance(error, PayloadError)


@pytest.mark.parametrize(
    ("status", "code"), [("succeeded", 200), ("partial", 207), ("failed", 502), ("refused", 409)]
)
def test_report_answers_carry_the_report_and_a_status_code_per_run_status(
    status: str, code: int
) -> None:
    report = {"status": status, "results": [], "selectors": [], "counts": {}}
    answer = report_answer(report, endpoint="https://modelarts.cn-north-4.myhuaweicloud.com")
    assert (answer["statusCode"], answer_body(answer)) == (code, report)
    assert answer["headers"] == {"Content-Type": "application/json"}


# --- SMN -----------------------------------------------------------------------------------------


def test_smn_records_make_one_run_each_target_once(fake: FakeModelArts) -> None:
    a, b = fake.add_instance(P), fake.add_instance(P)
    call = Invocation(fake, smn_event(payload(a, b), payload(b, MISSING)))
    report = call.returned
    assert report == call.reports[0]  # no envelope of its own to answer in: the report
    assert sorted((r["instance_id"], r["outcome"]) for r in report["results"]) == sorted(
        [(a, "deleted"), (b, "deleted"), (MISSING, "already_absent")]
    )
    # Each named target read first (protect tags): the missing one is never sent a DELETE.
    deletes = {r.instance_id for r in fake.requests if r.method == "DELETE"}
    assert deletes == {a, b}
    assert {r.instance_id for r in fake.requests if r.method == "GET"} == {a, b, MISSING}
    assert call.log[-1]["envelope"] == "smn"


def test_smn_selectors_are_named_by_their_place_in_the_merged_list(fake: FakeModelArts) -> None:
    first = fake.add_instance(P, name="tmp-first", status="STOPPED")
    second = fake.add_instance(P2, name="exp-second", status="ERROR")
    rule_one = {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}
    rule_two = {"project_id": P2, "statuses": ["ERROR"], "name_pattern": "exp-*"}
    call = Invocation(
        fake,
        smn_event(json.dumps({"selectors": [rule_one]}), json.dumps({"selectors": [rule_two]})),
    )
    matched = {r["instance_id"]: r["matched_by"] for r in call.returned["results"]}
    assert matched == {first: "selectors[0]", second: "selectors[1]"}
    assert [s["selector"] for s in call.returned["selectors"]] == ["selectors[0]", "selectors[1]"]


def test_smn_dry_run_in_one_message_makes_the_whole_run_dry(fake: FakeModelArts) -> None:
    a, b = fake.add_instance(P), fake.add_instance(P)
    call = Invocation(fake, smn_event(payload(a), payload(b, dry_run=True)))
    assert call.returned["dry_run"] is True
    assert {r["outcome"] for r in call.returned["results"]} == {"would_delete"}
    assert not [r for r in fake.requests if r.method == "DELETE"]


@pytest.mark.parametrize(
    "messages",
    [("delete everything",), ("",), (payload(MISSING), "{not json"), (payload("../x"),)],
    ids=["not-json", "empty", "second-not-json", "bad-id"],
)
def test_smn_message_that_is_not_a_payload_raises_and_sends_nothing(
    fake: FakeModelArts, messages: tuple[str, ...]
) -> None:
    with pytest.raises(PayloadError) as raised:
        Invocation(fake, smn_event(*messages))
    assert str(raised.value).startswith("invalid payload (")
    assert "smn.message" in str(raised.value)
    assert fake.requests == []


# --- policies hold whatever the envelope --------------------------------------------------------

ENVELOPES = {
    "direct": json.loads,
    "timer": lambda body: {"trigger_type": "TIMER", "user_event": body},
    "apig": apig_event,
    "apig_plain": lambda body: apig_event(body, base64_encoded=False),
    "smn": smn_event,
}


def report_of(call: Invocation) -> dict[str, Any]:
    (report,) = call.reports
    return report


@pytest.mark.parametrize("wrap", ENVELOPES.values(), ids=ENVELOPES.keys())
def test_no_envelope_lifts_a_configured_dry_run(fake: FakeModelArts, wrap: Any) -> None:
    instance = fake.add_instance(P)
    call = Invocation(fake, wrap(payload(instance, dry_run=False)), MODELARTS_CLEANUP_DRY_RUN="1")
    report = report_of(call)
    assert report["dry_run"] is True
    assert [r["outcome"] for r in report["results"]] == ["would_delete"]
    assert [(r.method, r.instance_id) for r in fake.requests] == [("GET", instance)]
    assert fake.instance_ids(P) == {(P, instance)}


@pytest.mark.parametrize("wrap", ENVELOPES.values(), ids=ENVELOPES.keys())
def test_allowlist_protection_and_cap_hold_in_every_envelope(
    fake: FakeModelArts, wrap: Any
) -> None:
    protected, outsider = fake.add_instance(P), fake.add_instance(P2)
    body = json.dumps(
        {
            "targets": [
                {"project_id": P, "instance_id": protected},
                {"project_id": P2, "instance_id": outsider},
            ]
        }
    )
    call = Invocation(
        fake,
        wrap(body),
        MODELARTS_CLEANUP_ALLOWED_PROJECTS=P,
        MODELARTS_CLEANUP_PROTECTED_INSTANCES=protected,
    )
    reasons = {r["instance_id"]: r["reason"] for r in report_of(call)["results"]}
    assert reasons == {protected: "protected", outsider: "project_not_allowed"}
    capped = Invocation(fake, wrap(payload(protected)), MODELARTS_CLEANUP_MAX_DELETIONS="0")
    assert report_of(capped)["status"] == "refused"
    # Asynchronous invocations end in an error FunctionGraph sees (MODELARTS_CLEANUP_FAIL_ON).
    assert (capped.raised is not None) == (wrap in (ENVELOPES["timer"], ENVELOPES["smn"]))
    assert fake.requests == []


# --- cold start: a timer or direct run loads none of this ----------------------------------------

_CHILD = """
import io, json, sys
from modelarts_cleanup.entry import run_function
from tests.support import apig_event, endpoint_environ

url, event = sys.argv[1], json.loads(sys.argv[2])
loaded = lambda: sorted(m for m in ("modelarts_cleanup.events.apig", "modelarts_cleanup.events.smn")
                        if m in sys.modules)
env = endpoint_environ(url)
run_function(event, None, environ=env, log_stream=io.StringIO())
before = loaded()
run_function(apig_event(sys.argv[2]), None, environ=env, log_stream=io.StringIO())
print(json.dumps([before, loaded()]))
"""


@pytest.mark.parametrize(
    "event",
    [
        json.loads(payload(MISSING, dry_run=True)),
        {"trigger_type": "TIMER", "user_event": payload(MISSING, dry_run=True)},
    ],
    ids=["direct", "timer"],
)
def test_direct_and_timer_runs_do_not_import_the_apig_or_smn_code(
    fake: FakeModelArts, event: dict[str, Any]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, fake.url, json.dumps(event)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=True,
    )
    before, after = json.loads(done.stdout)
    assert before == []
    assert after == ["modelarts_cleanup.events.apig"]


# --- invoke and plan on the command line --------------------------------------------------------


def invoke(
    fake: FakeModelArts, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    settings = {"MODELARTS_CLEANUP_MAX_ATTEMPTS": "1", **env}
    return run_command(*args, stdin=stdin, env=endpoint_environ(fake.url, **settings))


def test_invoke_with_the_apig_example_prints_the_answer_and_exits_0(fake: FakeModelArts) -> None:
    done = invoke(fake, "invoke", "--event", str(ROOT / "events" / "apig.json"))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["statusCode"] == 200
    assert answer_body(answer)["dry_run"] is True
    assert json.loads(done.stderr.splitlines()[-1])["envelope"] == "apig"


@pytest.mark.parametrize(
    ("event", "env", "exit_status", "status_code"),
    [
        (apig_event(payload(MISSING), method="GET"), {}, 2, 405),
        (apig_event("not json"), {}, 2, 400),
        (apig_event(payload(MISSING)), {"MODELARTS_CLEANUP_CONCURRENCY": "lots"}, 2, 500),
        (
            apig_event(payload(MISSING, MISSING[:-1] + "0")),
            {"MODELARTS_CLEANUP_MAX_DELETIONS": "1"},
            1,
            409,
        ),
    ],
    ids=["405", "400", "500", "409"],
)
def test_invoke_with_an_apig_event_prints_its_answer_and_exits_by_it(
    fake: FakeModelArts,
    event: dict[str, Any],
    env: dict[str, str],
    exit_status: int,
    status_code: int,
) -> None:
    done = invoke(fake, "invoke", "--event", "-", stdin=json.dumps(event), **env)
    assert done.returncode == exit_status, done.stderr
    assert json.loads(done.stdout)["statusCode"] == status_code
    assert fake.requests == []


def test_plan_with_an_apig_event_prints_the_table(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    event = json.dumps(apig_event(payload(instance)))
    # --wide: whole IDs, whatever the width the read's columns take
    done = invoke(fake, "plan", "--event", "-", "--wide", stdin=event)
    assert done.returncode == 0, done.stderr
    assert instance in done.stdout
    assert "would delete 1" in done.stdout
    as_json = invoke(fake, "plan", "--json", "--event", "-", stdin=event)
    report = json.loads(as_json.stdout)  # the report itself, not APIG's answer
    assert (report["dry_run"], report["counts"]["would_delete"]) == (True, 1)
    refused = invoke(fake, "plan", "--event", "-", stdin=json.dumps(apig_event("x", method="GET")))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert fake.instance_ids(P) == {(P, instance)}


def test_invoke_with_the_smn_example_prints_the_report(fake: FakeModelArts) -> None:
    done = invoke(fake, "invoke", "--event", str(ROOT / "events" / "smn.json"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert len(report["results"]) == 2  # three targets in two messages, one of them twice
