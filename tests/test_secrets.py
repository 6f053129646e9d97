"""Secrets never leave: not in logs, reports, stdout/stderr, exception text, reprs or tracebacks.

Every scenario runs with recognisable secret values (SK, security token, IAM token, and an
agency's keys from the FunctionGraph context) and then searches everything it produced for any
eight consecutive characters of any of them: successes, API failures, rejected credentials,
configuration errors, payload errors and unexpected exceptions, in-process and through `invoke`.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import requests

from modelarts_cleanup.cloud.client import ModelArtsClient
from modelarts_cleanup.cloud.credentials import resolve_credentials
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.cloud.transport import RetryPolicy, Transport
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import (
    ApiError,
    CleanupError,
    ConfigurationError,
    CredentialsError,
    PayloadError,
)
from modelarts_cleanup.settings import load_settings
from modelarts_cleanup.testing import FakeModelArts, Fault
from modelarts_cleanup.vocabulary import ApiGeneration
from tests import support
from tests.support import apig_event, endpoint_environ, invoke_with, no_sleep, smn_event

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
AK = "SECRETSTESTAK"
SK = "sk-Zq8RxW2mT5vN9pL4yK"
SECURITY_TOKEN = "sectok-Hc3Jk7Yb1Fd6Gs0Uv"
IAM_TOKEN = "iamtok-Pw4Ee9Rr2Tt5Yy8Oo"
WRONG_SK = "wrongsk-Lm5Kj8Hg2Df4Sa"
WRONG_TOKEN = "wrongtok-Xc7Vb3Nm6Qe1Rt"
AGENCY_AK = "AGENCYTESTAK"
AGENCY_SK = "agencysk-Mn3Bv6Cx9Zl1Ak"
AGENCY_TOKEN = "agencytok-Qa2Ws5Ed8Rf0Tg"
SECRETS = (SK, SECURITY_TOKEN, IAM_TOKEN, WRONG_SK, WRONG_TOKEN, AGENCY_SK, AGENCY_TOKEN)


def assert_clean(text: str, where: str = "output") -> None:
    """No run of eight characters from any secret appears (catches halves and truncations)."""
    for secret in SECRETS:
        for start in range(len(secret) - 7):
            piece = secret[start : start + 8]
            assert piece not in text, f"{where} holds part of a secret: {piece!r}"


def exception_texts(exc: BaseException) -> str:
    return "\n".join(
        [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(vars(exc))]
    )


# FunctionGraph's context, with an agency's temporary keys.
FunctionGraphContext = functools.partial(
    support.FunctionGraphContext,
    request_id="fg-secrets-1",
    agency_keys=(AGENCY_AK, AGENCY_SK, AGENCY_TOKEN),
)


@pytest.fixture
def captured(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[], str]:
    """Everything written anywhere during the test: std logging at DEBUG, stdout, stderr."""
    caplog.set_level(logging.DEBUG)

    def everything() -> str:
        out, err = capsys.readouterr()
        return "\n".join([caplog.text, out, err])

    return everything


def fake_for_aksk() -> FakeModelArts:
    return FakeModelArts(access_key=AK, secret_key=SK, security_token=SECURITY_TOKEN)


def aksk_env(fake: FakeModelArts, **extra: str) -> dict[str, str]:
    return endpoint_environ(
        fake.url,
        access_key=AK,
        secret_key=SK,
        **{
            "MODELARTS_CLEANUP_LOG_LEVEL": "DEBUG",
            "MODELARTS_CLEANUP_MAX_ATTEMPTS": "2",
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
            **extra,
        },
    )


def event(*instance_ids: str) -> dict[str, Any]:
    return {"targets": [{"project_id": PROJECT, "instance_id": i} for i in instance_ids]}


def run(
    event_: object, env: dict[str, str], context: object = None, **kwargs: Any
) -> tuple[dict[str, Any], str]:
    log = io.StringIO()
    report = run_function(event_, context, environ=env, log_stream=log, sleep=no_sleep, **kwargs)
    return report, log.getvalue()


def refused(
    event_: object, env: dict[str, str], context: object = None
) -> tuple[CleanupError, str]:
    log = io.StringIO()
    with pytest.raises(CleanupError) as raised:
        run_function(event_, context, environ=env, log_stream=log, sleep=no_sleep)
    return raised.value, log.getvalue()


# -- runs that reach the endpoint -----------------------------------------------------------------


def test_successful_run_with_temporary_keys_leaks_nothing(captured: Callable[[], str]) -> None:
    with fake_for_aksk() as fake:
        ids = [fake.add_instance(PROJECT) for _ in range(3)]
        report, log = run(event(*ids), aksk_env(fake))
        assert report["status"] == "succeeded"
        recorded = repr(fake.requests)
    assert log.count("\n") >= 4  # DEBUG: plan, three results, summary
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)
    assert_clean(recorded, "the endpoint's record")


def test_failing_run_leaks_nothing(captured: Callable[[], str]) -> None:
    with fake_for_aksk() as fake:
        ids = [fake.add_instance(PROJECT) for _ in range(5)]
        faults = (
            Fault("status", status=500, times=None),
            Fault("reset", times=None),
            Fault("html", status=502, times=None),
            Fault("status", status=403, error_code="ModelArts.0108", times=None),
            Fault("malformed", status=503, times=None),
        )
        for instance, fault in zip(ids, faults, strict=True):
            fake.add_fault(fault, instance_id=instance)
        report, log = run(event(*ids), aksk_env(fake))
    assert report["status"] == "failed"
    assert {r["outcome"] for r in report["results"]} == {"failed"}
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)


@pytest.mark.parametrize(
    "env_change",
    [
        {"HUAWEICLOUD_SDK_SK": WRONG_SK},
        {"HUAWEICLOUD_SDK_SECURITY_TOKEN": WRONG_TOKEN},
    ],
    ids=["wrong-secret-key", "wrong-security-token"],
)
def test_rejected_keys_leak_nothing(
    captured: Callable[[], str], env_change: dict[str, str]
) -> None:
    with fake_for_aksk() as fake:
        instance = fake.add_instance(PROJECT)
        report, log = run(event(instance), aksk_env(fake, **env_change))
    (result,) = report["results"]
    assert (result["outcome"], result["http_status"]) == ("failed", 401)
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)


@pytest.mark.parametrize(
    ("accepted", "outcome"), [(IAM_TOKEN, "deleted"), ("another-token", "failed")]
)
def test_iam_token_runs_leak_nothing(
    captured: Callable[[], str], accepted: str, outcome: str
) -> None:
    with FakeModelArts(tokens=(accepted,)) as fake:
        instance = fake.add_instance(PROJECT)
        env = {
            "MODELARTS_CLEANUP_ENDPOINT": fake.url,
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
            "MODELARTS_CLEANUP_LOG_LEVEL": "DEBUG",
            "MODELARTS_CLEANUP_AUTH_TOKEN": IAM_TOKEN,
        }
        report, log = run(event(instance), env)
        assert fake.requests[0].headers["X-Auth-Token"] == "***"
    assert report["results"][0]["outcome"] == outcome
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)


@pytest.mark.parametrize(("sk", "outcome"), [(AGENCY_SK, "deleted"), (WRONG_SK, "failed")])
def test_agency_credentials_from_the_context_leak_nothing(
    captured: Callable[[], str], sk: str, outcome: str
) -> None:
    with FakeModelArts(access_key=AGENCY_AK, secret_key=sk, security_token=AGENCY_TOKEN) as fake:
        instance = fake.add_instance(PROJECT)
        env = {
            "MODELARTS_CLEANUP_ENDPOINT": fake.url,
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
            "MODELARTS_CLEANUP_LOG_LEVEL": "DEBUG",
        }
        report, log = run(event(instance), env, FunctionGraphContext())
        assert fake.requests[0].headers["X-Security-Token"] == "***"
    assert report["results"][0]["outcome"] == outcome
    assert '"credentials":"agency"' in log  # the source is named, never the value
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)


def test_unexpected_exception_carrying_a_secret_is_reported_by_type_only(
    captured: Callable[[], str],
) -> None:
    class Leaky(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            # What requests itself does with a header it cannot send: quote the value.
            raise requests.exceptions.InvalidHeader(f"Invalid header value {SECURITY_TOKEN!r}")

    def leaky_session(pool_size: int, auth: requests.auth.AuthBase) -> requests.Session:
        session = Leaky()
        session.auth = auth
        return session

    with fake_for_aksk() as fake:
        instance = fake.add_instance(PROJECT)
        report, log = run(event(instance), aksk_env(fake), session_factory=leaky_session)
    (result,) = report["results"]
    assert result["outcome"] == "failed"
    for text, where in ((log, "log"), (json.dumps(report), "report"), (captured(), "captured")):
        assert_clean(text, where)


# -- errors raised before any request --------------------------------------------------------------

CONFIG_ERRORS: dict[str, dict[str, str]] = {
    "secret_key_without_access_key": {"HUAWEICLOUD_SDK_AK": ""},
    "security_token_without_keys": {"HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""},
    "invalid_number_next_to_secrets": {"MODELARTS_CLEANUP_MAX_ATTEMPTS": SK},
    "plain_http_with_secrets": {"MODELARTS_CLEANUP_ALLOW_HTTP": "false"},
    "secret_in_the_endpoint_url": {"MODELARTS_CLEANUP_ENDPOINT": f"https://{AK}:{SK}@example.com"},
    "secret_in_the_endpoint_query": {
        "MODELARTS_CLEANUP_ENDPOINT": f"https://example.com/?token={IAM_TOKEN}"
    },
    "broken_user_data_holding_secrets": {
        "RUNTIME_USERDATA": json.dumps({"HUAWEICLOUD_SDK_SK": SK})[:-3]
    },
    "security_token_a_header_cannot_carry": {
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN + "\r\nX-Injected: 1"
    },
}


@pytest.mark.parametrize("change", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_configuration_errors_leak_nothing(
    captured: Callable[[], str], change: dict[str, str]
) -> None:
    with fake_for_aksk() as fake:
        instance = fake.add_instance(PROJECT)
        env = {**aksk_env(fake), "MODELARTS_CLEANUP_AUTH_TOKEN": IAM_TOKEN, **change}
        error, log = refused(event(instance), env)
        assert fake.requests == []
    assert isinstance(error, ConfigurationError)
    for text, where in ((log, "log"), (exception_texts(error), "exception"), (captured(), "out")):
        assert_clean(text, where)


@pytest.mark.parametrize(
    "bad_event",
    [
        b"not json " + SK.encode(),
        event(IAM_TOKEN),
        {"targets": [{"project_id": SECURITY_TOKEN, "instance_id": SK}], "dry_run": SK},
        {"trigger_type": "TIMER", "user_event": json.dumps(event(AGENCY_SK))},
    ],
    ids=["not-json", "token-as-instance", "secrets-as-values", "timer"],
)
def test_payload_errors_never_echo_values(captured: Callable[[], str], bad_event: object) -> None:
    with fake_for_aksk() as fake:
        error, log = refused(bad_event, aksk_env(fake), FunctionGraphContext())
        assert fake.requests == []
    assert isinstance(error, PayloadError)
    for text, where in ((log, "log"), (exception_texts(error), "exception"), (captured(), "out")):
        assert_clean(text, where)


# -- the pieces: settings, credentials, auth, client errors ----------------------------------


def test_apig_answers_leak_nothing(captured: Callable[[], str]) -> None:
    with fake_for_aksk() as fake:
        deleted, failing = fake.add_instance(PROJECT), fake.add_instance(PROJECT)
        fake.add_fault(Fault("status", status=401, times=None), instance_id=failing)
        env = aksk_env(fake)
        ran, ran_log = run(apig_event(json.dumps(event(deleted, failing))), env)
        invalid, invalid_log = run(apig_event(json.dumps(event(SK))), env)
        misconfigured, misconfigured_log = run(
            apig_event(json.dumps(event(deleted))), {**env, "HUAWEICLOUD_SDK_AK": ""}
        )
    assert [ran["statusCode"], invalid["statusCode"], misconfigured["statusCode"]] == [
        207,
        400,
        500,
    ]
    for name, text in [
        ("answer", json.dumps([ran, invalid, misconfigured])),
        ("log", ran_log + invalid_log + misconfigured_log),
        ("captured", captured()),
    ]:
        assert_clean(text, name)


@pytest.mark.parametrize("wrap", [apig_event, smn_event], ids=["apig", "smn"])
def test_payload_errors_inside_envelopes_never_echo_values(
    captured: Callable[[], str], wrap: Callable[[str], object]
) -> None:
    bad = json.dumps({"targets": [{"project_id": SECURITY_TOKEN, "instance_id": SK}], "x": SK})
    with fake_for_aksk() as fake:
        log = io.StringIO()
        try:
            answered = json.dumps(
                run_function(wrap(bad), None, environ=aksk_env(fake), log_stream=log)
            )
        except PayloadError as exc:
            answered = exception_texts(exc)
        assert fake.requests == []
    assert "problem" in answered
    for text, where in ((log.getvalue(), "log"), (answered, "answer"), (captured(), "out")):
        assert_clean(text, where)


def test_reprs_of_settings_credentials_and_auth_show_no_secret() -> None:
    env = {
        "MODELARTS_CLEANUP_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
        "MODELARTS_CLEANUP_AUTH_TOKEN": IAM_TOKEN,
    }
    settings = load_settings(env)
    credentials = resolve_credentials(settings, None)
    agency = resolve_credentials(
        load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4"}), FunctionGraphContext()
    )
    auth = credentials.auth()
    session = new_session(4, auth=auth)
    texts = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(credentials),
        repr(agency),
        repr(agency.auth()),
        repr(auth),
        repr(vars(auth)),
        repr(session.auth),
        repr(session.__dict__),
    ]
    assert_clean("\n".join(texts), "reprs")


def test_client_errors_leak_nothing_in_text_repr_or_traceback() -> None:
    errors: list[ApiError] = []
    with fake_for_aksk() as fake:
        answering = fake.add_instance(PROJECT)
        dropping = fake.add_instance(PROJECT)
        fake.add_fault(Fault("reset", times=None), instance_id=dropping)
        for secret_key, token, instance in (
            (WRONG_SK, SECURITY_TOKEN, answering),  # 401: signature rejected
            (SK, WRONG_TOKEN, answering),  # 401: security token rejected
            (SK, SECURITY_TOKEN, dropping),  # connection reset, retries exhausted
        ):
            with new_session(2, auth=SdkHmacSha256Auth(AK, secret_key, token)) as session:
                client = ModelArtsClient(
                    Transport(
                        session=session,
                        endpoint=fake.url,
                        retry=RetryPolicy(max_attempts=2),
                        sleep=no_sleep,
                    ),
                    api=ApiGeneration.NOTEBOOK,
                )
                with pytest.raises(ApiError) as raised:
                    client.delete_instance(PROJECT, instance)
            errors.append(raised.value)
    # A reset after the request went out: its answer lost, its effect unknown.
    assert [e.error_code for e in errors] == ["APIGW.0301", "APIGW.0301", "AnswerLost"]
    for error in errors:
        assert_clean(exception_texts(error), "client error")


def test_credential_errors_from_the_signer_say_what_is_wrong_not_the_value() -> None:
    for args in (
        (AK, ""),
        (AK, SK, SECURITY_TOKEN + "\n"),
        ("bad ak " + SK, SK),
    ):
        with pytest.raises(CredentialsError) as raised:
            SdkHmacSha256Auth(*args)
        assert_clean(exception_texts(raised.value), "signer error")


# An IAM token a header cannot carry (a trailing newline, as a token read from a file often
# has) is a configuration error before any request, like a bad security token.
def test_iam_token_a_header_cannot_carry_is_a_configuration_error(
    captured: Callable[[], str],
) -> None:
    with FakeModelArts(tokens=(IAM_TOKEN,)) as fake:
        instance = fake.add_instance(PROJECT)
        env = {
            "MODELARTS_CLEANUP_ENDPOINT": fake.url,
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
            "MODELARTS_CLEANUP_AUTH_TOKEN": IAM_TOKEN + "\n",
        }
        log = io.StringIO()
        try:
            report: dict[str, Any] | None = run_function(
                event(instance), None, environ=env, log_stream=log, sleep=no_sleep
            )
            error: CleanupError | None = None
        except CleanupError as exc:
            report, error = None, exc
        assert fake.requests == []
    assert_clean(log.getvalue() + json.dumps(report) + captured(), "output")
    assert report is None, report["results"] if report else None
    assert isinstance(error, CredentialsError)
    assert "token" in str(error)


# -- `invoke` as a user runs it --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "change", "status"),
    [
        ("success", {}, 0),
        ("rejected", {"HUAWEICLOUD_SDK_SK": WRONG_SK}, 1),
        ("configuration", {"HUAWEICLOUD_SDK_AK": ""}, 2),
        ("payload", {}, 2),
    ],
)
def test_invoke_output_holds_no_secret(name: str, change: dict[str, str], status: int) -> None:
    with fake_for_aksk() as fake:
        instance = fake.add_instance(PROJECT)
        payload = json.dumps(event(instance if name != "payload" else IAM_TOKEN))
        env = {**aksk_env(fake), "MODELARTS_CLEANUP_AUTH_TOKEN": IAM_TOKEN, **change}
        done = invoke_with(env, "--event", "-", stdin=payload)
    assert done.returncode == status, done.stderr
    assert done.stderr.strip()
    assert_clean(done.stdout, "stdout")
    assert_clean(done.stderr, "stderr")


# Configuration problems found while building the signer or the client (a token a header
# cannot carry, a port out of range) are logged as one JSON error line like any other.
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN + "\n"}, "security token"),
        ({"MODELARTS_CLEANUP_ENDPOINT": "https://127.0.0.1:99999"}, "port"),
    ],
    ids=["security-token-with-newline", "endpoint-port-out-of-range"],
)
def test_configuration_problem_found_late_is_still_stated(
    change: dict[str, str], says: str
) -> None:
    with fake_for_aksk() as fake:
        instance = fake.add_instance(PROJECT)
        environ = {**aksk_env(fake), **change}
        done = invoke_with(environ, "--event", "-", stdin=json.dumps(event(instance)))
        assert fake.requests == []
    assert done.returncode == 2
    assert_clean(done.stdout + done.stderr)
    lines = done.stderr.splitlines()
    assert lines, "exit 2 and not a word on stderr"
    assert says in json.loads(lines[-1])["message"]


@pytest.mark.parametrize("status", [401, 403, 500])
def test_a_secret_echoed_back_by_a_server_is_blanked(status: int) -> None:
    with FakeModelArts(
        access_key=AK, secret_key=SK, security_token=SECURITY_TOKEN, tokens=(IAM_TOKEN,)
    ) as fake:
        instance = fake.add_instance(PROJECT)
        echo = f"rejected: token {SECURITY_TOKEN} with key {SK}"
        fake.add_fault(
            Fault("status", status=status, error_code="APIGW.0301", error_msg=echo, times=None),
            instance_id=instance,
        )
        report, log = run(event(instance), aksk_env(fake))
    (result,) = report["results"]
    assert result["outcome"] == "failed"
    assert result["error_msg"] == "rejected: token *** with key ***"
    assert_clean(json.dumps(report), "report")
    assert_clean(log, "log")
