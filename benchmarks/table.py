"""The results as Markdown tables, each target with PASS or MISS."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

from benchmarks.coldstart import Starter
from benchmarks.scenarios import (
    LATENCY,
    ColdStarts,
    Confirming,
    FleetPlan,
    GuardCost,
    Throttled,
    Throughput,
)
from benchmarks.unpacked import Kind, UnpackedStarts

HEADLINE_CONCURRENCY = 16
SDK_SIZE = 200


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    throughput: list[Throughput]
    floor: list[Throughput]  # pre-signed requests, no client: what the rig allows
    sdk: Throughput
    cpu_ours: list[Throughput]
    cpu_sdk: Throughput
    cold: ColdStarts
    throttled: list[Throttled]  # shortest run first
    fleet: list[FleetPlan]  # the headline first
    command: str
    unpacked: UnpackedStarts
    guard: GuardCost | None = None  # protect tags on named targets: off and on
    confirming: list[Confirming] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, measured."""

    name: str
    measured: str
    required: str
    met: bool


def machine() -> str:
    """One line naming the machine, the interpreter and the SDK measured against."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{usable} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, requests {_version('requests')}, "
        f"huaweicloudsdkmodelarts {_version('huaweicloudsdkmodelarts')}"
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def targets(results: Results) -> list[Target]:
    """The issue's targets against this run's numbers."""
    found: list[Target] = []
    headline = [r for r in results.throughput if r.concurrency == HEADLINE_CONCURRENCY]
    same_work = [r for r in headline if r.run.targets == SDK_SIZE]
    if same_work:
        ratio = results.sdk.run.wall / same_work[0].run.wall
        found.append(
            Target(
                f"{SDK_SIZE} deletions at concurrency {HEADLINE_CONCURRENCY} vs the SDK loop",
                f"{ratio:.1f}x faster",
                ">= 12x",
                ratio >= 12,
            )
        )
    found.extend(
        Target(
            f"efficiency, {row.run.targets} targets at concurrency {HEADLINE_CONCURRENCY}",
            f"{row.efficiency:.2f}",
            ">= 0.85",
            row.efficiency >= 0.85,
        )
        for row in headline
    )
    cold = results.cold
    floor_ratio = cold.median_wall("ours") / cold.median_wall("floor")
    wall_ratio = cold.median_wall("ours") / cold.median_wall("sdk")
    rss_ratio = cold.median_rss_mib("ours") / cold.median_rss_mib("sdk")
    found.append(
        Target(
            "cold start, median wall vs the floor",
            f"{floor_ratio:.2f}x",
            "<= 1.15x",
            floor_ratio <= 1.15,
        )
    )
    found.append(
        Target("cold start, median wall vs SDK", f"{wall_ratio:.2f}x", "<= 0.7x", wall_ratio <= 0.7)
    )
    found.append(
        Target("cold start, peak RSS vs SDK", f"{rss_ratio:.2f}x", "<= 0.7x", rss_ratio <= 0.7)
    )
    unpacked = results.unpacked
    deployed_floor = unpacked.median_wall("ours") / unpacked.median_wall("floor")
    deployed_sources = unpacked.median_wall("ours") / unpacked.median_wall("ours, no bytecode")
    found.append(
        Target(
            "cold start as deployed, median wall vs the floor (both with bytecode)",
            f"{deployed_floor:.2f}x",
            "<= 1.15x",
            deployed_floor <= 1.15,
        )
    )
    found.append(
        Target(
            "cold start as deployed, median wall with bytecode vs without",
            f"{deployed_sources:.2f}x",
            "<= 0.55x",
            deployed_sources <= 0.55,
        )
    )
    longest = results.throttled[-1]
    share = longest.achieved / longest.rate
    found.append(
        Target(
            f"throttled at R={longest.rate:g}/s, {longest.run.wall:.0f} s run: achieved rate / R",
            f"{share:.2f}",
            ">= 0.90",
            share >= 0.9,
        )
    )
    failed = sum(t.run.failed for t in results.throttled)
    found.append(Target("throttled: failed targets, every run", str(failed), "0", failed == 0))
    plan = results.fleet[0]
    found.append(
        Target(
            f"plan over {plan.instances} instances in {plan.workspaces} workspaces, "
            f"concurrency {plan.concurrency}: limit / wall",
            f"{plan.efficiency:.2f}",
            ">= 0.80",
            plan.efficiency >= 0.8,
        )
    )
    return found


def render(results: Results) -> str:
    """Every section's table and the targets, as Markdown (the regions' section is `regions`')."""
    lines = [
        "## Benchmarks",
        "",
        f"Machine: {machine()}.",
        f"Command: `{results.command}`. Endpoint: `modelarts_cleanup.testing` in its own "
        "process on 127.0.0.1.",
        "",
    ]
    lines += _throughput(results)
    lines += _against_sdk(results)
    lines += _cpu(results)
    lines += _cold(results.cold)
    lines += _throttled(results.throttled)
    lines += _fleet(results.fleet)
    lines += _unpacked(results.unpacked)
    if results.guard is not None:
        lines += _guard(results.guard)
    lines += _confirming(results.confirming)
    lines += ["### Targets", ""]
    lines += _table(
        ("target", "measured", "required", "verdict"),
        [(t.name, t.measured, t.required, "PASS" if t.met else "MISS") for t in targets(results)],
    )
    return "\n".join(lines)


def _throughput(results: Results) -> list[str]:
    labelled = [(str(row.concurrency), row) for row in results.throughput]
    labelled += [(f"{row.concurrency}, floor", row) for row in results.floor]
    labelled.append(("1, SDK loop", results.sdk))
    rows = []
    for label, row in labelled:
        run = row.run
        rows.append(
            (
                str(run.targets),
                label,
                f"{run.wall:.3f}",
                f"{row.limit:.2f}",
                f"{row.efficiency:.3f}",
                f"{run.targets / run.wall:.0f}",
                f"{100 * run.cpu / run.wall:.0f}%",
                f"{100 * run.served.cpu_seconds / run.wall:.0f}%",
            )
        )
    return [
        f"### 1. Throughput: {results.sdk.latency * 1000:.0f} ms server latency",
        "",
        "Limit = ceil(N / C) x latency; efficiency = limit / wall. Wall covers the whole "
        "invocation (settings, payload, session, report). CPU columns: share of one core used "
        "by the client process and by the endpoint process. `floor` rows send requests signed "
        "in advance over raw keep-alive sockets, with no client work at all: the gap between "
        "them and 1.0 is the test rig's (endpoint threads, loopback, timer slack), not ours.",
        "",
        *_table(
            (
                "targets",
                "concurrency",
                "wall s",
                "limit s",
                "efficiency",
                "deletions/s",
                "client CPU",
                "endpoint CPU",
            ),
            rows,
        ),
    ]


def _against_sdk(results: Results) -> list[str]:
    sdk = results.sdk.run
    rows = [("SDK loop (seed's way)", f"{sdk.wall:.3f}", f"{sdk.targets / sdk.wall:.1f}", "1.0x")]
    rows.extend(
        (
            f"ours, concurrency {row.concurrency}",
            f"{row.run.wall:.3f}",
            f"{row.run.targets / row.run.wall:.1f}",
            f"{sdk.wall / row.run.wall:.1f}x",
        )
        for row in results.throughput
        if row.run.targets == sdk.targets
    )
    return [
        f"### 2. Against the official SDK: the same {sdk.targets} deletions, same endpoint",
        "",
        "The SDK loop: `ModelArtsClient` with `BasicCredentials` (AK/SK signed), one "
        "`DeleteNotebookRequest` after another; every request answered 200.",
        "",
        *_table(("client", "wall s", "deletions/s", "speed-up"), rows),
    ]


def _cpu(results: Results) -> list[str]:
    rows = [
        (
            f"ours, concurrency {row.concurrency}",
            f"{1000 * row.run.cpu / row.run.targets:.3f}",
            f"{1000 * row.run.wall / row.run.targets:.3f}",
        )
        for row in results.cpu_ours
    ]
    sdk = results.cpu_sdk.run
    rows.append(
        ("SDK loop", f"{1000 * sdk.cpu / sdk.targets:.3f}", f"{1000 * sdk.wall / sdk.targets:.3f}")
    )
    return [
        f"### 3. CPU per deletion at zero latency ({sdk.targets} deletions)",
        "",
        "Client process CPU (all threads, `time.process_time`), the whole invocation; the "
        "endpoint runs elsewhere. Median of 3 interleaved runs each.",
        "",
        *_table(("client", "CPU ms / delete", "wall ms / delete"), rows),
    ]


def _cold(cold: ColdStarts) -> list[str]:
    names: tuple[tuple[Starter, str], ...] = (
        ("bare", "bare interpreter (`python -c pass`)"),
        ("floor", "floor (requests + pydantic-settings, one signed DELETE)"),
        ("ours", "ours (`import handler`, invoke)"),
        ("sdk", "official SDK (import, build client, delete)"),
    )
    rows = []
    for kind, label in names:
        walls = [s.wall for s in cold.starts[kind]]
        rows.append(
            (
                label,
                f"{1000 * cold.median_wall(kind):.0f}",
                f"{1000 * min(walls):.0f}-{1000 * max(walls):.0f}",
                f"{cold.median_rss_mib(kind):.1f}",
            )
        )
    runs = len(cold.starts["ours"])
    floor_ratio = cold.median_wall("ours") / cold.median_wall("floor")
    wall_ratio = cold.median_wall("ours") / cold.median_wall("sdk")
    rss_ratio = cold.median_rss_mib("ours") / cold.median_rss_mib("sdk")
    return [
        f"### 4. Cold start: fresh process, import, one deletion, exit ({runs} runs each)",
        "",
        "Wall: spawn to exit, seen from the parent. Peak RSS: the child's own VmHWM. All run "
        "from bytecode caches, interleaved; the endpoint (zero latency) runs in another process. "
        "The floor (`benchmarks/floor.py`) imports our two runtime dependencies, reads one "
        "settings class from the environment, signs and sends one DELETE: what any function "
        "built on them pays.",
        "",
        *_table(("process", "median ms", "range ms", "median peak RSS MiB"), rows),
        f"Ours / floor: wall {floor_ratio:.2f}x. Ours / SDK: wall {wall_ratio:.2f}x, "
        f"peak RSS {rss_ratio:.2f}x.",
        "",
    ]


def _throttled(runs: Sequence[Throttled]) -> list[str]:
    rate = runs[0].rate
    return [
        f"### 5. Throttled: the endpoint allows {rate:g} requests/s, 429 + Retry-After above",
        "",
        "The endpoint's initial burst (a full bucket, one second's worth) is spent before each "
        f"run starts, so the rate is what the client sustains. "
        f"Server latency {LATENCY * 1000:.0f} ms; MAX_ATTEMPTS=10.",
        "",
        *_table(
            (
                "targets",
                "concurrency",
                "wall s",
                "achieved /s",
                "achieved / R",
                "429 answers",
                "failed targets",
                "most attempts",
            ),
            [
                (
                    str(t.run.targets),
                    str(t.concurrency),
                    f"{t.run.wall:.2f}",
                    f"{t.achieved:.1f}",
                    f"{t.achieved / t.rate:.3f}",
                    str(t.run.served.statuses.get(429, 0)),
                    str(t.run.failed),
                    str(t.run.most_attempts),
                )
                for t in runs
            ],
        ),
        "Retry-After is whole seconds (RFC 9110), and we never retry sooner than asked: the "
        "targets throttled in the last wave wait a full second while the bucket refills for "
        "fewer requests than that. That idle tail costs about one second per run, whatever its "
        "length, so a short run shows a lower share of R than a long one.",
        "",
    ]


def _fleet(runs: Sequence[FleetPlan]) -> list[str]:
    rows = [
        (
            str(r.instances),
            str(r.workspaces),
            str(r.concurrency),
            str(r.pages),
            f"{r.limit:.2f}",
            f"{r.wall:.3f}",
            f"{r.efficiency:.3f}",
            f"{r.floor_wall:.3f}",
            f"{r.floor_efficiency:.3f}",
            f"{r.floor_wall / r.wall:.2f}",
            str(r.picked),
        )
        for r in runs
    ]
    return [
        f"### 6. Fleet listing: `plan` of one rule, {1000 * LATENCY:.0f} ms server latency",
        "",
        "A fleet of several users' notebooks in several workspaces (the default one included), "
        "one in ten a free CodeLab instance, 50 to a page. Pages = the workspaces' page and "
        "every page of both features in every workspace. Limit = max(3, ceil(pages / "
        "concurrency)) x latency: the workspaces, the first pages, the rest (a first page gives "
        "the total), or every page at `concurrency` at a time. Wall covers the whole invocation "
        "(listing, choosing, one log line per picked notebook, the report). `floor` sends the "
        "same requests with no client at all (signed in advance, raw keep-alive sockets, "
        "answers not parsed) in the order a listing can send them: what the endpoint and "
        f"loopback allow. Medians of {runs[0].runs if runs else 0} alternating runs each.",
        "",
        *_table(
            (
                "instances",
                "workspaces",
                "concurrency",
                "pages",
                "limit s",
                "wall s",
                "limit / wall",
                "floor wall s",
                "floor: limit / wall",
                "floor / wall",
                "picked",
            ),
            rows,
        ),
        "",
    ]


def _unpacked(unpacked: UnpackedStarts) -> list[str]:
    names: tuple[tuple[Kind, str], ...] = (
        ("floor, no bytecode", "floor, sources only"),
        ("floor", "floor, with bytecode"),
        ("ours, no bytecode", "ours, sources only (`--no-bytecode`)"),
        ("ours", "ours, with bytecode (as `make package` builds it)"),
    )
    rows = []
    for kind, label in names:
        walls = [s.wall for s in unpacked.starts[kind]]
        rows.append(
            (
                label,
                f"{1000 * unpacked.median_wall(kind):.0f}",
                f"{1000 * min(walls):.0f}-{1000 * max(walls):.0f}",
                f"{unpacked.median_rss_mib(kind):.1f}",
            )
        )
    runs = len(unpacked.starts["ours"])
    floor_ratio = unpacked.median_wall("ours") / unpacked.median_wall("floor")
    sources_ratio = unpacked.median_wall("ours") / unpacked.median_wall("ours, no bytecode")
    return [
        f"### 7. Cold start as deployed: the unpacked code package, read-only ({runs} runs each)",
        "",
        f"The zip `deploy/package.py` builds for the runtime ({unpacked.zip_bytes:,} bytes), "
        "unpacked, run by the runtime's Python "
        f"({unpacked.python}) with only the standard library and the package on its path and "
        "no bytecode written (`-I -S -B`), as FunctionGraph runs it from a directory it may not "
        "write. Sources only: every `__pycache__` removed, so each start compiles what it "
        "imports. The floor runs from the same files, `floor.py` compiled the same way. "
        "Wall: spawn to exit; one deletion against the local endpoint; kinds alternate.",
        "",
        *_table(("process", "median ms", "range ms", "median peak RSS MiB"), rows),
        f"Ours / floor, both with bytecode: {floor_ratio:.2f}x. Ours with bytecode / ours from "
        f"sources: {sources_ratio:.2f}x.",
        "",
    ]


def _guard(cost: GuardCost) -> list[str]:
    off, on = cost.off, cost.on
    rows = [
        (
            label,
            str(run.targets),
            str(run.served.requests),
            f"{cost.requests_per_target(run):.2f}",
            f"{run.wall:.3f}",
            f"{run.wall / off.wall:.2f}",
        )
        for label, run in (("off (`[]`)", off), ("on (default)", on))
    ]
    return [
        f"### 8. Protect tags on named targets: a read before each DELETE, 50 ms server latency, "
        f"concurrency {cost.concurrency} (median of alternating runs)",
        "",
        *_table(("guard", "targets", "requests", "per target", "wall s", "x off"), rows),
        "",
        "The sections above run with the guard off, as before it read named targets; with it, "
        "each named target costs one GET more (at most one extra request per target).",
        "",
    ]


def _confirming(runs: Sequence[Confirming]) -> list[str]:
    if not runs:
        return []
    rows = [
        (
            str(r.off.targets),
            f"{r.delete_seconds:g}",
            str(r.concurrency),
            str(r.off.served.requests),
            f"{r.off.wall:.2f}",
            str(r.on.served.requests),
            f"{r.on.wall:.2f}",
            str(r.extra_requests),
            f"{r.extra_seconds:.2f}",
            f"{r.on.confirmed}/{r.on.deleted}",
        )
        for r in runs
    ]
    return [
        f"### 9. Confirmed deletions: their cost, {1000 * LATENCY:.0f} ms server latency",
        "",
        "The same deletions with MODELARTS_CLEANUP_CONFIRM_SECONDS=0 and at its default (60): "
        "each deleted notebook is read again at once, then after 1, 2, 4... s, until it is gone. "
        "`delete s`: how long the endpoint keeps an accepted deletion DELETING. Requests are "
        "those the endpoint answered; wall covers the whole invocation.",
        "",
        *_table(
            (
                "deletions",
                "delete s",
                "concurrency",
                "requests off",
                "wall off s",
                "requests on",
                "wall on s",
                "extra requests",
                "extra s",
                "confirmed",
            ),
            rows,
        ),
        "",
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [
        line(header),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(r) for r in rows),
        "",
    ]


def progress(message: str) -> None:
    """A note on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)
