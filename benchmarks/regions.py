"""Regions do not wait for each other: three regions at 10, 50 and 150 ms, 100 targets each, at
concurrency 16, against the 150 ms region's 100 targets alone. The whole run should take at most
1.2x as long. `python -m benchmarks.regions`; also the last part of `make bench`.

Named targets with the default settings: each is read before its DELETE (protect tags) and read
again after it (confirmation), three requests a target. The endpoints (one per region, and IAM)
run in a process of their own, as every other section's endpoint does, so that their work never
shares the client's GIL.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Mapping

from benchmarks.fake_process import ACCESS_KEY, SECRET_KEY, FakeProcess
from modelarts_cleanup.cloud.iam import ProjectRegionCache
from modelarts_cleanup.entry import run_function

LATENCIES = {"cn-north-4": 0.010, "cn-east-3": 0.050, "ap-southeast-3": 0.150}
SLOWEST = "ap-southeast-3"
TARGETS_PER_REGION = 100
CONCURRENCY = 16
ROUNDS = 3
TARGET_RATIO = 1.2


def _project(n: int) -> str:
    return f"{n + 1:x}" * 32


PROJECTS = {region: _project(n) for n, region in enumerate(LATENCIES)}


def _timed_run(endpoints: FakeProcess, cloud: Mapping[str, str], regions: list[str]) -> float:
    """Seconds one run takes to delete TARGETS_PER_REGION instances in each of `regions`."""
    targets = [
        {"project_id": PROJECTS[r], "instance_id": instance}
        for r in regions
        for instance in endpoints.seed_region(r, PROJECTS[r], TARGETS_PER_REGION)
    ]
    environ = {
        **cloud,
        "MODELARTS_CLEANUP_REGION": "cn-north-4",
        "MODELARTS_CLEANUP_CONCURRENCY": str(CONCURRENCY),
        "MODELARTS_CLEANUP_MAX_DELETIONS": str(len(targets)),
        "HUAWEICLOUD_SDK_AK": ACCESS_KEY,
        "HUAWEICLOUD_SDK_SK": SECRET_KEY,
    }
    began = time.perf_counter()
    report = run_function(
        {"targets": targets},
        None,
        environ=environ,
        log_stream=io.StringIO(),
        # Each run asks IAM, as a cold container would.
        iam_cache=ProjectRegionCache(),
    )
    took = time.perf_counter() - began
    if report["counts"]["deleted"] != len(targets):
        raise RuntimeError(f"the run did not delete every target: {report['counts']}")
    return took


def measure(rounds: int = ROUNDS) -> Mapping[str, float]:
    """Medians of alternating runs: the slowest region alone, and all three regions."""
    regions = {region: [project] for region, project in PROJECTS.items()}
    alone: list[float] = []
    together: list[float] = []
    with FakeProcess() as endpoints:
        cloud = endpoints.start_cloud(regions, dict(LATENCIES))
        _timed_run(endpoints, cloud, list(LATENCIES))  # warm-up: threads, connections, imports
        for _ in range(rounds):
            alone.append(_timed_run(endpoints, cloud, [SLOWEST]))
            together.append(_timed_run(endpoints, cloud, list(LATENCIES)))
    slow, whole = statistics.median(alone), statistics.median(together)
    return {"alone": slow, "together": whole, "ratio": whole / slow, "rounds": rounds}


def render(numbers: Mapping[str, float]) -> str:
    """The table and its verdict."""
    ms = ", ".join(f"{r} {int(s * 1000)} ms" for r, s in LATENCIES.items())
    verdict = "met" if numbers["ratio"] <= TARGET_RATIO else "MISSED"
    return "\n".join(
        [
            f"## Regions: {TARGETS_PER_REGION} targets per region ({ms}), "
            f"concurrency {CONCURRENCY}, median of {numbers['rounds']:.0f}",
            "",
            "| run | seconds |",
            "|---|---|",
            f"| {SLOWEST} alone | {numbers['alone']:.3f} |",
            f"| all three regions | {numbers['together']:.3f} |",
            "",
            f"ratio {numbers['ratio']:.2f} (target at most {TARGET_RATIO}): {verdict}",
        ]
    )


def main() -> int:
    """Measure and print."""
    print(render(measure()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
