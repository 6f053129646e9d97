"""Fixtures shared by the test modules; the helpers behind them live in `tests.support`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import responses

from modelarts_cleanup.testing import FakeModelArts
from tests.support import FakeTime, local_endpoint


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """HTTP answered by `responses`; nothing leaves the process."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def fake_time() -> FakeTime:
    """A clock that moves only when the code under test sleeps."""
    return FakeTime()


@pytest.fixture
def fake() -> Iterator[FakeModelArts]:
    """The local ModelArts endpoint over real sockets, accepting `tests.support.AK`/`SK`."""
    with local_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def clock_eight_hours_ahead(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone is UTC+8 (not UTC, as on a build machine) for the test."""
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
