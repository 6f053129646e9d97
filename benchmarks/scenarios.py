"""The measurements the issue asks for, and the rig's own floor; each returns numbers only."""

from __future__ import annotations

import http.client
import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.coldstart import Start, Starter, start_once
from benchmarks.contenders import (
    Run,
    function_environment,
    run_fleet_floor,
    run_floor,
    run_ours,
    run_sdk,
)
from benchmarks.fake_process import PROJECT_ID, FakeProcess
from modelarts_cleanup.entry import run_function

LATENCY = 0.05  # seconds the endpoint sleeps before each answer


@dataclass(frozen=True)
class Throughput:
    """One batch at one concurrency, against the physical limit."""

    concurrency: int
    run: Run
    latency: float

    @property
    def limit(self) -> float:
        """Seconds no client can beat: ceil(N / C) round trips of `latency` each."""
        return math.ceil(self.run.targets / self.concurrency) * self.latency

    @property
    def efficiency(self) -> float:
        """limit / wall: 1.0 is the physical limit."""
        return self.limit / self.run.wall


@dataclass(frozen=True)
class ColdStarts:
    """Every start of each kind; medians are what the targets use."""

    starts: dict[Starter, list[Start]]

    def median_wall(self, starter: Starter) -> float:
        """Median seconds, spawn to exit."""
        return statistics.median(s.wall for s in self.starts[starter])

    def median_rss_mib(self, starter: Starter) -> float:
        """Median peak RSS, MiB."""
        return statistics.median(s.peak_rss_kib for s in self.starts[starter]) / 1024


@dataclass(frozen=True)
class Throttled:
    """A batch against an endpoint allowing `rate` requests a second (429 + Retry-After above)."""

    rate: float
    concurrency: int
    run: Run

    @property
    def achieved(self) -> float:
        """Deletions a second over the whole invocation."""
        return self.run.deleted / self.run.wall


def warm_up(fake: FakeProcess, count: int = 50) -> None:
    """Load everything lazily loaded (SDK models, pydantic validators) before anything is timed."""
    url = fake.start(latency=0.0)
    run_ours(fake, url, fake.seed(count), concurrency=8).check_clean("warm-up (ours)")
    run_sdk(fake, url, fake.seed(count)).check_clean("warm-up (SDK)")


def throughput(
    fake: FakeProcess, sizes: Sequence[int], concurrencies: Sequence[int], *, skip_over: float
) -> list[Throughput]:
    """Every size at every concurrency, skipping any batch whose limit exceeds `skip_over` s."""
    url = fake.start(latency=LATENCY)
    rows = []
    for size in sizes:
        for concurrency in concurrencies:
            if math.ceil(size / concurrency) * LATENCY > skip_over:
                continue
            run = run_ours(fake, url, fake.seed(size), concurrency=concurrency)
            run.check_clean(f"ours, {size} targets at concurrency {concurrency}")
            rows.append(Throughput(concurrency, run, LATENCY))
    return rows


@dataclass(frozen=True)
class GuardCost:
    """The same named deletions with protect tags off (DELETE only) and on (a read first)."""

    concurrency: int
    off: Run
    on: Run

    def requests_per_target(self, run: Run) -> float:
        """Requests the endpoint answered per named target."""
        return run.served.requests / run.targets


def guard_cost(fake: FakeProcess, size: int, concurrency: int, runs: int = 3) -> GuardCost:
    """Named deletions at 50 ms, guard off then on, alternating; the median wall of each."""
    url = fake.start(latency=LATENCY)
    off: list[Run] = []
    on: list[Run] = []
    for _ in range(runs):
        for protect, kept in (("[]", off), ("", on)):
            run = run_ours(
                fake, url, fake.seed(size), concurrency=concurrency, protect_tags=protect
            )
            reads = 0 if protect == "[]" else size
            if run.deleted != size or run.served.statuses != {200: size + reads}:
                raise RuntimeError(
                    f"guard {'on' if reads else 'off'}: {run.deleted}/{size} deleted, endpoint "
                    f"answered {run.served.statuses}"
                )
            kept.append(run)
    return GuardCost(concurrency, _median_wall(off), _median_wall(on))


def _median_wall(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def floor(fake: FakeProcess, size: int, concurrencies: Sequence[int]) -> list[Throughput]:
    """The endpoint's own floor: pre-signed requests, no client work (see `run_floor`)."""
    url = fake.start(latency=LATENCY)
    rows = []
    for concurrency in concurrencies:
        run = run_floor(fake, url, fake.seed(size), concurrency=concurrency)
        run.check_clean(f"floor, {size} targets at concurrency {concurrency}")
        rows.append(Throughput(concurrency, run, LATENCY))
    return rows


def sdk_loop(fake: FakeProcess, size: int) -> Throughput:
    """The seed's way on the same endpoint: concurrency 1 by construction."""
    url = fake.start(latency=LATENCY)
    run = run_sdk(fake, url, fake.seed(size))
    run.check_clean(f"SDK, {size} targets")
    return Throughput(1, run, LATENCY)


def cpu_per_delete(
    fake: FakeProcess, size: int, concurrencies: Sequence[int], *, rounds: int = 3
) -> tuple[list[Throughput], Throughput]:
    """At zero latency: ours at each concurrency and the SDK loop, interleaved `rounds` times.

    Each contender's run with the median CPU is kept, so one noisy moment skews nobody.
    """
    url = fake.start(latency=0.0)
    ours: dict[int, list[Run]] = {c: [] for c in concurrencies}
    sdk: list[Run] = []
    for _ in range(rounds):
        for concurrency in concurrencies:
            run = run_ours(fake, url, fake.seed(size), concurrency=concurrency)
            run.check_clean(f"ours at zero latency, concurrency {concurrency}")
            ours[concurrency].append(run)
        run = run_sdk(fake, url, fake.seed(size))
        run.check_clean("SDK at zero latency")
        sdk.append(run)
    return (
        [Throughput(c, _median_cpu(runs), 0.0) for c, runs in ours.items()],
        Throughput(1, _median_cpu(sdk), 0.0),
    )


def _median_cpu(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.cpu)[len(runs) // 2]


def cold_starts(fake: FakeProcess, runs: int) -> ColdStarts:
    """`runs` fresh processes of each kind, interleaved so drift hits all kinds alike."""
    url = fake.start(latency=0.0)
    kinds: tuple[Starter, ...] = ("bare", "floor", "ours", "sdk")

    def one(kind: Starter) -> Start:
        return start_once(kind, url, "" if kind == "bare" else fake.seed(1)[0])

    for kind in kinds:  # one discarded start each: bytecode and page caches warm for all
        one(kind)
    starts: dict[Starter, list[Start]] = {kind: [] for kind in kinds}
    fake.served()
    for _ in range(runs):
        for kind in kinds:
            starts[kind].append(one(kind))
    served = fake.served()
    if served.statuses != {200: 3 * runs} or served.remaining != 0:
        raise RuntimeError(f"cold starts: endpoint answered {served.statuses}")
    return ColdStarts(starts)


@dataclass(frozen=True)
class FleetPlan:
    """`plan` over a fleet: listing every workspace and page, then choosing; and the same
    requests with no client (the rig's floor). Medians of interleaved runs."""

    instances: int
    workspaces: int
    concurrency: int
    pages: int  # list pages the fleet takes, the workspaces' included
    wall: float
    floor_wall: float
    picked: int
    runs: int

    @property
    def limit(self) -> float:
        """Round trips no client can do without: the workspaces, the first pages, the rest
        (a first page gives the total), or every page at `concurrency` at a time."""
        return max(3, math.ceil(self.pages / self.concurrency)) * LATENCY

    @property
    def efficiency(self) -> float:
        return self.limit / self.wall

    @property
    def floor_efficiency(self) -> float:
        return self.limit / self.floor_wall


def fleet_plan(
    fake: FakeProcess, size: int, workspaces: int, concurrency: int, *, runs: int = 5
) -> FleetPlan:
    """`plan` (the dry run) of one rule over `size` notebooks in `workspaces` workspaces,
    alternating with the same requests sent by no client at all."""
    url = fake.start(latency=LATENCY)
    lists = fake.seed_fleet(size, workspaces)
    pages = 1 + sum(max(1, math.ceil(count / 50)) for _, _, count in lists)
    environ = {
        **function_environment(url, concurrency=concurrency),
        "MODELARTS_CLEANUP_MAX_DELETIONS": str(size),
    }
    rule = {
        "project_id": PROJECT_ID,
        "statuses": ["STOPPED", "ERROR"],
        "idle_hours": 72,
        "name_pattern": "tmp-*",
    }
    walls, floors, picked = [], [], 0
    for _ in range(runs):
        fake.served()
        with open(os.devnull, "w", encoding="utf-8") as log_stream:
            started = time.perf_counter()
            report = run_function(
                {"selectors": [rule]},
                None,
                environ=environ,
                log_stream=log_stream,
                force_dry_run=True,
            )
            walls.append(time.perf_counter() - started)
        served = fake.served()
        (entry,) = report["selectors"]
        if (
            entry["error_code"] is not None
            or entry["listed"] != size
            or served.statuses != {200: pages}
        ):
            raise RuntimeError(f"fleet plan: {entry}, endpoint answered {served.statuses}")
        picked = entry["picked"]
        floors.append(run_fleet_floor(url, lists, concurrency=concurrency))
        served = fake.served()
        if served.statuses != {200: pages}:
            raise RuntimeError(f"fleet floor: endpoint answered {served.statuses}")
    return FleetPlan(
        size,
        workspaces,
        concurrency,
        pages,
        statistics.median(walls),
        statistics.median(floors),
        picked,
        runs,
    )


def throttled(fake: FakeProcess, rate: float, size: int, concurrency: int) -> Throttled:
    """Our function against a rate-limited endpoint whose burst allowance is spent beforehand."""
    url = fake.start(latency=LATENCY, rate_limit=rate)
    ids = fake.seed(size)
    _drain(url)
    run = run_ours(fake, url, ids, concurrency=concurrency, max_attempts=10)
    unexpected = set(run.served.statuses) - {200, 429}
    if unexpected or run.deleted + run.failed != size:
        raise RuntimeError(f"throttled run: endpoint answered {run.served.statuses}")
    return Throttled(rate, concurrency, run)


def _drain(url: str, workers: int = 16) -> None:
    """Spend the endpoint's initial burst (a full bucket of `rate` tokens) until it answers 429.

    Without this the first second's burst is free and "achieved rate / R" flatters the client.
    The throttle is checked before routing, so unrouted GETs spend tokens like real calls.
    """
    parts = urlsplit(url)
    throttled = threading.Event()

    def spend() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            while not throttled.is_set():
                connection.request("GET", "/drain")
                response = connection.getresponse()
                response.read()
                if response.status == 429:
                    throttled.set()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(spend) for _ in range(workers)]:
            future.result()


@dataclass(frozen=True)
class Confirming:
    """The same deletions with confirmation off and on, deletions taking `delete_seconds`."""

    delete_seconds: float
    concurrency: int
    off: Run
    on: Run

    @property
    def extra_requests(self) -> int:
        """Reads confirmation sent (the GETs)."""
        return self.on.served.requests - self.off.served.requests

    @property
    def extra_seconds(self) -> float:
        """Wall time confirmation added."""
        return self.on.wall - self.off.wall


def confirmation(
    fake: FakeProcess, size: int, concurrency: int, delete_seconds: float
) -> Confirming:
    """`size` deletions at 50 ms latency, not confirmed, then confirmed (the default 60 s)."""
    runs = []
    for confirm_seconds in (0, 60):
        url = fake.start(latency=LATENCY, delete_seconds=delete_seconds)
        ids = fake.seed(size)
        runs.append(
            run_ours(fake, url, ids, concurrency=concurrency, confirm_seconds=confirm_seconds)
        )
    return Confirming(delete_seconds, concurrency, *runs)
