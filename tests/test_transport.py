"""Sending a request: retries and backoff, transport errors, the deadline, bounded bodies."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError

from modelarts_cleanup.cloud.client import DeleteResult, ModelArtsClient
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.transport import RetryPolicy, Timeouts, Transport
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import AnswerLost, ApiError, DeadlineExceeded
from modelarts_cleanup.testing import FakeModelArts, Fault
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
    INSTANCE,
    NOTEBOOK_URL,
    PROJECT,
    SECRET,
    assert_no_secret,
    error_body,
    mocked_client,
)
from tests.support import FakeTime, endpoint_environ, no_sleep

# -- retries -------------------------------------------------------------------------------


def test_retry_sequence_ends_in_deleted_with_backoff_sleeps(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503)
    mocked.delete(NOTEBOOK_URL, status=503)
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"}, headers={"X-Request-Id": "req-3"})
    result = mocked_client(fake_time, jitter=lambda: 0.5).delete_instance(PROJECT, INSTANCE)
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
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
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
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=5)).delete_instance(
            PROJECT, INSTANCE
        )
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


def test_retry_after_longer_than_we_wait_fails_as_retryable(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
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
        mocked_client(fake_time, retry=retry, jitter=jitter).delete_instance(PROJECT, INSTANCE)
    assert fake_time.sleeps == expected


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


# -- transport errors ----------------------------------------------------------------------


def test_connection_reset_is_retried(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    reset = requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    )
    mocked.delete(NOTEBOOK_URL, body=reset)
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"})
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (result.outcome, result.attempts) == ("deleted", 2)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            # Reset after the request went out: the answer, not the connection, was lost.
            requests.ConnectionError(
                ProtocolError("aborted", ConnectionResetError(104, "reset by peer"))
            ),
            "AnswerLost",
        ),
        (requests.ConnectionError(f"{NOTEBOOK_URL}?token={SECRET}"), "ConnectionError"),
        (requests.ReadTimeout(f"read timed out for {NOTEBOOK_URL}?token={SECRET}"), "AnswerLost"),
        (requests.ConnectTimeout(f"{NOTEBOOK_URL}?token={SECRET}"), "ConnectTimeout"),
    ],
)
def test_transport_errors_are_retried_then_exhausted(
    mocked: responses.RequestsMock, fake_time: FakeTime, exc: Exception, code: str
) -> None:
    mocked.delete(NOTEBOOK_URL, body=exc)
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=3)).delete_instance(
            PROJECT, INSTANCE
        )
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
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=1)).delete_instance(
            PROJECT, INSTANCE
        )
    assert "ConnectionResetError" in (caught.value.error_msg or "")
    assert "modelarts.example.invalid" in (caught.value.error_msg or "")


def test_a_host_that_does_not_resolve_is_said_so_with_the_settings_to_check(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    unresolved = NameResolutionError(
        "modelarts.example.invalid", None, socket.gaierror(-2, "Name or service not known")
    )
    mocked.delete(NOTEBOOK_URL, body=requests.ConnectionError(unresolved))
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=1)).delete_instance(
            PROJECT, INSTANCE
        )
    assert caught.value.error_code == "ConnectionError"
    assert caught.value.error_msg == (
        "modelarts.example.invalid does not resolve (no such host): check the endpoint's settings"
    )


def test_tls_failure_is_not_retried(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.delete(NOTEBOOK_URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.retryable) == ("SSLError", False)
    assert len(mocked.calls) == 1


# -- deadline ------------------------------------------------------------------------------


def test_no_attempt_starts_at_or_after_the_deadline(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, json={})
    with pytest.raises(DeadlineExceeded) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now)
    assert caught.value.attempts == 0
    assert caught.value.http_status is None
    assert len(mocked.calls) == 0


def test_deadline_cuts_retries_instead_of_sleeping_past_it(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, body=error_body("ModelArts.6200", "internal"))
    mocked.delete(NOTEBOOK_URL, json={})
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, jitter=lambda: 1.0).delete_instance(
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
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now + 20)
    assert "deadline cut the retries" in str(caught.value)
    assert fake_time.sleeps == []


def test_deadline_passing_during_a_sleep_stops_before_the_next_attempt(
    mocked: responses.RequestsMock,
) -> None:
    fake_time = FakeTime(oversleep=5.0)  # a sleep that overruns, as real ones can
    mocked.delete(NOTEBOOK_URL, status=503, headers={"X-Request-Id": "req-late"})
    with pytest.raises(DeadlineExceeded) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE, deadline=fake_time.now + 2.0)
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
    mocked_client(fake_time).get_instance(PROJECT, INSTANCE, deadline=fake_time.now + left)
    assert mocked.calls[0].request.req_kwargs["timeout"] == expected


def test_read_timeout_shrinks_as_the_deadline_nears_across_retries(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    def slow_503(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.now += 8.0  # the server took 8 s to fail
        return 503, {}, ""

    mocked.add_callback(responses.DELETE, NOTEBOOK_URL, callback=slow_503)
    with pytest.raises(ApiError):
        mocked_client(fake_time, jitter=lambda: 1.0).delete_instance(
            PROJECT, INSTANCE, deadline=fake_time.now + 10.0
        )
    timeouts = [call.request.req_kwargs["timeout"] for call in mocked.calls]
    # 10 s left, then 10 - 8 - 0.5 (sleep) = 1.5 s left
    assert timeouts == [(5.0, 10.0), (1.5, 1.5)]


# -- bodies --------------------------------------------------------------------------------


def test_a_body_over_the_size_cap_is_refused_without_retry(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=200, body=b"{" + b" " * (8 * 1024 * 1024) + b"}")
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
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
        Transport(
            session=new_session(1),
            endpoint=f"http://127.0.0.1:{port}",
            retry=RetryPolicy(max_attempts=1),
            timeouts=Timeouts(connect=5.0, read=5.0),
        ),
        api=ApiGeneration.NOTEBOOK,
    )
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE, deadline=time.monotonic() + 1.0)
    server.join(timeout=30)
    listener.close()
    # The request went out and the deadline cut its answer short: that is what it says.
    assert isinstance(caught.value, AnswerLost)
    assert (caught.value.error_code, caught.value.attempts) == ("DeadlineExceeded", 1)
    assert sent[0] < len(b'{"status": "DELETING"}')  # it hung up before the body was complete


def test_a_body_cut_short_is_an_answer_lost_and_asked_again() -> None:
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
        Transport(
            session=new_session(1),
            endpoint=f"http://127.0.0.1:{port}",
            retry=RetryPolicy(max_attempts=2, base_delay=0.0),
        ),
        api=ApiGeneration.NOTEBOOK,
    )
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE)
    server.join(timeout=30)
    listener.close()
    # The request went out, its answer was cut short: whether it took effect is unknown.
    assert (caught.value.error_code, caught.value.attempts) == ("AnswerLost", 2)
    assert "its effect is unknown" in (caught.value.error_msg or "")
    assert caught.value.retryable is True
    assert len(served) == 2


# -- retries in the run's log --------------------------------------------------------------


def run_with_one_retry(fake: FakeModelArts, **env: str) -> list[dict[str, Any]]:
    """Delete one instance whose first DELETE meets a 503; the run's log, line by line."""
    instance = fake.add_instance(PROJECT)
    fake.add_fault(
        Fault("status", status=503, times=1), instance_id=instance, action="notebook_delete"
    )
    log = io.StringIO()
    report = run_function(
        {"targets": [{"project_id": PROJECT, "instance_id": instance}]},
        None,
        environ=endpoint_environ(fake.url, MODELARTS_CLEANUP_MAX_ATTEMPTS="3", **env),
        log_stream=log,
        sleep=no_sleep,
    )
    assert [(r["outcome"], r["attempts"]) for r in report["results"]] == [("deleted", 2)]
    return [json.loads(line) for line in log.getvalue().splitlines()]


def test_a_retried_request_is_logged_at_debug_with_attempt_delay_and_reason(
    fake: FakeModelArts,
) -> None:
    lines = run_with_one_retry(fake, MODELARTS_CLEANUP_LOG_LEVEL="DEBUG")
    (retry,) = [line for line in lines if "attempt" in line]
    assert retry["level"] == "DEBUG"
    assert retry["message"].startswith("retrying DELETE ")
    assert (retry["attempt"], retry["max_attempts"]) == (1, 3)
    assert isinstance(retry["delay"], (int, float)) and not isinstance(retry["delay"], bool)
    assert retry["delay"] >= 0
    assert (retry["reason"], retry["http_status"]) == ("ModelArts.6102", 503)
    # At the default level (INFO) the same retry leaves no line behind.
    quiet = run_with_one_retry(fake)
    assert not [line for line in quiet if "attempt" in line or line["level"] == "DEBUG"]


def lost_then(*answers: Exception) -> list[Exception]:
    return [requests.ReadTimeout("read timed out"), *answers]


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        # Lost, then no connection at all: the first one may still have gone through.
        (lost_then(requests.ConnectTimeout("no"), requests.ConnectTimeout("no")), "AnswerLost"),
        (
            lost_then(
                requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "no")))
            ),
            "AnswerLost",
        ),
        # Never sent: refused connections lose no answer.
        (
            [requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "no")))]
            * 2,
            "ConnectionError",
        ),
    ],
)
def test_a_request_whose_answer_was_lost_says_its_effect_is_unknown(
    mocked: responses.RequestsMock, fake_time: FakeTime, answers: list[Exception], code: str
) -> None:
    for answer in answers:
        mocked.delete(NOTEBOOK_URL, body=answer)
    client = mocked_client(fake_time, retry=RetryPolicy(max_attempts=len(answers)))
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE)
    err = caught.value
    assert (err.error_code, err.attempts, err.http_status) == (code, len(answers), None)
    assert ("its effect is unknown" in (err.error_msg or "")) is (code == "AnswerLost")
    assert not isinstance(err, DeadlineExceeded)


def test_a_lost_answer_followed_by_an_answered_error_keeps_that_answer(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    mocked.delete(NOTEBOOK_URL, status=400, json={"error_code": "ModelArts.0104"})
    client = mocked_client(fake_time, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE)
    assert (caught.value.error_code, caught.value.http_status) == ("ModelArts.0104", 400)


def test_a_read_whose_answer_was_lost_is_a_plain_timeout(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    # A read changes nothing: there is no effect to be unsure of.
    mocked.get(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    client = mocked_client(fake_time, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ApiError) as caught:
        client.get_instance(PROJECT, INSTANCE)
    assert caught.value.error_code == "ReadTimeout"
