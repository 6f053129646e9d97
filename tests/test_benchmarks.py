"""The benchmark rig still works: each contender deletes for real, and the tables render.

Numbers are not asserted here (the machines are shared); `make bench` prints them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks import scenarios, table
from benchmarks.coldstart import start_once
from benchmarks.contenders import run_floor, run_ours, run_sdk
from benchmarks.fake_process import FakeProcess
from benchmarks.unpacked import KINDS, unpacked_cold_starts


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProcess]:
    with FakeProcess() as process:
        yield process


def test_every_contender_really_deletes_through_the_signature_check(fake: FakeProcess) -> None:
    url = fake.start(latency=0.0)
    for label, run in (
        ("ours", run_ours(fake, url, fake.seed(12), concurrency=4)),
        ("sdk", run_sdk(fake, url, fake.seed(5))),
        ("floor", run_floor(fake, url, fake.seed(8), concurrency=2)),
    ):
        run.check_clean(label)  # raises unless every target was answered 200 and is gone
        assert run.deleted > 0
        assert run.wall > 0


def test_a_run_that_was_refused_is_not_counted(fake: FakeProcess) -> None:
    url = fake.start(latency=0.0)
    ids = fake.seed(3)
    run_ours(fake, url, ids, concurrency=2).check_clean("first")
    again = run_ours(fake, url, ids, concurrency=2)  # all already gone: 404s, nothing deleted
    with pytest.raises(RuntimeError):
        again.check_clean("second")


def test_throttled_scenario_reports_rate_and_failures(fake: FakeProcess) -> None:
    result = scenarios.throttled(fake, 200.0, 60, concurrency=8)
    assert result.achieved > 0
    assert result.run.deleted == 60


def test_cold_start_children_delete_for_real(fake: FakeProcess) -> None:
    url = fake.start(latency=0.0)
    for kind in ("floor", "ours", "sdk"):
        (instance,) = fake.seed(1)
        fake.served()
        start = start_once(kind, url, instance)  # raises unless the child said it deleted
        served = fake.served()
        assert served.statuses == {200: 1}, kind
        assert served.remaining == 0, kind
        assert start.wall > 0 and start.peak_rss_kib > 0


def test_the_fleet_listing_scenario_lists_every_page_once(fake: FakeProcess) -> None:
    # It raises unless the endpoint answered every page, once, 200, for ours and the floor.
    result = scenarios.fleet_plan(fake, 300, 3, concurrency=4, runs=2)
    # 300 notebooks over 3 workspaces: per workspace about 90 billed (2 pages) and 10 free (1).
    assert result.pages >= 1 + 3 * 2
    assert result.wall > 0 and result.floor_wall > 0 and result.runs == 2
    assert 0 < result.picked < 300
    assert result.limit >= 3 * scenarios.LATENCY


def test_cold_starts_from_the_unpacked_package_delete_for_real_and_write_nothing(
    fake: FakeProcess,
) -> None:
    # It raises unless every child deleted its instance (200, gone) and the read-only trees
    # hold exactly the files they held before.
    result = unpacked_cold_starts(fake, 1)
    assert result.python.startswith("3.10.")
    assert result.zip_bytes > 0
    for kind in KINDS:
        (start,) = result.starts[kind]
        assert start.wall > 0 and start.peak_rss_kib > 0, kind


def test_the_guard_scenario_counts_one_read_per_named_target(fake: FakeProcess) -> None:
    cost = scenarios.guard_cost(fake, 20, concurrency=4, runs=1)
    assert (cost.off.served.requests, cost.on.served.requests) == (20, 40)
    assert (cost.requests_per_target(cost.off), cost.requests_per_target(cost.on)) == (1.0, 2.0)
    assert cost.off.deleted == cost.on.deleted == 20
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table._guard(cost)]
    assert ["on (default)", "20", "40", "2.00"] in [row[:4] for row in rows]


def test_confirming_scenario_reads_each_deletion_again_and_counts_it(fake: FakeProcess) -> None:
    result = scenarios.confirmation(fake, 10, 4, 0.0)
    assert (result.off.deleted, result.on.deleted) == (10, 10)
    assert (result.off.confirmed, result.on.confirmed) == (0, 10)
    assert result.extra_requests == 10  # one read each: the endpoint deletes at once
