"""Fixtures shared by the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from tests.clocks import FakeTime


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """HTTP answered by `responses`; nothing leaves the process."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def fake_time() -> FakeTime:
    """A clock that moves only when the code under test sleeps."""
    return FakeTime()
