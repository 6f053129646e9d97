"""The digest published to an SMN topic, end to end over real sockets against the local endpoint
(which answers SMN's PublishMessage too): what is sent, when, and that nothing that happens to it
changes what the run did."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from modelarts_cleanup.cleanup.digest import digest
from modelarts_cleanup.cloud.notify import (
    MAX_MESSAGE_BYTES,
    MAX_SUBJECT_BYTES,
    SmnPublisher,
    parse_topic_urn,
)
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.cloud.transport import RetryPolicy, Transport
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ApiError, DeadlineExceeded
from modelarts_cleanup.testing import FakeModelArts, Fault, User
from modelarts_cleanup.testing.api import IAM_ACTIONS
from tests.support import (
    AK,
    SK,
    apig_event,
    endpoint_environ,
    local_endpoint,
    no_sleep,
    run_command,
)

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
# The topic lives in another project than the notebooks: the publish speaks for the topic's.
TOPIC_PROJECT = "0123456789abcdef0123456789abcdef"
TOPIC = f"urn:smn:cn-north-4:{TOPIC_PROJECT}:cleanup-digest"
GONE = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
NOW = 1_800_000_000.0
ALICE, BOB = User("a" * 32, "alice"), User("b" * 32, "bob")


@pytest.fixture
def fake() -> Iterator[FakeModelArts]:
    with local_endpoint() as endpoint:
        endpoint.add_topic(TOPIC)
        yield endpoint


def run(
    fake: FakeModelArts, event: object, *, topic: str | None = TOPIC, **env: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    settings = {"MODELARTS_CLEANUP_SMN_ENDPOINT": fake.url, **env}
    if topic is not None:
        settings["MODELARTS_CLEANUP_NOTIFY_TOPIC"] = topic
    log = io.StringIO()
    report = run_function(
        event,
        None,
        environ=endpoint_environ(fake.url, **settings),
        log_stream=log,
        sleep=no_sleep,
        wall_clock=lambda: NOW,
    )
    return report, [json.loads(line) for line in log.getvalue().splitlines()]


def targets(*ids: str) -> dict[str, Any]:
    return {"targets": [{"project_id": P, "instance_id": i} for i in ids]}


def publishes(fake: FakeModelArts) -> list[Any]:
    return [r for r in fake.requests if r.iam_action == "smn:topic:publish"]


def outcomes(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("instance_id", "outcome", "http_status", "error_code", "reason", "attempts")
    return [tuple(r[k] for k in keys) for r in report["results"]]


def test_a_run_publishes_its_digest_last_signed_for_the_topics_project(
    fake: FakeModelArts,
) -> None:
    old = int((NOW - 30 * 86400) * 1000)
    picked = [
        fake.add_instance(P, name="tmp-a", owner=ALICE, updated_ms=old),
        fake.add_instance(P, name="tmp-b", owner=BOB, updated_ms=old),
    ]
    named = fake.add_instance(P, name="named")
    rule = {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*", "grace_hours": 48}
    event = {**targets(named, GONE), "selectors": [rule]}

    report, log = run(fake, event)

    assert [m.topic for m in fake.published] == [TOPIC]
    (sent,) = fake.published
    expected = digest(
        report,
        started=datetime.fromtimestamp(NOW, tz=timezone.utc),
        region=None,
        protect_tags=["modelarts-cleanup:keep"],
    )
    assert (sent.subject, sent.message) == (expected.subject, expected.message)
    assert sent.subject == (
        "ModelArts cleanup run succeeded: 2 marked, 1 deleted, 1 already gone, "
        "first deletion 2027-01-17 08:00 UTC"
    )
    for instance in picked:
        assert f"ID {instance}, workspace 0, STOPPED, idle 30 days: to be deleted after" in (
            sent.message
        )
    assert report["notification"] == {
        "topic": TOPIC,
        "status": "sent",
        "message_id": sent.message_id,
        "error_code": None,
        "error_msg": None,
    }
    # After every deletion and mark, signed, in the topic's project.
    (publish,) = publishes(fake)
    assert fake.requests[-1] is publish
    assert publish.path == f"/v2/{TOPIC_PROJECT}/notifications/topics/{TOPIC}/publish"
    assert publish.headers["X-Project-Id"] == TOPIC_PROJECT
    assert publish.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
    assert publish.status == 200
    (line,) = [entry for entry in log if entry["message"] == "notification sent"]
    assert (line["level"], line["message_id"], line["topic"]) == ("INFO", sent.message_id, TOPIC)
    assert log[-1]["message"] == "run finished"


def test_without_a_topic_nothing_is_published_and_the_report_says_null(
    fake: FakeModelArts,
) -> None:
    instance = fake.add_instance(P)
    report, _ = run(fake, targets(instance), topic=None, MODELARTS_CLEANUP_NOTIFY_ON="always")
    assert report["notification"] is None
    assert publishes(fake) == [] and fake.published == []


# -- when ------------------------------------------------------------------------------------


def quiet(fake: FakeModelArts) -> dict[str, Any]:
    return targets(GONE)  # already absent: nothing changed, nothing wrong


def changed(fake: FakeModelArts) -> dict[str, Any]:
    return targets(fake.add_instance(P))


def problem(fake: FakeModelArts) -> dict[str, Any]:
    instance = fake.add_instance(P)
    fault = Fault("status", status=403, error_code="ModelArts.0108", times=None)
    fake.add_fault(fault, instance_id=instance)
    return targets(instance, fake.add_instance(P))  # one deleted, one failed: partial


SCENARIOS = {"quiet": quiet, "changed": changed, "problem": problem}


@pytest.mark.parametrize(
    ("mode", "scenario", "sent"),
    [
        ("changes", "quiet", False),
        ("changes", "changed", True),
        ("changes", "problem", True),
        ("problems", "quiet", False),
        ("problems", "changed", False),
        ("problems", "problem", True),
        ("always", "quiet", True),
        ("always", "changed", True),
        ("always", "problem", True),
    ],
)
def test_notify_on_decides_which_runs_publish(
    fake: FakeModelArts, mode: str, scenario: str, sent: bool
) -> None:
    report, _ = run(fake, SCENARIOS[scenario](fake), MODELARTS_CLEANUP_NOTIFY_ON=mode)
    assert report["status"] == ("partial" if scenario == "problem" else "succeeded")
    assert report["notification"]["status"] == ("sent" if sent else "skipped")
    assert len(fake.published) == len(publishes(fake)) == (1 if sent else 0)


def test_a_dry_run_publishes_what_would_happen_and_deletes_nothing(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P, name="tmp-x")
    rule = {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}
    report, _ = run(fake, {"selectors": [rule], "dry_run": True})
    assert [r["outcome"] for r in report["results"]] == ["would_delete"]
    assert fake.instance(P, instance) is not None
    (sent,) = fake.published
    assert sent.subject == "ModelArts cleanup dry run succeeded: 1 would delete"
    assert "Would be deleted (1)" in sent.message.splitlines()
    assert "Dry run: nothing was changed" in sent.message


# -- it never changes the cleanup ------------------------------------------------------------

FAILURES = {
    "5xx after retries": (
        Fault("status", status=503, error_code="SMN.Busy", error_msg="Busy.", times=None),
        "SMN.Busy",
    ),
    "answer lost after it was taken": (Fault("reset", times=None, carried_out=True), None),
    "connection reset": (Fault("reset", times=None), None),
    "malformed success": (Fault("malformed", status=200, times=None), "MalformedResponse"),
}


def baseline() -> list[tuple[Any, ...]]:
    """The same run without a topic, on a fresh endpoint."""
    with local_endpoint() as fresh:
        report, _ = run(fresh, the_run(fresh), topic=None)
        return outcomes(report)


def the_run(fake: FakeModelArts) -> dict[str, Any]:
    ids = [
        fake.add_instance(P, instance_id=f"00000000-0000-4000-8000-00000000000{n}") for n in (1, 2)
    ]
    fake.add_fault(
        Fault("status", status=403, error_code="ModelArts.0108", times=None), instance_id=ids[1]
    )
    return targets(*ids, GONE)


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_publish_that_fails_leaves_every_result_as_it_was(
    fake: FakeModelArts, failure: str
) -> None:
    fault, code = FAILURES[failure]
    fake.add_fault(fault, action="smn_publish")

    report, log = run(fake, the_run(fake), MODELARTS_CLEANUP_MAX_ATTEMPTS="3")

    assert report["status"] == "partial"
    assert outcomes(report) == baseline()
    assert fake.instance(P, "00000000-0000-4000-8000-000000000001") is None
    notification = report["notification"]
    assert notification["status"] == "failed"
    assert notification["message_id"] is None
    if code is not None:
        assert notification["error_code"] == code
    assert notification["error_msg"]
    assert fake.url not in json.dumps(notification)
    assert "127.0.0.1" not in notification["error_msg"]
    (line,) = [entry for entry in log if entry["message"] == "notification failed"]
    assert line["level"] == "ERROR" and line["topic"] == TOPIC
    # Retried as every request is, up to the attempts allowed (a malformed 2xx is retried too).
    assert len(publishes(fake)) == 3
    assert log[-1]["message"] == "run finished" and log[-1]["status"] == "partial"


def test_a_publish_refused_by_iam_leaves_every_result_as_it_was(fake: FakeModelArts) -> None:
    fake.permissions = set(IAM_ACTIONS.values()) - {"smn:topic:publish"}
    report, log = run(fake, the_run(fake))
    assert outcomes(report) == baseline()
    assert report["status"] == "partial"
    notification = report["notification"]
    assert (notification["status"], notification["error_code"]) == ("failed", "ModelArts.0108")
    assert len(publishes(fake)) == 1  # a 403 is not retried
    assert any(e["level"] == "ERROR" and e["message"] == "notification failed" for e in log)


def test_a_run_whose_only_failure_is_its_notification_succeeded(fake: FakeModelArts) -> None:
    fake.add_fault(Fault("status", status=500, times=None), action="smn_publish")
    report, _ = run(fake, targets(fake.add_instance(P)), MODELARTS_CLEANUP_MAX_ATTEMPTS="2")
    assert report["status"] == "succeeded"
    assert report["counts"]["failed"] == 0
    assert report["notification"]["status"] == "failed"


def test_an_unknown_topic_fails_the_notification_only(fake: FakeModelArts) -> None:
    other = f"urn:smn:cn-north-4:{TOPIC_PROJECT}:nobody-made-this"
    instance = fake.add_instance(P)
    report, _ = run(fake, targets(instance), topic=other)
    assert report["status"] == "succeeded"
    assert report["notification"]["status"] == "failed"
    assert report["notification"]["error_code"] == "SMN.00010008"


def test_a_publish_whose_answer_the_deadline_cuts_is_failed_and_unknown(
    fake: FakeModelArts,
) -> None:
    instance = fake.add_instance(P)
    fake.add_fault(Fault("slow", delay=4.0), action="smn_publish")
    log = io.StringIO()
    report = run_function(
        targets(instance),
        None,
        environ=endpoint_environ(
            fake.url,
            MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
            MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
            MODELARTS_CLEANUP_CONNECT_TIMEOUT="0.5",
        ),
        log_stream=log,
        deadline_seconds=2.0,
    )
    assert [r["outcome"] for r in report["results"]] == ["deleted"]
    assert report["status"] == "succeeded"
    assert report["notification"]["status"] == "failed"
    assert report["notification"]["error_code"] == "DeadlineExceeded"


def test_a_publish_the_deadline_leaves_no_time_for_is_not_attempted(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    # The deletion's answer is cut by the deadline: no time is left to publish.
    fake.add_fault(Fault("slow", delay=4.0), instance_id=instance)
    log = io.StringIO()
    report = run_function(
        targets(instance),
        None,
        environ=endpoint_environ(
            fake.url,
            MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
            MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
            MODELARTS_CLEANUP_CONNECT_TIMEOUT="0.5",
        ),
        log_stream=log,
        deadline_seconds=2.0,
    )
    (result,) = report["results"]
    assert (result["outcome"], result["reason"]) == ("failed", "deadline")
    assert report["notification"]["status"] == "not_attempted"
    assert publishes(fake) == []
    assert '"level":"ERROR","message":"notification not sent' in log.getvalue()


# -- nothing secret --------------------------------------------------------------------------


def test_the_published_digest_holds_no_secret_and_no_url() -> None:
    token = "security-token-never-published-123"
    with FakeModelArts(access_key=AK, secret_key=SK, security_token=token) as fake:
        fake.add_topic(TOPIC)
        echoed = fake.add_instance(P)
        fake.add_fault(
            Fault(
                "status",
                status=403,
                error_code="APIGW.0301",
                error_msg=f"rejected {token} {SK} at {fake.url}/v1/x",
                times=None,
            ),
            instance_id=echoed,
        )
        report, _ = run(
            fake,
            targets(echoed, fake.add_instance(P)),
            HUAWEICLOUD_SDK_SECURITY_TOKEN=token,
        )
        (sent,) = fake.published
        (publish,) = publishes(fake)
    assert report["notification"]["status"] == "sent"
    for text in (sent.subject, sent.message, publish.body.decode("utf-8")):
        assert token not in text and SK not in text
        assert "://" not in text and "127.0.0.1" not in text
    assert "APIGW.0301 (HTTP 403): rejected *** *** at (a URL)" in sent.message


# -- the local endpoint's PublishMessage ------------------------------------------------------


def transport_to(fake: FakeModelArts, secret_key: str = SK) -> Transport:
    return Transport(
        session=new_session(1, auth=SdkHmacSha256Auth(AK, secret_key)),
        endpoint=fake.url,
        retry=RetryPolicy(max_attempts=1),
    )


def publisher(fake: FakeModelArts) -> SmnPublisher:
    return SmnPublisher(transport_to(fake), parse_topic_urn(TOPIC))


def raw_publish(fake: FakeModelArts, body: dict[str, Any], secret_key: str = SK) -> ApiError:
    transport = transport_to(fake, secret_key)
    path = f"/v2/{TOPIC_PROJECT}/notifications/topics/{TOPIC}/publish"
    with pytest.raises(ApiError) as refused:
        transport.send("POST", path, project_id=TOPIC_PROJECT, json_body=body)
    return refused.value


def test_the_endpoint_takes_a_message_at_the_limits_and_records_it(fake: FakeModelArts) -> None:
    subject, message = "é" * (MAX_SUBJECT_BYTES // 2), "x" * MAX_MESSAGE_BYTES
    published = publisher(fake).publish(subject, message)
    (recorded,) = fake.published
    assert (recorded.subject, recorded.message) == (subject, message)
    assert published.message_id == recorded.message_id


# The API reference's limits, as the local endpoint holds them (not the function's constants).
SMN_SUBJECT_BYTES, SMN_MESSAGE_BYTES = 512, 256_000


def test_the_function_stays_within_what_smn_documents() -> None:
    assert (MAX_SUBJECT_BYTES, MAX_MESSAGE_BYTES) == (SMN_SUBJECT_BYTES, SMN_MESSAGE_BYTES)


@pytest.mark.parametrize(
    "body",
    [
        {"subject": "s" * (SMN_SUBJECT_BYTES + 1), "message": "m"},
        {"subject": "s", "message": "é" * (SMN_MESSAGE_BYTES // 2 + 1)},
        {"subject": "s"},
        {"subject": 1, "message": "m"},
    ],
    ids=["subject-too-long", "message-too-long", "no-message", "subject-not-text"],
)
def test_the_endpoint_refuses_what_smn_refuses(fake: FakeModelArts, body: dict[str, Any]) -> None:
    error = raw_publish(fake, body)
    assert (error.http_status, error.error_code) == (400, "SMN.00010001")
    assert fake.published == []


def test_the_endpoint_checks_the_signature_of_a_publish(fake: FakeModelArts) -> None:
    error = raw_publish(fake, {"subject": "s", "message": "m"}, secret_key="not-the-key")
    assert (error.http_status, error.error_code) == (401, "APIGW.0301")
    assert fake.published == []


def test_the_publisher_refuses_a_subject_or_message_smn_would_refuse(fake: FakeModelArts) -> None:
    with pytest.raises(ValueError, match="one line"):
        publisher(fake).publish("two\nlines", "m")
    with pytest.raises(ValueError, match="at most"):
        publisher(fake).publish("s", "x" * (MAX_MESSAGE_BYTES + 1))
    assert fake.requests == []


def test_a_publish_past_its_deadline_sends_nothing(fake: FakeModelArts) -> None:
    with pytest.raises(DeadlineExceeded) as cut:
        publisher(fake).publish("s", "m", deadline=0.0)
    assert cut.value.attempts == 0
    assert fake.requests == []


def test_plan_publishes_nothing_and_invoke_does(fake: FakeModelArts) -> None:
    instance = fake.add_instance(P)
    env = endpoint_environ(
        fake.url,
        MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
        MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
        MODELARTS_CLEANUP_TARGETS=json.dumps([{"project_id": P, "instance_id": instance}]),
    )
    planned = run_command("plan", "--json", env=env)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["notification"] is None
    assert fake.published == [] and publishes(fake) == []
    invoked = run_command("invoke", "--dry-run", env=env)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["notification"]["status"] == "sent"
    assert [m.subject for m in fake.published] == [
        "ModelArts cleanup dry run succeeded: 1 would delete"
    ]


def test_the_digest_says_when_the_run_began_not_when_it_was_sent(fake: FakeModelArts) -> None:
    ticks = iter(range(100))
    fake.add_instance(P, name="tmp-x")
    rule = {"project_id": P, "statuses": ["STOPPED"], "name_pattern": "tmp-*"}
    report = run_function(
        {"selectors": [rule]},
        None,
        environ=endpoint_environ(
            fake.url,
            MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
            MODELARTS_CLEANUP_SMN_ENDPOINT=fake.url,
        ),
        log_stream=io.StringIO(),
        wall_clock=lambda: NOW + 3600 * next(ticks),  # an hour passes at every look
    )
    assert report["notification"]["status"] == "sent"
    (sent,) = fake.published
    assert "When: 2027-01-15 08:00:00 UTC." in sent.message.splitlines()


class _Exploding(SmnPublisher):
    def publish(self, subject: str, message: str, *, deadline: float | None = None) -> Any:
        raise RuntimeError(f"boom {SK}")


def test_whatever_a_publish_raises_becomes_the_notification_entry_never_the_runs(
    fake: FakeModelArts,
) -> None:
    from modelarts_cleanup.cleanup.notification import notify
    from modelarts_cleanup.cleanup.report import JsonLog

    exploding = _Exploding(transport_to(fake), parse_topic_urn(TOPIC))
    report = {
        **json.loads(json.dumps(run(fake, targets(GONE), topic=None)[0])),
        "status": "partial",
    }
    stream = io.StringIO()
    entry = notify(
        report,
        exploding,
        mode="changes",
        started=datetime.fromtimestamp(NOW, tz=timezone.utc),
        region=None,
        protect_tags=[],
        deadline=None,
        log=JsonLog(stream),
    )
    assert entry == {
        "topic": TOPIC,
        "status": "failed",
        "message_id": None,
        "error_code": "UnexpectedError",
        "error_msg": "RuntimeError",
    }
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["level"], line["message"], line["error_type"]) == (
        "ERROR",
        "notification failed",
        "RuntimeError",
    )
    assert SK not in stream.getvalue()


def test_an_api_gateway_answer_carries_the_notification_and_keeps_its_status_code(
    fake: FakeModelArts,
) -> None:
    fake.add_fault(Fault("status", status=503, times=None), action="smn_publish")
    body = json.dumps(targets(fake.add_instance(P)))
    answer, _ = run(fake, apig_event(body), MODELARTS_CLEANUP_MAX_ATTEMPTS="2")
    assert answer["statusCode"] == 200  # the run succeeded; only its notification failed
    notification = json.loads(answer["body"])["notification"]
    assert (notification["topic"], notification["status"]) == (TOPIC, "failed")
    assert "127.0.0.1" not in answer["body"]


def test_an_smn_endpoint_that_cannot_be_used_fails_the_notification_and_nothing_else() -> None:
    # The settings check every SMN URL, so only a URL that escaped them gets here: the digest
    # is then `failed`, said at ERROR, and the run's results stand as they were.
    from types import SimpleNamespace

    from pydantic import SecretStr

    from modelarts_cleanup.cleanup.report import JsonLog
    from modelarts_cleanup.cloud.credentials import AkSk
    from modelarts_cleanup.cloud.iam import ProjectRegionCache
    from modelarts_cleanup.cloud.session import new_session
    from modelarts_cleanup.followup import notified
    from modelarts_cleanup.settings import load_settings

    reach = SimpleNamespace(
        context=None,
        environ=None,
        session_factory=lambda size, auth: new_session(size, auth=auth),
        clock=lambda: 0.0,
        sleep=lambda seconds: None,
        iam_cache=ProjectRegionCache(),
    )
    settings = load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4"})
    credentials = AkSk("AK0000000000", SecretStr("sk-secret-value"), None, "settings")
    log = io.StringIO()
    sessions: list[Any] = []
    told = notified(
        {"status": "succeeded"},
        settings,
        parse_topic_urn(TOPIC),
        "ftp://smn.example.test",
        reach,
        credentials,
        JsonLog(log),
        None,
        0.0,
        sessions,
    )
    for session in sessions:
        session.close()
    assert told == {
        "topic": TOPIC,
        "status": "failed",
        "message_id": None,
        "error_code": "ConfigurationError",
        "error_msg": "the SMN endpoint could not be used",
    }
    (line,) = [json.loads(x) for x in log.getvalue().splitlines()]
    assert (line["level"], line["message"]) == ("ERROR", "notification failed")
    assert "sk-secret-value" not in log.getvalue()
