"""The ModelArts HTTP client: paths, statuses, error spellings, retries, timeouts, deadlines."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from modelarts_cleanup import __version__
from modelarts_cleanup.answers import Reply, parse_error
from modelarts_cleanup.client import ModelArtsClient
from modelarts_cleanup.endpoint import endpoint_for_region
from modelarts_cleanup.exceptions import ApiError, ConfigurationError, DeadlineExceeded
from modelarts_cleanup.instances import DeleteResult
from modelarts_cleanup.session import new_session
from modelarts_cleanup.transport import RetryPolicy, Timeouts
from modelarts_cleanup.vocabulary import NOT_FOUND_CODES, ApiGeneration
from tests.clocks import FakeTime

ENDPOINT = "https://modelarts.example.invalid"
PROJECT = "0123456789abcdef0123456789abcdef"
INSTANCE = "3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b"
DE_INSTANCE = "DE-" + INSTANCE
NOTEBOOK_URL = f"{ENDPOINT}/v1/{PROJECT}/notebooks/{INSTANCE}"
DEVENVIRON_URL = f"{ENDPOINT}/v1/{PROJECT}/demanager/instances/{DE_INSTANCE}"
SECRET = "s3cr3t-token-never-shown"


class TokenAuth(requests.auth.AuthBase):
    """Stands in for the signer: adds a secret header that must never leak into errors."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = SECRET
        return r


def make_client(
    fake_time: FakeTime,
    *,
    api: ApiGeneration = ApiGeneration.NOTEBOOK,
    retry: RetryPolicy | None = None,
    jitter: Callable[[], float] = lambda: 0.5,
    wall_clock: Callable[[], float] = lambda: 0.0,
    endpoint: str = ENDPOINT,
) -> ModelArtsClient:
    return ModelArtsClient(
        session=new_session(4, auth=TokenAuth()),
        endpoint=endpoint,
        api=api,
        retry=retry or RetryPolicy(),
        timeouts=Timeouts(connect=5.0, read=30.0),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        jitter=jitter,
        wall_clock=wall_clock,
    )


def error_body(code: str, msg: str = "some message") -> str:
    return json.dumps({"error_code": code, "error_msg": msg})


def assert_no_secret(err: ApiError) -> None:
    texts = [str(err), err.error_msg or "", err.error_code or "", repr(err)]
    assert all(SECRET not in t for t in texts)


# -- success ------------------------------------------------------------------------------


def test_notebook_delete_is_deleted_and_keeps_the_returned_status(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(
        NOTEBOOK_URL,
        json={"id": INSTANCE, "status": "DELETING", "name": "nb"},
        headers={"X-Request-Id": "req-1"},
    )
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert result == DeleteResult(
        outcome="deleted", http_status=200, request_id="req-1", attempts=1, status="DELETING"
    )
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []


def test_devenviron_delete_uses_the_demanager_path(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(DEVENVIRON_URL, json={"instance_id": DE_INSTANCE})
    result = make_client(fake_time, api=ApiGeneration.DEVENVIRON).delete_instance(
        PROJECT, DE_INSTANCE
    )
    assert result.outcome == "deleted"
    assert result.status is None
    assert mocked.calls[0].request.method == "DELETE"
    assert mocked.calls[0].request.url == DEVENVIRON_URL


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (204, ""),
        (200, ""),
        (202, '{"instance_id": "x"}'),
    ],
)
def test_2xx_with_an_empty_or_json_body_is_deleted(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, body: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body=body)
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.http_status, result.status) == ("deleted", status, None)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("body", ["{not json", "<html><body>ok</body></html>", '["a list"]'])
def test_2xx_with_a_body_modelarts_never_sends_is_asked_again(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body=body)
    mocked.delete(NOTEBOOK_URL, status=404, json={"error_code": "ModelArts.6404", "error_msg": "x"})
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("already_absent", 2)


def test_2xx_with_an_unreadable_body_every_time_is_a_failure(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body="<html>proxy</html>")
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.http_status) == ("MalformedResponse", 200)
    assert len(mocked.calls) == 5


def test_every_request_carries_project_id_and_no_content_type_without_a_body(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, json={})
    make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    request = mocked.calls[0].request
    assert request.headers["X-Project-Id"] == PROJECT
    assert "Content-Type" not in request.headers
    assert request.headers["User-Agent"] == f"modelarts-cleanup/{__version__}"
    assert request.headers["X-Auth-Token"] == SECRET  # the session's auth ran
    assert request.req_kwargs["timeout"] == (5.0, 30.0)
    assert request.req_kwargs["verify"] not in (False, None)  # True or a CA bundle path


def test_endpoint_path_prefix_is_kept_and_trailing_slash_dropped(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(f"http://127.0.0.1:8080/proxy/v1/{PROJECT}/notebooks/{INSTANCE}", json={})
    client = make_client(fake_time, endpoint="http://127.0.0.1:8080/proxy/")
    assert client.delete_instance(PROJECT, INSTANCE).outcome == "deleted"


# -- not found ----------------------------------------------------------------------------

SPELLINGS: list[Callable[[str, str], dict[str, Any]]] = [
    lambda c, m: {"error_code": c, "error_msg": m},
    lambda c, m: {"error_code": c, "error_message": m},
    lambda c, m: {"errorCode": c, "errorMsg": m},
    lambda c, m: {"code": c, "message": m},
    lambda c, m: {"error": {"code": c, "message": m}},
    lambda c, m: {"error": {"error_code": c, "error_msg": m}},
]


@pytest.mark.parametrize("status", [400, 404])
@pytest.mark.parametrize("code", sorted(NOT_FOUND_CODES))
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_not_found_codes_mean_already_absent(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    status: int,
    code: str,
    spelling: Callable[[str, str], dict[str, Any]],
) -> None:
    mocked.delete(
        NOTEBOOK_URL,
        status=status,
        json=spelling(code, "instance not found"),
        headers={"X-Request-Id": "req-gone"},
    )
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert result == DeleteResult(
        outcome="already_absent",
        http_status=status,
        request_id="req-gone",
        attempts=1,
        status=None,
    )
    assert len(mocked.calls) == 1


def test_bare_empty_404_means_already_absent(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=404, body="")
    assert make_client(fake_time).delete_instance(PROJECT, INSTANCE).outcome == "already_absent"


@pytest.mark.parametrize(
    "body",
    [
        error_body("APIGW.0101", "The API does not exist or has not been published"),
        json.dumps({"error": {"code": "APIGW.0101", "message": "API not found"}}),
        error_body("IAM.0001", "something else entirely"),
        "<html><head><title>404 Not Found</title></head><body>nginx</body></html>",
        "Not Found",
        # Says something, but not that the instance is gone: a proxy's "no route", another code.
        "{}",
        '{"message": "no Route matched with those values"}',
        '{"error_msg": "no such notebook"}',
        error_body("ModelArts.6999", "gone"),
    ],
)
def test_404_that_does_not_say_not_found_fails_closed(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=404, body=body)
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert caught.value.http_status == 404
    assert caught.value.retryable is False
    assert len(mocked.calls) == 1


def test_get_instance_returns_the_instance(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(NOTEBOOK_URL, json={"id": INSTANCE, "status": "STOPPED"})
    assert make_client(fake_time).get_instance(PROJECT, INSTANCE) == {
        "id": INSTANCE,
        "status": "STOPPED",
    }
    assert mocked.calls[0].request.headers["X-Project-Id"] == PROJECT


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, error_body("ModelArts.6309")), (404, error_body("ModelArts.6404")), (404, "")],
)
def test_get_instance_returns_none_when_absent(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, body: str
) -> None:
    mocked.get(DEVENVIRON_URL, status=status, body=body)
    client = make_client(fake_time, api=ApiGeneration.DEVENVIRON)
    assert client.get_instance(PROJECT, DE_INSTANCE) is None


def test_get_instance_with_an_unusable_body_raises_malformed_response(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(NOTEBOOK_URL, body="{truncated", headers={"X-Request-Id": "req-m"})
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).get_instance(PROJECT, INSTANCE)
    assert caught.value.error_code == "MalformedResponse"
    assert caught.value.request_id == "req-m"


# -- stop ---------------------------------------------------------------------------------


def test_notebook_stop_posts_to_stop_without_a_body(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", json={"status": "STOPPING"})
    make_client(fake_time).stop_instance(PROJECT, INSTANCE)
    request = mocked.calls[0].request
    assert not request.body
    assert "Content-Type" not in request.headers
    assert request.headers["X-Project-Id"] == PROJECT


def test_devenviron_stop_posts_the_stop_action(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{DEVENVIRON_URL}/action", json={})
    make_client(fake_time, api=ApiGeneration.DEVENVIRON).stop_instance(PROJECT, DE_INSTANCE)
    request = mocked.calls[0].request
    assert json.loads(request.body) == {"action": "stop"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Project-Id"] == PROJECT


def test_stopping_an_absent_instance_is_not_an_error(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", status=400, body=error_body("ModelArts.6404"))
    assert make_client(fake_time).stop_instance(PROJECT, INSTANCE) is None
    assert len(mocked.calls) == 1


def test_stop_refused_by_the_api_raises(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", status=400, body=error_body("ModelArts.6357", "busy"))
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).stop_instance(PROJECT, INSTANCE)
    assert caught.value.error_code == "ModelArts.6357"


# -- permanent errors ---------------------------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_other_400_fails_at_once_with_the_parsed_error(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    spelling: Callable[[str, str], dict[str, Any]],
) -> None:
    body = spelling("ModelArts.6304", "Please stop the instance before deleting.")
    mocked.delete(NOTEBOOK_URL, status=400, json=body, headers={"X-Request-Id": "req-400"})
    mocked.delete(NOTEBOOK_URL, json={})  # must never be reached
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.http_status, err.error_code, err.error_msg) == (
        400,
        "ModelArts.6304",
        "Please stop the instance before deleting.",
    )
    assert (err.request_id, err.attempts, err.retryable) == ("req-400", 1, False)
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []


def test_signature_rejection_is_never_retried_and_says_what_to_check(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=401, body=error_body("APIGW.0301", "verify aksk fail"))
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert "authentication rejected (APIGW.0301): check the AK/SK" in str(err)
    assert (err.http_status, err.error_code, err.retryable) == (401, "APIGW.0301", False)
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []
    assert_no_secret(err)


@pytest.mark.parametrize("code", ["ModelArts.0202", "ModelArts.6620", "APIGW.0307"])
def test_token_rejection_points_at_the_token(
    mocked: responses.RequestsMock, fake_time: FakeTime, code: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=401, body=error_body(code, "token expired"))
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert "token" in str(caught.value)
    assert len(mocked.calls) == 1
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    ("code", "hint"),
    [("ModelArts.0210", "does not match"), ("ModelArts.0108", "permissions"), (None, "permis")],
)
def test_forbidden_is_never_retried_and_explains(
    mocked: responses.RequestsMock, fake_time: FakeTime, code: str | None, hint: str
) -> None:
    body = error_body(code, "denied") if code else ""
    mocked.delete(NOTEBOOK_URL, status=403, body=body)
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert "permission denied" in str(caught.value)
    assert hint in str(caught.value)
    assert (caught.value.http_status, caught.value.retryable) == (403, False)
    assert len(mocked.calls) == 1
    assert_no_secret(caught.value)


@pytest.mark.parametrize("status", [405, 409, 410, 413, 422])
def test_other_4xx_are_not_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body="")
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.http_status, caught.value.retryable) == (status, False)
    assert len(mocked.calls) == 1


def test_redirects_are_not_followed(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    # Followed, a 302 would turn the DELETE into a GET whose 200 looks like a deletion.
    mocked.delete(NOTEBOOK_URL, status=302, headers={"Location": f"{ENDPOINT}/elsewhere"})
    mocked.get(f"{ENDPOINT}/elsewhere", json={"status": "RUNNING"})
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.http_status, caught.value.error_code) == (302, "UnexpectedRedirect")
    assert len(mocked.calls) == 1


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body=error_body("ModelArts.6101", "busy"))
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"})
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("deleted", 2)
    assert len(mocked.calls) == 2
    assert len(fake_time.sleeps) == 1


def test_retry_sequence_ends_in_deleted_with_backoff_sleeps(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503)
    mocked.delete(NOTEBOOK_URL, status=503)
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"}, headers={"X-Request-Id": "req-3"})
    result = make_client(fake_time, jitter=lambda: 0.5).delete_instance(PROJECT, INSTANCE)
    assert result == DeleteResult(
        outcome="deleted", http_status=200, request_id="req-3", attempts=3, status="DELETING"
    )
    # full jitter: 0.5 * min(20, 0.5 * 2**0), 0.5 * min(20, 0.5 * 2**1)
    assert fake_time.sleeps == [0.25, 0.5]


def test_retry_can_find_the_instance_already_gone(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    # The first DELETE may have worked although its answer was lost.
    mocked.delete(NOTEBOOK_URL, status=502)
    mocked.delete(NOTEBOOK_URL, status=400, body=error_body("ModelArts.6309"))
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("already_absent", 2)


def test_exhausted_retries_report_the_last_error_and_every_attempt(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    for n in range(1, 6):
        mocked.delete(
            NOTEBOOK_URL,
            status=500 if n < 5 else 503,
            body=error_body(f"ModelArts.610{n}", f"failure {n}"),
            headers={"X-Request-Id": f"req-{n}"},
        )
    with pytest.raises(ApiError) as caught:
        make_client(fake_time, retry=RetryPolicy(max_attempts=5)).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert type(err) is ApiError
    assert (err.http_status, err.error_code, err.error_msg, err.request_id) == (
        503,
        "ModelArts.6105",
        "failure 5",
        "req-5",
    )
    assert (err.attempts, err.retryable) == (5, True)
    assert "gave up after 5 attempts" in str(err)
    assert len(mocked.calls) == 5
    assert len(fake_time.sleeps) == 4


def test_retry_after_seconds_is_honoured(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(
        NOTEBOOK_URL,
        status=429,
        body=error_body("APIGW.0308", "throttled"),
        headers={"Retry-After": "7"},
    )
    mocked.delete(NOTEBOOK_URL, json={})
    result = make_client(fake_time, jitter=lambda: 0.0).delete_instance(PROJECT, INSTANCE)
    assert result.attempts == 2
    assert fake_time.sleeps == [7.0]


def test_retry_after_http_date_is_measured_from_the_server_date(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(
        NOTEBOOK_URL,
        status=503,
        headers={
            "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            "Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT",
        },
    )
    mocked.delete(NOTEBOOK_URL, json={})
    make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == [10.0]


def test_retry_after_http_date_without_server_date_uses_the_wall_clock(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    wall = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc).timestamp()
    mocked.delete(
        NOTEBOOK_URL, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:04 GMT"}
    )
    mocked.delete(NOTEBOOK_URL, json={})
    make_client(fake_time, wall_clock=lambda: wall).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == [4.0]


def test_unreadable_retry_after_falls_back_to_backoff(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, headers={"Retry-After": "soon"})
    mocked.delete(NOTEBOOK_URL, json={})
    make_client(fake_time, jitter=lambda: 1.0).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == [0.5]


def test_retry_after_longer_than_we_wait_fails_as_retryable(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.http_status, caught.value.retryable) == (429, True)
    assert caught.value.attempts == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [
        (lambda: 1.0, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]),
        (lambda: 0.0, [0.0] * 7),
        (lambda: 0.25, [0.125, 0.25, 0.5, 0.75, 0.75, 0.75, 0.75]),
    ],
)
def test_backoff_is_full_jitter_capped_by_max_delay(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    jitter: Callable[[], float],
    expected: list[float],
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503)
    retry = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=3.0)
    with pytest.raises(ApiError):
        make_client(fake_time, retry=retry, jitter=jitter).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == expected


def test_connection_reset_is_retried(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    reset = requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    )
    mocked.delete(NOTEBOOK_URL, body=reset)
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"})
    result = make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("deleted", 2)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            requests.ConnectionError(
                ProtocolError("aborted", ConnectionResetError(104, "reset by peer"))
            ),
            "ConnectionError",
        ),
        (requests.ConnectionError(f"{NOTEBOOK_URL}?token={SECRET}"), "ConnectionError"),
        (requests.ReadTimeout(f"read timed out for {NOTEBOOK_URL}?token={SECRET}"), "ReadTimeout"),
        (requests.ConnectTimeout(f"{NOTEBOOK_URL}?token={SECRET}"), "ConnectTimeout"),
    ],
)
def test_transport_errors_are_retried_then_exhausted(
    mocked: responses.RequestsMock, fake_time: FakeTime, exc: Exception, code: str
) -> None:
    mocked.delete(NOTEBOOK_URL, body=exc)
    with pytest.raises(ApiError) as caught:
        make_client(fake_time, retry=RetryPolicy(max_attempts=3)).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.http_status, err.error_code, err.attempts, err.retryable) == (None, code, 3, True)
    assert len(mocked.calls) == 3
    assert len(fake_time.sleeps) == 2
    assert err.error_msg
    assert "?" not in err.error_msg
    assert "?" not in str(err)
    assert_no_secret(err)


def test_connection_error_names_its_root_cause(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    reset = requests.ConnectionError(ProtocolError("aborted", ConnectionResetError(104, "x")))
    mocked.delete(NOTEBOOK_URL, body=reset)
    with pytest.raises(ApiError) as caught:
        make_client(fake_time, retry=RetryPolicy(max_attempts=1)).delete_instance(PROJECT, INSTANCE)
    assert "ConnectionResetError" in (caught.value.error_msg or "")
    assert "modelarts.example.invalid" in (caught.value.error_msg or "")


def test_tls_failure_is_not_retried(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.delete(NOTEBOOK_URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.retryable) == ("SSLError", False)
    assert len(mocked.calls) == 1


# -- deadline -----------------------------------------------------------------------------


def test_no_attempt_starts_at_or_after_the_deadline(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, json={})
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now)
    assert caught.value.attempts == 0
    assert caught.value.http_status is None
    assert len(mocked.calls) == 0


def test_deadline_cuts_retries_instead_of_sleeping_past_it(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, body=error_body("ModelArts.6200", "internal"))
    mocked.delete(NOTEBOOK_URL, json={})
    with pytest.raises(ApiError) as caught:
        make_client(fake_time, jitter=lambda: 1.0).delete_instance(
            PROJECT, INSTANCE, deadline=fake_time.now + 0.4
        )
    err = caught.value
    assert type(err) is ApiError
    assert (err.http_status, err.error_code, err.attempts, err.retryable) == (
        503,
        "ModelArts.6200",
        1,
        True,
    )
    assert "deadline cut the retries" in str(err)
    assert fake_time.sleeps == []
    assert len(mocked.calls) == 1


def test_retry_after_beyond_the_deadline_is_not_waited_for(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=429, headers={"Retry-After": "30"})
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now + 20)
    assert "deadline cut the retries" in str(caught.value)
    assert fake_time.sleeps == []


def test_deadline_passing_during_a_sleep_stops_before_the_next_attempt(
    mocked: responses.RequestsMock,
) -> None:
    fake_time = FakeTime(oversleep=5.0)  # a sleep that overruns, as real ones can
    mocked.delete(NOTEBOOK_URL, status=503, headers={"X-Request-Id": "req-late"})
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now + 2.0)
    err = caught.value
    assert (err.attempts, err.http_status, err.request_id, err.retryable) == (
        1,
        503,
        "req-late",
        True,
    )
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("left", "expected"), [(100.0, (5.0, 30.0)), (7.5, (5.0, 7.5)), (2.0, (2.0, 2.0))]
)
def test_timeouts_never_reach_past_the_deadline(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    left: float,
    expected: tuple[float, float],
) -> None:
    mocked.get(NOTEBOOK_URL, json={"status": "RUNNING"})
    make_client(fake_time).get_instance(PROJECT, INSTANCE, deadline=fake_time.now + left)
    assert mocked.calls[0].request.req_kwargs["timeout"] == expected


def test_read_timeout_shrinks_as_the_deadline_nears_across_retries(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    def slow_503(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.now += 8.0  # the server took 8 s to fail
        return 503, {}, ""

    mocked.add_callback(responses.DELETE, NOTEBOOK_URL, callback=slow_503)
    with pytest.raises(ApiError):
        make_client(fake_time, jitter=lambda: 1.0).delete_instance(
            PROJECT, INSTANCE, deadline=fake_time.now + 10.0
        )
    timeouts = [call.request.req_kwargs["timeout"] for call in mocked.calls]
    # 10 s left, then 10 - 8 - 0.5 (sleep) = 1.5 s left
    assert timeouts == [(5.0, 10.0), (1.5, 1.5)]


# -- ID validation ------------------------------------------------------------------------

BAD_PROJECT_IDS = [
    "",
    "0123456789ABCDEF0123456789ABCDEF",
    PROJECT[:-1],
    PROJECT + "0",
    PROJECT + "\n",
    "../../../../../../../../v2/admin",
    PROJECT[:-1] + "/",
    PROJECT[:-1] + "%",
    "٠" * 32,  # Arabic-Indic digits are digits to \d, never to us
]
BAD_INSTANCE_IDS = [
    "",
    "..",
    INSTANCE + "/stop",
    INSTANCE + "?x=1",
    INSTANCE + "#",
    " " + INSTANCE,
    INSTANCE + "\n",
    "de-" + INSTANCE,
    INSTANCE.replace("-", ""),
    "%2e%2e",
    INSTANCE[:-1] + ".",
    # The payload accepts lower case only; the client says the same, from the same pattern.
    INSTANCE.upper(),
]


@pytest.mark.parametrize("operation", ["delete_instance", "get_instance", "stop_instance"])
@pytest.mark.parametrize(
    ("project_id", "instance_id"),
    [(p, INSTANCE) for p in BAD_PROJECT_IDS] + [(PROJECT, i) for i in BAD_INSTANCE_IDS],
)
def test_invalid_ids_are_refused_before_any_request(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    operation: str,
    project_id: str,
    instance_id: str,
) -> None:
    client = make_client(fake_time)
    with pytest.raises(ValueError, match="must be"):
        getattr(client, operation)(project_id, instance_id)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("instance_id", [INSTANCE, DE_INSTANCE])
def test_uuid_and_de_prefixed_ids_are_accepted(
    mocked: responses.RequestsMock, fake_time: FakeTime, instance_id: str
) -> None:
    mocked.delete(f"{ENDPOINT}/v1/{PROJECT}/notebooks/{instance_id}", json={})
    assert make_client(fake_time).delete_instance(PROJECT, instance_id).outcome == "deleted"


# -- parse_error --------------------------------------------------------------------------


def response_with(body: bytes, status: int = 400) -> Reply:
    return Reply.of(status, {}, body)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_parse_error_reads_every_spelling(spelling: Callable[[str, str], dict[str, Any]]) -> None:
    body = json.dumps(spelling("ModelArts.6309", "not found")).encode()
    assert parse_error(response_with(body)) == ("ModelArts.6309", "not found")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", (None, None)),
        (b"   \n", (None, None)),
        (b"Bad Gateway", (None, "Bad Gateway")),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>",
            (None, "502 Bad Gateway"),
        ),
        (b"<h1>Service   Unavailable</h1>", (None, "Service Unavailable")),
        (b'["not", "an", "object"]', (None, '["not", "an", "object"]')),
        (b'{"unrelated": true}', (None, None)),
        (b'{"code": 401, "message": "numeric code"}', ("401", "numeric code")),
        (b'{"error_code": "APIGW.0308"}', ("APIGW.0308", None)),
        (b'{"error": "invalid_request"}', (None, "invalid_request")),
        (b'{"error_code": "X.1", "details": {"error_msg": "deep"}}', ("X.1", "deep")),
        (b"\xff\xfe garbage", (None, "\ufffd\ufffd garbage")),
    ],
)
def test_parse_error_handles_odd_bodies(
    body: bytes, expected: tuple[str | None, str | None]
) -> None:
    assert parse_error(response_with(body)) == expected


def test_parse_error_keeps_text_short() -> None:
    code, msg = parse_error(response_with(b"<html><body>" + b"x " * 5000 + b"</body></html>"))
    assert code is None
    assert msg is not None
    assert len(msg) <= 200


# -- configuration ------------------------------------------------------------------------


def test_endpoint_for_region_builds_the_public_endpoint() -> None:
    assert endpoint_for_region("cn-north-4") == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert endpoint_for_region("ap-southeast-3") == (
        "https://modelarts.ap-southeast-3.myhuaweicloud.com"
    )


@pytest.mark.parametrize(
    "region",
    [
        "",
        "CN-North-4",
        "cn_north_4",
        "cn-north-4.evil.example",
        "cn-north-4/",
        "-cn",
        "cn--4",
        "a b",
    ],
)
def test_endpoint_for_region_refuses_malformed_regions(region: str) -> None:
    with pytest.raises(ConfigurationError):
        endpoint_for_region(region)


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://modelarts.example.invalid",
        "modelarts.example.invalid",
        "https://",
        "https://modelarts.example.invalid/?x=1",
        "https://modelarts.example.invalid:99999",
    ],
)
def test_client_refuses_malformed_endpoints(endpoint: str, fake_time: FakeTime) -> None:
    with pytest.raises(ConfigurationError):
        make_client(fake_time, endpoint=endpoint)


def test_endpoint_with_credentials_is_refused_without_echoing_them(fake_time: FakeTime) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_client(fake_time, endpoint=f"https://ak:{SECRET}@modelarts.example.invalid")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("pool_size", "expected"), [(1, 10), (10, 10), (16, 16), (64, 64)])
def test_new_session_pool_fits_the_concurrency(pool_size: int, expected: int) -> None:
    session = new_session(pool_size)
    for scheme in ("https://", "http://"):
        adapter = session.get_adapter(f"{scheme}modelarts.example.invalid")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == expected
        assert adapter.max_retries.total == 0
    assert session.verify is True
    assert session.headers["User-Agent"] == f"modelarts-cleanup/{__version__}"
    assert session.auth is None


def test_new_session_installs_the_auth() -> None:
    auth = TokenAuth()
    assert new_session(8, auth=auth).auth is auth


def test_new_session_refuses_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        new_session(0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(base_delay=-1),
        lambda: Timeouts(connect=0),
        lambda: Timeouts(read=-1),
    ],
)
def test_nonsensical_policies_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must"):
        make()


def test_api_generation_accepts_its_setting_spelling(fake_time: FakeTime) -> None:
    assert ApiGeneration("devenviron") is ApiGeneration.DEVENVIRON
    assert make_client(fake_time, api=ApiGeneration("notebook")).api is ApiGeneration.NOTEBOOK


def test_proxy_and_ca_bundle_from_the_environment_are_read_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used: nothing is sent")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = new_session(2)
    ModelArtsClient(session=session, endpoint=ENDPOINT, api=ApiGeneration.NOTEBOOK)
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example.invalid:3128"
    assert session.verify == str(bundle)


def test_without_environment_settings_verification_stays_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    session = new_session(2)
    ModelArtsClient(session=session, endpoint=ENDPOINT, api=ApiGeneration.NOTEBOOK)
    assert session.verify is True
    assert session.trust_env is False


def test_a_body_over_the_size_cap_is_refused_without_retry(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body=b"{" + b" " * (8 * 1024 * 1024) + b"}")
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.http_status) == ("MalformedResponse", 200)
    assert len(mocked.calls) == 1


def test_a_body_dripping_in_cannot_hold_a_call_past_the_deadline() -> None:
    """A server that sends one byte at a time, each well inside the read timeout."""
    sent: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            body = b'{"status": "DELETING"}'
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            count = 0
            for byte in body:
                time.sleep(0.3)
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    break
                count += 1
            sent.append(count)

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    client = ModelArtsClient(
        session=new_session(1),
        endpoint=f"http://127.0.0.1:{port}",
        api=ApiGeneration.NOTEBOOK,
        retry=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(connect=5.0, read=5.0),
    )
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE, deadline=time.monotonic() + 1.0)
    server.join(timeout=30)
    listener.close()
    assert caught.value.error_code == "ReadTimeout"
    assert sent[0] < len(b'{"status": "DELETING"}')  # it hung up before the body was complete


def test_a_body_cut_short_is_a_connection_error_and_asked_again() -> None:
    """Headers promise 40 bytes, 5 arrive, then the connection closes: never a success."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list[int] = []

    def cut_short() -> None:
        for _ in range(2):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 40\r\n\r\n{"sta'
                )
                served.append(1)

    server = threading.Thread(target=cut_short, daemon=True)
    server.start()
    client = ModelArtsClient(
        session=new_session(1),
        endpoint=f"http://127.0.0.1:{port}",
        api=ApiGeneration.NOTEBOOK,
        retry=RetryPolicy(max_attempts=2, base_delay=0.0),
    )
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE)
    server.join(timeout=30)
    listener.close()
    assert (caught.value.error_code, caught.value.attempts) == ("ConnectionError", 2)
    assert caught.value.retryable is True
    assert len(served) == 2
