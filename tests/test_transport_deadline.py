"""What the deadline does to a request: whether it was sent, and whether it may start at all.

A request the deadline cut after it went out may have taken effect (`AnswerLost`, code
`DeadlineExceeded`); one the deadline kept from going out did nothing (`DeadlineExceeded`, no
attempt counted). An answer that came back, however late, is that answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses

from modelarts_cleanup.cloud.admission import Admission
from modelarts_cleanup.cloud.client import DeleteResult, ModelArtsClient
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.cloud.transport import RetryPolicy, Timeouts, Transport
from modelarts_cleanup.exceptions import AnswerLost, ApiError, DeadlineExceeded
from modelarts_cleanup.testing import FakeModelArts, Fault
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import INSTANCE, NOTEBOOK_URL, PROJECT, error_body, mocked_client
from tests.support import AK, SK, FakeTime, local_endpoint


def delete_within(fake_time: FakeTime, seconds: float, **options: Any) -> DeleteResult:
    """Delete the mocked instance with `seconds` left before the deadline."""
    client = mocked_client(fake_time, **options)
    return client.delete_instance(PROJECT, INSTANCE, deadline=fake_time.now + seconds)


def cut_by(
    raised: Exception, mocked: responses.RequestsMock, fake_time: FakeTime
) -> DeadlineExceeded:
    """What a delete with 2 s left raises when its one request ends in `raised`."""
    mocked.delete(NOTEBOOK_URL, body=raised)
    with pytest.raises(DeadlineExceeded) as caught:
        delete_within(fake_time, 2.0)
    return caught.value


# -- sent, or not ----------------------------------------------------------------------------


def test_a_read_timeout_the_deadline_shortened_is_an_answer_lost(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    lost = cut_by(requests.ReadTimeout("read timed out"), mocked, fake_time)
    assert isinstance(lost, AnswerLost)
    assert (lost.error_code, lost.attempts, lost.http_status) == ("DeadlineExceeded", 1, None)
    assert lost.error_msg is not None
    assert "was sent" in lost.error_msg
    assert "effect is unknown" in lost.error_msg
    assert len(mocked.calls) == 1  # never sent again: the deadline is here


def test_a_read_timeout_with_time_to_spare_is_retried_as_before(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    mocked.delete(NOTEBOOK_URL, json={"status": "DELETING"})
    deleted = delete_within(fake_time, 100.0)
    assert (deleted.outcome, deleted.attempts) == ("deleted", 2)


def test_a_read_timeout_without_a_deadline_is_never_called_lost(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    client = mocked_client(fake_time, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ApiError) as caught:
        client.delete_instance(PROJECT, INSTANCE)
    assert not isinstance(caught.value, DeadlineExceeded)
    # Not the deadline's doing; still, the request went out and its effect is unknown.
    assert caught.value.error_code == "AnswerLost"


def test_a_connect_timeout_the_deadline_shortened_sent_nothing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    unsent = cut_by(requests.ConnectTimeout("connect timed out"), mocked, fake_time)
    assert not isinstance(unsent, AnswerLost)
    assert unsent.attempts == 0  # no request went out: nothing to count


def test_an_answer_lost_after_failed_attempts_is_still_lost_and_counts_them_all(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, status=503, body=error_body("ModelArts.6200", "busy"))
    mocked.delete(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(AnswerLost) as caught:
        delete_within(fake_time, 10.0, jitter=lambda: 0.0)
    assert (caught.value.error_code, caught.value.attempts) == ("DeadlineExceeded", 2)
    assert caught.value.http_status is None  # the 503 is not what happened to the last one


def test_a_read_whose_answer_is_lost_says_it_changed_nothing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(NOTEBOOK_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(AnswerLost) as caught:
        mocked_client(fake_time).get_instance(PROJECT, INSTANCE, deadline=fake_time.now + 2.0)
    assert caught.value.error_msg is not None
    assert "a read changes nothing" in caught.value.error_msg


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [(503, error_body("ModelArts.6200", "busy"), "ModelArts.6200"), (403, "", None)],
)
def test_an_answer_that_came_back_after_the_deadline_is_that_answer(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    status: int,
    body: str,
    code: str | None,
) -> None:
    def late(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.advance(2.5)  # past the deadline, but answered
        return status, {}, body

    mocked.add_callback(responses.DELETE, NOTEBOOK_URL, callback=late)
    with pytest.raises(ApiError) as caught:
        delete_within(fake_time, 2.0)
    assert not isinstance(caught.value, DeadlineExceeded)
    assert caught.value.http_status == status
    if code is not None:
        assert caught.value.error_code == code


def test_a_deletion_answered_after_the_deadline_is_deleted(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    def late(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.advance(2.5)
        return 200, {}, '{"status": "DELETING"}'

    mocked.add_callback(responses.DELETE, NOTEBOOK_URL, callback=late)
    deleted = delete_within(fake_time, 2.0)
    assert (deleted.outcome, deleted.status) == ("deleted", "DELETING")


# -- admission: what cannot finish in time is not sent ------------------------------------------


def answering_after(
    fake_time: FakeTime, seconds: float, status: int = 200, body: str = "{}"
) -> Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.advance(seconds)
        return status, {}, body

    return answer


def test_a_request_that_cannot_finish_in_time_is_not_sent(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, json={})
    admission = Admission(first_guess=5.0, clock=fake_time)
    with pytest.raises(DeadlineExceeded) as caught:
        delete_within(fake_time, 3.0, admission=admission)
    assert not isinstance(caught.value, AnswerLost)
    assert caught.value.attempts == 0
    assert "too near" in str(caught.value)
    assert len(mocked.calls) == 0


def test_requests_stop_starting_once_what_they_take_no_longer_fits(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.add_callback(responses.GET, NOTEBOOK_URL, callback=answering_after(fake_time, 2.0))
    admission = Admission(first_guess=1.0, clock=fake_time)
    client = mocked_client(fake_time, admission=admission)
    deadline = fake_time.now + 10.0
    # Each answer takes 2 s: at 0, 2, 4 and 6 s one fits; at 8 s, 2 s left is less than 2.1.
    for _ in range(4):
        client.get_instance(PROJECT, INSTANCE, deadline=deadline)
    with pytest.raises(DeadlineExceeded) as caught:
        client.get_instance(PROJECT, INSTANCE, deadline=deadline)
    assert len(mocked.calls) == 4
    assert caught.value.attempts == 0
    assert admission.needed() == pytest.approx(2.1)
    assert fake_time.now == pytest.approx(8.0 + 1000.0)  # nothing was sent after the last one


def test_a_retry_that_cannot_finish_in_time_is_not_sent_and_the_answer_stands(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = error_body("ModelArts.6200", "busy")
    mocked.add_callback(
        responses.DELETE, NOTEBOOK_URL, callback=answering_after(fake_time, 2.0, 503, body)
    )
    admission = Admission(first_guess=1.0, clock=fake_time)
    with pytest.raises(ApiError) as caught:
        delete_within(fake_time, 4.0, admission=admission)
    assert not isinstance(caught.value, DeadlineExceeded)
    assert (caught.value.http_status, caught.value.error_code) == (503, "ModelArts.6200")
    assert "deadline cut the retries" in str(caught.value)
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []


def test_only_answers_teach_how_long_a_request_takes(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    def timed_out(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fake_time.advance(30.0)
        raise requests.ReadTimeout("read timed out")

    mocked.add_callback(responses.GET, NOTEBOOK_URL, callback=timed_out)
    mocked.add_callback(responses.GET, NOTEBOOK_URL, callback=answering_after(fake_time, 0.5))
    admission = Admission(first_guess=1.0, clock=fake_time)
    client = mocked_client(fake_time, admission=admission, retry=RetryPolicy(max_attempts=2))
    client.get_instance(PROJECT, INSTANCE)
    assert admission.needed() == pytest.approx(0.6)  # the 30 s wait for nothing is not counted


# -- over real sockets: the endpoint carries the request out, the deadline cuts the answer --------


def real_client(url: str) -> ModelArtsClient:
    return ModelArtsClient(
        Transport(
            session=new_session(1, auth=SdkHmacSha256Auth(AK, SK)),
            endpoint=url,
            retry=RetryPolicy(max_attempts=1),
            timeouts=Timeouts(connect=5.0, read=30.0),
        ),
        api=ApiGeneration.NOTEBOOK,
    )


@pytest.mark.parametrize(
    "fault",
    [
        Fault("slow", delay=1.5),  # nothing at all until after the deadline
        Fault("stall", delay=5.0),  # the headers, then nothing
        Fault("slow_body", delay=5.0),  # the headers, then a byte now and then
    ],
    ids=["slow", "stall", "slow_body"],
)
def test_a_delete_the_deadline_cut_is_lost_and_went_through(fault: Fault) -> None:
    with local_endpoint() as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(fault, instance_id=instance)
        client = real_client(fake.url)
        began = time.monotonic()
        with pytest.raises(AnswerLost) as caught:
            client.delete_instance(PROJECT, instance, deadline=began + 0.5)
        returned = time.monotonic() - began
        assert fake.wait_until_idle(timeout=10)
        gone = fake.instance_ids() == set()

    assert (caught.value.error_code, caught.value.attempts) == ("DeadlineExceeded", 1)
    assert gone  # what "effect unknown" is about: the endpoint did delete it
    assert returned < 0.5 + 2.0  # the deadline held the call, with slack for a busy machine


def test_nothing_is_sent_when_the_deadline_has_passed(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    with pytest.raises(DeadlineExceeded) as caught:
        real_client(fake.url).delete_instance(PROJECT, instance, deadline=time.monotonic())
    assert caught.value.attempts == 0
    assert fake.requests == []
