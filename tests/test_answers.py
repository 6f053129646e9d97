"""What an answer means: done, absent, retry or fail; error bodies in all spellings; Retry-After."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import responses

from modelarts_cleanup.cloud.answers import Reply, auth_hint, clip, parse_error, permission_hint
from modelarts_cleanup.cloud.client import DeleteResult
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.vocabulary import NOT_FOUND_CODES
from tests.mocked_modelarts import (
    ENDPOINT,
    INSTANCE,
    NOTEBOOK_URL,
    PROJECT,
    assert_no_secret,
    error_body,
    mocked_client,
)
from tests.support import FakeTime

# -- success -------------------------------------------------------------------------------


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
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.http_status, result.status) == ("deleted", status, None)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("body", ["{not json", "<html><body>ok</body></html>", '["a list"]'])
def test_2xx_with_a_body_modelarts_never_sends_is_asked_again(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body=body)
    mocked.delete(NOTEBOOK_URL, status=404, json={"error_code": "ModelArts.6404", "error_msg": "x"})
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("already_absent", 2)


def test_2xx_with_an_unreadable_body_every_time_is_a_failure(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body="<html>proxy</html>")
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.error_code, err.http_status) == ("MalformedResponse", 200)
    assert err.error_msg == "a success status with a body ModelArts does not send"
    assert "HTTP 200 with a body that is not a JSON object" in str(err)
    assert len(mocked.calls) == 5


# -- not found -----------------------------------------------------------------------------


SPELLINGS: list[Callable[[str, str], dict[str, Any]]] = [
    lambda c, m: {"error_code": c, "error_msg": m},
    lambda c, m: {"error_code": c, "error_message": m},
    lambda c, m: {"errorCode": c, "errorMsg": m},
    lambda c, m: {"code": c, "message": m},
    lambda c, m: {"error": {"code": c, "message": m}},
    lambda c, m: {"error": {"error_code": c, "error_msg": m}},
    # The message at the top, the code one level down.
    lambda c, m: {"error_msg": m, "error": {"error_code": c}},
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
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
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
    assert mocked_client(fake_time).delete_instance(PROJECT, INSTANCE).outcome == "already_absent"


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
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert caught.value.http_status == 404
    assert caught.value.retryable is False
    assert len(mocked.calls) == 1


# -- permanent errors ----------------------------------------------------------------------


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
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.http_status, err.error_code, err.error_msg) == (
        400,
        "ModelArts.6304",
        "Please stop the instance before deleting.",
    )
    assert (err.request_id, err.attempts, err.retryable) == ("req-400", 1, False)
    assert str(err).endswith(": HTTP 400 ModelArts.6304: Please stop the instance before deleting.")
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []


def test_signature_rejection_is_never_retried_and_says_what_to_check(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=401, body=error_body("APIGW.0301", "verify aksk fail"))
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
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
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert "token" in str(caught.value)
    assert len(mocked.calls) == 1
    assert_no_secret(caught.value)


TOKEN_HINT = "the IAM token is missing, expired or invalid: obtain a new project-scoped token"
CREDENTIALS_HINT = "check the credentials (AK/SK, security token or IAM token)"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("ModelArts.6620", TOKEN_HINT),
        ("APIGW.0307", TOKEN_HINT),
        ("ModelArts.0202", TOKEN_HINT),
        ("ModelArts.0209", TOKEN_HINT),
        ("ModelArts.0210", CREDENTIALS_HINT),  # a 403's code, not a token's
        ("IAM.0001", CREDENTIALS_HINT),
        (None, CREDENTIALS_HINT),
    ],
)
def test_a_rejected_authentication_says_what_to_check(code: str | None, hint: str) -> None:
    assert auth_hint(code) == hint


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("ModelArts.0210", "the project in the URL does not match the credentials' project"),
        (None, "check that the user or agency is granted ModelArts permissions in this project"),
    ],
)
def test_a_refused_permission_says_what_to_check(code: str | None, hint: str) -> None:
    assert permission_hint(code) == hint


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
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert "permission denied" in str(caught.value)
    assert hint in str(caught.value)
    assert (caught.value.http_status, caught.value.retryable) == (403, False)
    assert len(mocked.calls) == 1
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        # A 300 or 301 is never a deletion, whatever the success range is widened to.
        (300, "UnexpectedRedirect"),
        (301, "UnexpectedRedirect"),
        # A bare 400 says nothing of the instance being gone: a failure, not an absence.
        *((status, None) for status in (400, 405, 409, 410, 413, 422)),
        (600, None),  # no HTTP status class: not a server error to wait out
    ],
)
def test_other_3xx_and_4xx_fail_at_once(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, code: str | None
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body="")
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.http_status, err.error_code, err.error_msg, err.retryable) == (
        status,
        code,
        None,
        False,
    )
    if code is not None:
        assert str(err).endswith(f": HTTP {status}: unexpected redirect, check the endpoint")
    else:
        assert str(err).endswith(f": HTTP {status}")
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (401, "authentication rejected (HTTP 401): check the credentials (AK/SK, security token"),
        (403, "permission denied (HTTP 403): check that the user or agency is granted"),
    ],
)
def test_a_bare_401_or_403_says_its_status_and_what_to_check(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, says: str
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body="")
    with pytest.raises(ApiError, match=re.escape(says)):
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)


def test_an_error_after_a_retry_counts_both_attempts(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, body="")
    mocked.delete(NOTEBOOK_URL, status=400, body=error_body("ModelArts.0104", "bad"))
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.attempts) == ("ModelArts.0104", 2)


def test_redirects_are_not_followed(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    # Followed, a 302 would turn the DELETE into a GET whose 200 looks like a deletion.
    mocked.delete(NOTEBOOK_URL, status=302, headers={"Location": f"{ENDPOINT}/elsewhere"})
    mocked.get(f"{ENDPOINT}/elsewhere", json={"status": "RUNNING"})
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.http_status, caught.value.error_code) == (302, "UnexpectedRedirect")
    assert len(mocked.calls) == 1


# -- transient errors ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int
) -> None:
    mocked.delete(NOTEBOOK_URL, status=status, body=error_body("ModelArts.6101", "busy"))
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"})
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("deleted", 2)
    assert len(mocked.calls) == 2
    assert len(fake_time.sleeps) == 1


# -- Retry-After ---------------------------------------------------------------------------


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
    result = mocked_client(fake_time, jitter=lambda: 0.0).delete_instance(PROJECT, INSTANCE)
    assert result.attempts == 2
    assert fake_time.sleeps == [7.0]


def waits_before_the_retry(
    mocked: responses.RequestsMock, fake_time: FakeTime, headers: dict[str, str], wall: float
) -> list[float]:
    """What the client waited after a DELETE answered 503 with `headers`, the wall clock at
    `wall`, before its second attempt deleted the instance."""
    mocked.delete(NOTEBOOK_URL, status=503, headers=headers)
    mocked.delete(NOTEBOOK_URL, json={})
    client = mocked_client(fake_time, jitter=lambda: 1.0, wall_clock=lambda: wall)
    result = client.delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("deleted", 2)
    return fake_time.sleeps


WALL = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("headers", "waited"),
    [
        # Measured from the server's own Date, whatever our clock says.
        (
            {
                "Date": "Wed, 21 Oct 2015 07:28:20 GMT",
                "Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT",
            },
            10.0,
        ),
        # No Date: from the wall clock.
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:04 GMT"}, 4.0),
        # Already past: no wait (not the backoff, and never a negative one).
        (
            {
                "Date": "Wed, 21 Oct 2015 07:28:10 GMT",
                "Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            0.0,
        ),
    ],
    ids=["server date", "wall clock", "past"],
)
def test_retry_after_http_date_is_honoured(
    mocked: responses.RequestsMock, fake_time: FakeTime, headers: dict[str, str], waited: float
) -> None:
    assert waits_before_the_retry(mocked, fake_time, headers, WALL) == [waited]


@pytest.mark.usefixtures("clock_eight_hours_ahead")
def test_a_retry_after_date_without_a_zone_is_read_as_gmt_whatever_the_local_zone(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:04 -0000"}
    assert waits_before_the_retry(mocked, fake_time, headers, WALL) == [4.0]


def test_unreadable_retry_after_falls_back_to_backoff(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, headers={"Retry-After": "soon"})
    mocked.delete(NOTEBOOK_URL, json={})
    mocked_client(fake_time, jitter=lambda: 1.0).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == [0.5]


# -- parse_error ---------------------------------------------------------------------------


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
        # Each field from wherever it is first found, "error" looked into first.
        (b'{"details": {"error_code": "X.2"}, "error": {"error_code": "X.1"}}', ("X.1", None)),
        (b'{"a": {"error_code": "X.1"}, "b": {"error_msg": "m"}}', ("X.1", "m")),
        (b'{"a": {"error_msg": "m"}, "b": {"error_code": "X.1"}}', ("X.1", "m")),
        # Three levels down is read, four is not.
        (b'{"a": {"b": {"c": {"error_code": "X.3"}}}}', ("X.3", None)),
        (b'{"a": {"b": {"c": {"d": {"error_code": "X.4"}}}}}', (None, None)),
        # Booleans and blanks are no codes: the next spelling is read.
        (b'{"error_code": true, "errorCode": "X.5"}', ("X.5", None)),
        (b'{"error_code": " ", "errorCode": "X.6"}', ("X.6", None)),
        # Pages: their title, however the markup is spelled; markup alone says nothing.
        (b"Proxy error <html><head><title>Gone</title></head></html>", (None, "Gone")),
        (b"Oops <!DOCTYPE html><title>Down</title>", (None, "Down")),
        (b"<HTML><TITLE>Service\n  Down</TITLE><BODY>more</BODY></HTML>", (None, "Service Down")),
        (b"<html><body></body></html>", (None, None)),
        # Only the first 2000 characters are looked at for markup.
        (b"x" * 1996 + b"<html><title>T</title></html>", (None, "x" * 199 + "\u2026")),
        (b"\xff\xfe garbage", (None, "\ufffd\ufffd garbage")),
    ],
)
def test_parse_error_handles_odd_bodies(
    body: bytes, expected: tuple[str | None, str | None]
) -> None:
    assert parse_error(response_with(body)) == expected


def test_clip_keeps_text_up_to_the_limit_and_cuts_longer_text_to_it() -> None:
    assert clip("x" * 200, 200) == "x" * 200
    assert clip("x" * 201, 200) == "x" * 199 + "\u2026"


def test_parse_error_keeps_text_short() -> None:
    code, msg = parse_error(response_with(b"<html><body>" + b"x " * 5000 + b"</body></html>"))
    assert code is None
    assert msg is not None
    assert len(msg) <= 200
