"""Every way a delete can go wrong, end to end over real sockets: the outcome told is the truth.

Each case runs the whole function (`run_function`) against the local endpoint with one instance
and one kind of fault, and checks three things that must agree: the result (outcome, attempts,
status, error code), the endpoint's request log (how many requests, which methods, what they were
answered) and whether the endpoint still holds the instance. Retries sleep through an injected
recorder, so no test waits for a back-off.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.testing import FakeModelArts, Fault
from tests.support import AK, SK, endpoint_environ

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
MISSING = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
MAX_ATTEMPTS = 3
# What the fake's `status` faults put in the body when the fault names no code.
DEFAULT_CODES = {408: "ModelArts.6100", 429: "ModelArts.6101"}
TRANSIENT_STATUSES = (500, 502, 503, 504, 408, 429)

D, G, P = "DELETE", "GET", "POST"


class Sleeps:
    """Records the pauses asked for instead of taking them."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)


def environ(url: str, **extra: str) -> dict[str, str]:
    # The DELETE path under faults: named targets straight to DELETE (the read: test_guards.py).
    settings = {"MODELARTS_CLEANUP_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    return endpoint_environ(url, **{**settings, "MODELARTS_CLEANUP_PROTECT_TAGS": "[]", **extra})


def run(
    url: str,
    *instance_ids: str,
    sleep: Callable[[float], None] | None = None,
    env: Mapping[str, str] | None = None,
    **more_env: str,
) -> dict[str, Any]:
    event = {"targets": [{"project_id": PROJECT, "instance_id": i} for i in instance_ids]}
    log = io.StringIO()
    report: dict[str, Any] = run_function(
        event,
        None,
        environ=environ(url, **(env or {}), **more_env),
        log_stream=log,
        sleep=sleep or Sleeps(),
    )
    # Whatever happened, the log has one line per target and a summary, all JSON.
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert sorted(line["instance_id"] for line in lines if "instance_id" in line) == sorted(
        instance_ids
    )
    assert lines[-1]["message"] == "run finished"
    return report


def only_result(report: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any]
    (result,) = report["results"]
    assert sum(report["counts"].values()) == 1
    assert report["counts"][result["outcome"]] == 1
    expected_status = "failed" if result["outcome"] == "failed" else "succeeded"
    assert report["status"] == expected_status
    return result


def log_of(fake: FakeModelArts) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in fake.requests]


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait (boundedly) for the endpoint's own threads to catch up; fails if they never do."""
    done = threading.Event()
    for _ in range(500):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("the endpoint never got there")


# -- transient statuses: once, retried to success; forever, failed after MAX_ATTEMPTS ----------


@pytest.mark.parametrize("retry_after", [None, "1"], ids=["backoff", "retry-after"])
@pytest.mark.parametrize("status", TRANSIENT_STATUSES)
def test_transient_status_once_is_retried_and_deleted(status: int, retry_after: str | None) -> None:
    sleeps = Sleeps()
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(
            Fault("status", status=status, retry_after=retry_after), instance_id=instance
        )

        result = only_result(run(fake.url, instance, sleep=sleeps))

        assert (result["outcome"], result["attempts"], result["http_status"]) == ("deleted", 2, 200)
        assert log_of(fake) == [(D, status), (D, 200)]
        assert fake.instance_ids() == set()
    if retry_after is None:
        (pause,) = sleeps.calls
        assert 0.0 <= pause <= 0.5  # full jitter under the first back-off step
    else:
        assert sleeps.calls == [1.0]  # the server's wish, exactly


@pytest.mark.parametrize("retry_after", [None, "1"], ids=["backoff", "retry-after"])
@pytest.mark.parametrize("status", TRANSIENT_STATUSES)
def test_transient_status_forever_fails_after_max_attempts(
    status: int, retry_after: str | None
) -> None:
    sleeps = Sleeps()
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT)
        fault = Fault("status", status=status, retry_after=retry_after, times=None)
        fake.add_fault(fault, instance_id=instance)

        result = only_result(run(fake.url, instance, sleep=sleeps))

        assert (result["outcome"], result["attempts"]) == ("failed", MAX_ATTEMPTS)
        assert result["http_status"] == status
        assert result["error_code"] == DEFAULT_CODES.get(status, "ModelArts.6102")
        assert result["error_msg"]
        assert result["request_id"]  # the last answer's X-Request-Id, for the support ticket
        assert log_of(fake) == [(D, status)] * MAX_ATTEMPTS
        assert fake.instance_ids() == {(PROJECT, instance)}
    assert len(sleeps.calls) == MAX_ATTEMPTS - 1  # no pause after the last attempt
    if retry_after is None:
        assert all(0.0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps.calls))
    else:
        assert sleeps.calls == [1.0] * (MAX_ATTEMPTS - 1)


# -- the battery: one table, each row a fault and the truth it must produce ---------------------


@dataclass(frozen=True)
class Case:
    faults: tuple[Fault, ...]
    outcome: str
    attempts: int
    requests: tuple[tuple[str, int | None], ...]
    http_status: int | None = None
    error_code: str | None = None
    remains: bool = False
    present: bool = True
    status: str = "STOPPED"
    fake_options: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    error_msg_contains: str | None = None


BATTERY: dict[str, Case] = {
    # Connections that break.
    "reset_once": Case((Fault("reset"),), "deleted", 2, ((D, None), (D, 200)), http_status=200),
    # Reset after the request went out: each answer lost, so whether one took effect is unknown.
    "reset_always": Case(
        (Fault("reset", times=None),),
        "failed",
        MAX_ATTEMPTS,
        ((D, None),) * MAX_ATTEMPTS,
        error_code="AnswerLost",
        error_msg_contains="its effect is unknown",
        remains=True,
    ),
    # The delete happened, the answer was lost: the retry finds it gone, which is the truth.
    "reset_after_the_delete_was_done": Case(
        (Fault("reset", carried_out=True),),
        "already_absent",
        2,
        ((D, None), (D, 404)),
        http_status=404,
    ),
    # Bodies that are not what ModelArts sends, on error statuses: the status decides.
    "malformed_500_once": Case(
        (Fault("malformed", status=500),), "deleted", 2, ((D, 500), (D, 200)), http_status=200
    ),
    "malformed_500_always": Case(
        (Fault("malformed", status=500, times=None),),
        "failed",
        MAX_ATTEMPTS,
        ((D, 500),) * MAX_ATTEMPTS,
        http_status=500,
        remains=True,
    ),
    "empty_503_once": Case(
        (Fault("empty", status=503),), "deleted", 2, ((D, 503), (D, 200)), http_status=200
    ),
    "empty_503_always": Case(
        (Fault("empty", status=503, times=None),),
        "failed",
        MAX_ATTEMPTS,
        ((D, 503),) * MAX_ATTEMPTS,
        http_status=503,
        remains=True,
    ),
    "html_502_once": Case(
        (Fault("html", status=502),), "deleted", 2, ((D, 502), (D, 200)), http_status=200
    ),
    "html_502_always": Case(
        (Fault("html", status=502, times=None),),
        "failed",
        MAX_ATTEMPTS,
        ((D, 502),) * MAX_ATTEMPTS,
        http_status=502,
        remains=True,
        error_msg_contains="502 Bad Gateway",
    ),
    # A proxy's HTML 404 says nothing about the instance: failed, not already_absent.
    "html_404_from_a_proxy": Case(
        (Fault("html", status=404, times=None),),
        "failed",
        1,
        ((D, 404),),
        http_status=404,
        remains=True,
        error_msg_contains="404 Not Found",
    ),
    # Empty 2xx answers are documented success answers (the notebook API lists 204).
    "empty_204_after_the_delete": Case(
        (Fault("empty", status=204, carried_out=True),),
        "deleted",
        1,
        ((D, 204),),
        http_status=204,
    ),
    "empty_200_after_the_delete": Case(
        (Fault("empty", status=200, carried_out=True),),
        "deleted",
        1,
        ((D, 200),),
        http_status=200,
    ),
    # Errors that no retry can fix: one attempt.
    "forbidden_403": Case(
        (Fault("status", status=403, error_code="ModelArts.0108", times=None),),
        "failed",
        1,
        ((D, 403),),
        http_status=403,
        error_code="ModelArts.0108",
        remains=True,
    ),
    "bad_request_400": Case(
        (Fault("status", status=400, error_code="ModelArts.0104", times=None),),
        "failed",
        1,
        ((D, 400),),
        http_status=400,
        error_code="ModelArts.0104",
        remains=True,
    ),
    "redirect_not_followed": Case(
        (Fault("empty", status=302, times=None),),
        "failed",
        1,
        ((D, 302),),
        http_status=302,
        error_code="UnexpectedRedirect",
        remains=True,
    ),
    "retry_after_longer_than_we_wait": Case(
        (Fault("status", status=429, retry_after="3600", times=None),),
        "failed",
        1,
        ((D, 429),),
        http_status=429,
        error_code="ModelArts.6101",
        remains=True,
    ),
    # Retries exhausted exactly: the answer after the last attempt would have been a success.
    "retries_exhausted_by_one": Case(
        (Fault("status", status=503, times=MAX_ATTEMPTS),),
        "failed",
        MAX_ATTEMPTS,
        ((D, 503),) * MAX_ATTEMPTS,
        http_status=503,
        error_code="ModelArts.6102",
        remains=True,
    ),
    "retries_suffice_by_one": Case(
        (Fault("status", status=503, times=MAX_ATTEMPTS - 1),),
        "deleted",
        MAX_ATTEMPTS,
        ((D, 503),) * (MAX_ATTEMPTS - 1) + ((D, 200),),
        http_status=200,
    ),
    "not_found_6404": Case((), "already_absent", 1, ((D, 404),), http_status=404, present=False),
    # "Stop it first": stop, wait until stopped, delete again. Attempts count DELETEs only.
    "stop_first_6304": Case(
        (),
        "deleted",
        2,
        ((D, 400), (G, 200), (P, 200), (G, 200), (D, 200)),
        http_status=200,
        status="RUNNING",
        fake_options={"stop_before_delete": True},
    ),
    "stop_first_6304_forever": Case(
        (Fault("status", status=400, error_code="ModelArts.6304", times=None, method=D),),
        "failed",
        3,
        ((D, 400), (G, 200), (D, 400), (G, 200), (D, 400)),
        http_status=400,
        error_code="ModelArts.6304",
        remains=True,
    ),
    # Another operation under way (not the deletion: the read shows it STOPPED): wait, delete.
    "operation_in_progress_6357": Case(
        (Fault("status", status=400, error_code="ModelArts.6357", method=D),),
        "deleted",
        2,
        ((D, 400), (G, 200), (G, 200), (D, 200)),
        http_status=200,
    ),
    # Credentials the gateway refuses: never retried (bad signatures lock the AK).
    "iam_token_expired_401": Case(
        (),
        "failed",
        1,
        ((D, 401),),
        http_status=401,
        error_code="APIGW.0307",
        remains=True,
        fake_options={"tokens": ("the-fresh-token",)},
        env={
            "HUAWEICLOUD_SDK_AK": "",
            "HUAWEICLOUD_SDK_SK": "",
            "MODELARTS_CLEANUP_AUTH_TOKEN": "expired",
        },
        error_msg_contains="token",
    ),
    "iam_token_invalid_modelarts_0203": Case(
        (),
        "failed",
        1,
        ((D, 401),),
        http_status=401,
        error_code="ModelArts.0203",
        remains=True,
        fake_options={"tokens": ("the-fresh-token",), "token_error_code": "ModelArts.0203"},
        env={
            "HUAWEICLOUD_SDK_AK": "",
            "HUAWEICLOUD_SDK_SK": "",
            "MODELARTS_CLEANUP_AUTH_TOKEN": "stale",
        },
    ),
    "signature_rejected_401": Case(
        (),
        "failed",
        1,
        ((D, 401),),
        http_status=401,
        error_code="APIGW.0301",
        remains=True,
        env={"HUAWEICLOUD_SDK_SK": "a-different-secret-key"},
    ),
}


@pytest.mark.parametrize("case", BATTERY.values(), ids=BATTERY.keys())
def test_fault_battery_outcome_attempts_and_requests_agree(case: Case) -> None:
    with FakeModelArts(access_key=AK, secret_key=SK, **case.fake_options) as fake:
        instance = fake.add_instance(PROJECT, status=case.status) if case.present else MISSING
        for fault in case.faults:
            fake.add_fault(fault, instance_id=instance)

        result = only_result(run(fake.url, instance, env=case.env))

        assert (result["outcome"], result["attempts"]) == (case.outcome, case.attempts)
        assert result["http_status"] == case.http_status
        if case.error_code is not None or case.outcome != "failed":
            assert result["error_code"] == case.error_code
        if case.error_msg_contains is not None:
            assert case.error_msg_contains in result["error_msg"]
        if case.outcome == "failed":
            assert result["error_msg"]
        assert log_of(fake) == list(case.requests)
        assert all(r.instance_id == instance for r in fake.requests)
        assert fake.instance_ids() == ({(PROJECT, instance)} if case.remains else set())


def test_retries_exhausted_leave_the_instance_for_the_next_run() -> None:
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(Fault("status", status=503, times=MAX_ATTEMPTS), instance_id=instance)

        first = only_result(run(fake.url, instance))
        second = only_result(run(fake.url, instance))

        assert (first["outcome"], first["attempts"]) == ("failed", MAX_ATTEMPTS)
        assert (second["outcome"], second["attempts"]) == ("deleted", 1)
        assert log_of(fake) == [(D, 503)] * MAX_ATTEMPTS + [(D, 200)]


def test_delete_accepted_but_never_finished_is_reported_as_accepted_with_its_status() -> None:
    # `deleted` means "the API accepted the deletion" (DESIGN.md); ModelArts deletes
    # asynchronously, so the result carries the status the API gave (DELETING) and says no more.
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT, status="RUNNING")
        fake.add_fault(Fault("stuck_delete"), instance_id=instance)

        result = only_result(run(fake.url, instance))

        assert (result["outcome"], result["attempts"], result["http_status"]) == ("deleted", 1, 200)
        assert result["instance_status"] == "DELETING"
        assert log_of(fake) == [(D, 200)]
        still = fake.instance(PROJECT, instance)
        assert still is not None
        assert still["status"] == "DELETING"


def test_body_cut_short_after_the_delete_is_still_a_success() -> None:
    # The delete was done and the answer mangled on the way back: whatever the client makes of
    # the body, it must not call a deleted instance failed, and it must be gone.
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(Fault("malformed", status=200, carried_out=True), instance_id=instance)

        result = only_result(run(fake.url, instance))

        assert result["outcome"] in ("deleted", "already_absent")
        assert [m for m, _ in log_of(fake)] == [D] * result["attempts"]
        assert fake.instance_ids() == set()


# ModelArts answers a delete with JSON or nothing. An HTML page or a body cut short under a 200
# may come from something in front of it (a proxy, a wrong endpoint), and the instance may still be
# there: such an answer is asked again (DELETE is idempotent: a repeat says 404 -> already_absent,
# or JSON 200 -> deleted), and if it persists the target is `failed`, never `deleted`.
UNCONFIRMED_2XX = {
    "html_200_once": (Fault("html", status=200), "deleted", 2, [(D, 200), (D, 200)], False),
    "malformed_200_once": (
        Fault("malformed", status=200),
        "deleted",
        2,
        [(D, 200), (D, 200)],
        False,
    ),
    "html_200_always": (
        Fault("html", status=200, times=None),
        "failed",
        MAX_ATTEMPTS,
        [(D, 200)] * MAX_ATTEMPTS,
        True,
    ),
    "malformed_200_always": (
        Fault("malformed", status=200, times=None),
        "failed",
        MAX_ATTEMPTS,
        [(D, 200)] * MAX_ATTEMPTS,
        True,
    ),
}


@pytest.mark.parametrize(
    ("fault", "outcome", "attempts", "requests", "remains"),
    UNCONFIRMED_2XX.values(),
    ids=UNCONFIRMED_2XX.keys(),
)
def test_2xx_that_is_not_from_modelarts_is_never_called_deleted(
    fault: Fault,
    outcome: str,
    attempts: int,
    requests: list[tuple[str, int]],
    remains: bool,
) -> None:
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(fault, instance_id=instance)

        result = only_result(run(fake.url, instance))

        # The invariant first: `deleted` only for what is gone.
        assert (result["outcome"] == "deleted") == (fake.instance_ids() == set())
        assert (result["outcome"], result["attempts"]) == (outcome, attempts)
        assert log_of(fake) == requests
        assert (fake.instance_ids() == {(PROJECT, instance)}) is remains
        if outcome == "failed":
            assert result["error_code"] == "MalformedResponse"


# -- transport failures without an HTTP answer ---------------------------------------------------


def test_connection_refused_fails_after_max_attempts_and_reaches_nothing() -> None:
    with (
        FakeModelArts(access_key=AK, secret_key=SK) as fake,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker,
    ):
        instance = fake.add_instance(PROJECT)
        # Bound but never listening: the port is ours, and every connection to it is refused.
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        sleeps = Sleeps()

        result = only_result(run(f"http://127.0.0.1:{port}", instance, sleep=sleeps))

        assert (result["outcome"], result["attempts"]) == ("failed", MAX_ATTEMPTS)
        assert (result["http_status"], result["error_code"]) == (None, "ConnectionError")
        assert f"127.0.0.1:{port}" in result["error_msg"]
        assert len(sleeps.calls) == MAX_ATTEMPTS - 1
        assert fake.requests == []
        assert fake.instance_ids() == {(PROJECT, instance)}


@pytest.fixture
def held() -> Iterator[threading.Event]:
    """A gate `slow` faults wait at (the fake's sleep) until the test opens it."""
    gate = threading.Event()
    try:
        yield gate
    finally:
        gate.set()


def test_read_timeout_once_is_retried_and_deleted(held: threading.Event) -> None:
    def wait_at_gate(seconds: float) -> None:
        held.wait(seconds)

    with FakeModelArts(access_key=AK, secret_key=SK, sleep=wait_at_gate) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(Fault("slow", delay=60.0, method=D), instance_id=instance)

        result = only_result(run(fake.url, instance, MODELARTS_CLEANUP_READ_TIMEOUT="0.2"))

        assert (result["outcome"], result["attempts"], result["http_status"]) == ("deleted", 2, 200)
        assert log_of(fake) == [(D, 200)]  # the first request is still held at the gate
        assert fake.instance_ids() == set()
        held.set()
        wait_until(lambda: len(fake.requests) == 2)
        # When it is finally served, the instance is long gone: nothing happens twice.
        assert log_of(fake) == [(D, 200), (D, 404)]


def test_read_timeout_forever_fails_and_says_so(held: threading.Event) -> None:
    def wait_at_gate(seconds: float) -> None:
        held.wait(seconds)

    with FakeModelArts(access_key=AK, secret_key=SK, sleep=wait_at_gate) as fake:
        instance = fake.add_instance(PROJECT)
        fake.add_fault(Fault("slow", delay=60.0, method=D, times=None), instance_id=instance)

        result = only_result(run(fake.url, instance, MODELARTS_CLEANUP_READ_TIMEOUT="0.2"))

        assert (result["outcome"], result["attempts"]) == ("failed", MAX_ATTEMPTS)
        assert (result["http_status"], result["error_code"]) == (None, "AnswerLost")
        assert "0.2s" in result["error_msg"]
        assert "its effect is unknown" in result["error_msg"]
        assert "already_absent" in result["error_msg"]
        assert fake.requests == []
        assert fake.instance_ids() == {(PROJECT, instance)}
        # A timed-out DELETE may still land: `failed` here means "not confirmed", and the next
        # run finds out (already_absent). That is why the report never says more than it knows.
        held.set()
        wait_until(lambda: len(fake.requests) == MAX_ATTEMPTS)
        assert sorted(s or 0 for _, s in log_of(fake)) == [200] + [404] * (MAX_ATTEMPTS - 1)
        second = only_result(run(fake.url, instance))
        assert second["outcome"] == "already_absent"


def test_one_target_faults_never_spill_onto_the_others() -> None:
    with FakeModelArts(access_key=AK, secret_key=SK) as fake:
        broken = fake.add_instance(PROJECT)
        fine = [fake.add_instance(PROJECT) for _ in range(5)]
        fake.add_fault(Fault("reset", times=None), instance_id=broken)

        report = run(fake.url, broken, *fine, MODELARTS_CLEANUP_CONCURRENCY="3")

        outcomes = {r["instance_id"]: (r["outcome"], r["attempts"]) for r in report["results"]}
        assert outcomes == {broken: ("failed", MAX_ATTEMPTS), **dict.fromkeys(fine, ("deleted", 1))}
        assert report["status"] == "partial"
        assert fake.instance_ids() == {(PROJECT, broken)}
        assert sum(1 for r in fake.requests if r.instance_id == broken) == MAX_ATTEMPTS


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": "slow", "delay": 1.0, "carried_out": True},
        {"kind": "stuck_delete", "carried_out": True},
        {"kind": "stuck_delete", "method": "GET"},
    ],
)
def test_fault_knobs_refuse_combinations_that_mean_nothing(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fault"):
        Fault(**arguments)


def test_stuck_delete_waits_for_a_delete_and_leaves_other_requests_alone() -> None:
    # With the service insisting on a stop first, the GET and POST of the stop go through
    # untouched; the first DELETE (refused, 6304) uses the fault up without effect, and the
    # second is an ordinary delete.
    with FakeModelArts(access_key=AK, secret_key=SK, stop_before_delete=True) as fake:
        instance = fake.add_instance(PROJECT, status="RUNNING")
        fake.add_fault(Fault("stuck_delete"), instance_id=instance)

        result = only_result(run(fake.url, instance))

        assert (result["outcome"], result["attempts"]) == ("deleted", 2)
        assert log_of(fake) == [(D, 400), (G, 200), (P, 200), (G, 200), (D, 200)]
        assert fake.instance_ids() == set()
