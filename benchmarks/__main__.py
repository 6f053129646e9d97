"""`python -m benchmarks [--quick] [--python PYTHON3.10] [--out FILE]`: run every measurement,
print the tables."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import regions, scenarios
from benchmarks.fake_process import FakeProcess
from benchmarks.table import HEADLINE_CONCURRENCY, SDK_SIZE, Results, progress, render
from benchmarks.unpacked import unpacked_cold_starts

SIZES = (200, 1000)
CONCURRENCIES = (1, 4, 8, 16, 32)
THROTTLE_RATE = 50.0
# About 5 s and 20 s at 50/s. A run ends with up to one Retry-After interval (1 s) of idle tail,
# so the longer run is the one that shows the rate the client sustains.
THROTTLED_SIZES = (250, 1000)
# (instances, workspaces, concurrency) of `plan` over a fleet; the first is the target's.
FLEETS = ((5000, 10, 16), (5000, 10, 32), (1000, 3, 16))
# How long the endpoint keeps an accepted deletion DELETING, for the cost of confirming.
CONFIRM_DELETE_SECONDS = (0.0, 2.0)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit status 0 whatever the verdicts (they are numbers, not tests)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="skip the slowest batches; fewer cold starts"
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="the runtime's Python (3.10) for the cold starts from the unpacked package "
        "(default: found as deploy/package.py finds it)",
    )
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    began = time.perf_counter()
    with FakeProcess() as fake:
        progress("warming up")
        scenarios.warm_up(fake)
        progress("CPU per deletion at zero latency")
        cpu_ours, cpu_sdk = scenarios.cpu_per_delete(fake, 1000, (1, HEADLINE_CONCURRENCY))
        progress("throughput at 50 ms")
        rows = scenarios.throughput(
            fake, SIZES, CONCURRENCIES, skip_over=10.0 if args.quick else float("inf")
        )
        progress("the endpoint's floor")
        floor = scenarios.floor(fake, max(SIZES), (HEADLINE_CONCURRENCY, max(CONCURRENCIES)))
        progress(f"the SDK loop: {SDK_SIZE} deletions at 50 ms")
        sdk = scenarios.sdk_loop(fake, SDK_SIZE)
        progress("throttled")
        throttled = [
            scenarios.throttled(fake, THROTTLE_RATE, size, concurrency=HEADLINE_CONCURRENCY)
            for size in THROTTLED_SIZES[-1 if args.quick else 0 :]
        ]
        progress("cold starts")
        cold = scenarios.cold_starts(fake, 10 if args.quick else 21)
        progress("cold starts from the unpacked package, as deployed")
        unpacked = unpacked_cold_starts(fake, 10 if args.quick else 21, args.python)
        progress("fleet listing")
        fleet = [
            scenarios.fleet_plan(fake, size, workspaces, concurrency)
            for size, workspaces, concurrency in FLEETS
        ]
        progress("protect tags on named targets")
        guard = scenarios.guard_cost(fake, max(SIZES) // 5, HEADLINE_CONCURRENCY)
        progress("confirmed deletions")
        confirming = [
            scenarios.confirmation(fake, 200, HEADLINE_CONCURRENCY, delete_seconds)
            for delete_seconds in CONFIRM_DELETE_SECONDS
        ]
    progress("regions")
    by_region = regions.render(regions.measure())
    results = Results(
        rows,
        floor,
        sdk,
        cpu_ours,
        cpu_sdk,
        cold,
        throttled,
        fleet,
        command,
        unpacked,
        guard,
        confirming,
    )
    text = render(results)
    text += "\n\n" + by_region
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    progress(f"done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
