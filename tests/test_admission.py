"""Admission: a request starts only when what this run's requests take still fits before the
deadline; before any has been answered, the connect timeout and a margin is what one may take."""

from __future__ import annotations

import threading

import pytest

from modelarts_cleanup.cloud.admission import Admission
from tests.support import FakeTime


def test_before_any_answer_a_request_needs_the_first_guess_and_the_margin(
    fake_time: FakeTime,
) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1)
    assert admission.needed() == pytest.approx(5.1)
    assert admission.admits(fake_time.now + 5.1)
    assert not admission.admits(fake_time.now + 5.05)
    fake_time.advance(1.0)  # the same deadline, a second later
    assert not admission.admits(fake_time.now + 4.1)


def test_without_a_deadline_everything_is_admitted(fake_time: FakeTime) -> None:
    assert Admission(first_guess=1e9, clock=fake_time).admits(None)


def test_the_deadline_itself_admits_nothing_however_quick_requests_are(
    fake_time: FakeTime,
) -> None:
    admission = Admission(first_guess=0.0, clock=fake_time, margin=0.0)
    admission.record(0.0)
    assert not admission.admits(fake_time.now)
    assert admission.admits(fake_time.now + 0.001)


def test_answers_replace_the_first_guess_with_a_high_percentile_of_them(
    fake_time: FakeTime,
) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1, quantile=0.95)
    for seconds in range(1, 21):  # 1 s .. 20 s
        admission.record(float(seconds))
    assert admission.needed() == pytest.approx(19.1)  # the 19th of 20: nearest rank
    assert admission.admits(fake_time.now + 19.1)
    assert not admission.admits(fake_time.now + 19.0)


def test_with_few_answers_the_slowest_one_sets_the_pace(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1)
    for seconds in (0.2, 1.5, 0.3):
        admission.record(seconds)
    assert admission.needed() == pytest.approx(1.6)


def test_quick_answers_let_a_run_go_on_closer_to_its_deadline(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1)
    assert not admission.admits(fake_time.now + 1.0)
    admission.record(0.05)
    assert admission.admits(fake_time.now + 1.0)


def test_one_slow_answer_among_many_does_not_stop_the_run(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1)
    for _ in range(99):
        admission.record(1.0)
    admission.record(30.0)
    assert admission.needed() == pytest.approx(1.1)


def test_a_service_that_slows_down_is_noticed(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.1, window=10)
    for _ in range(10):
        admission.record(0.1)
    for _ in range(10):
        admission.record(3.0)
    assert admission.needed() == pytest.approx(3.1)  # the quick ones have left the window


def test_a_request_that_starts_later_must_fit_in_what_is_left_then(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=1.0, clock=fake_time, margin=0.0)
    deadline = fake_time.now + 3.0
    assert admission.admits(deadline, after=2.0)
    assert not admission.admits(deadline, after=2.5)


def test_answers_from_many_workers_at_once_are_all_counted(fake_time: FakeTime) -> None:
    admission = Admission(first_guess=5.0, clock=fake_time, margin=0.0, quantile=1.0, window=8000)
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(1000):
            admission.record(float(n * 1000 + i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admission.needed() == 7999.0  # the slowest of all 8000: none was lost


@pytest.mark.parametrize(
    "arguments",
    [
        {"first_guess": -1.0},
        {"first_guess": 1.0, "margin": -0.1},
        {"first_guess": 1.0, "quantile": 0.0},
        {"first_guess": 1.0, "quantile": 1.5},
        {"first_guess": 1.0, "window": 0},
    ],
)
def test_settings_that_make_no_sense_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Admission(**arguments)  # type: ignore[arg-type]
