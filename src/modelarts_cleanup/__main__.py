"""Command line: `python -m modelarts_cleanup invoke|plan|demo|schema`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .cleanup.tables import render_plan
from .events.payload import payload_schema
from .exceptions import CleanupError, RunNotClean

EXIT_OK, EXIT_NOT_CLEAN, EXIT_INVALID = 0, 1, 2


def _seconds(text: str) -> float:
    value = float(text)  # argparse turns a ValueError into a usage error, exit 2
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelarts_cleanup",
        description="Delete Huawei Cloud ModelArts notebook instances, with one result each.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    invoke = commands.add_parser(
        "invoke",
        help="run the function here, for real, with settings from the environment",
        description="Prints what the handler returns: the report, or for an API Gateway event "
        "the answer APIG gets. Exit status: 0 succeeded, 1 partial, failed or refused, "
        "2 invalid payload or configuration (for an API Gateway event: 0 for 200; 1 for 207, "
        "409, 502; 2 for 400, 405, 413, 500).",
    )
    invoke.add_argument(
        "--event",
        metavar="FILE",
        help="the event as JSON: a payload, or a TIMER, API Gateway or SMN event; '-' reads "
        "standard input; without it the configured default targets and selectors are used",
    )
    invoke.add_argument("--dry-run", action="store_true", help="delete nothing, say what would go")
    invoke.add_argument(
        "--deadline",
        type=_seconds,
        metavar="SECONDS",
        help="time budget, as FunctionGraph's remaining time would give it",
    )
    plan = commands.add_parser(
        "plan",
        help="show what a run would delete and which rule picked each instance; delete nothing",
        description="Lists the projects selectors name (read-only) and prints the plan. "
        "Exit status as for invoke.",
    )
    plan.add_argument("--event", metavar="FILE", help="as for invoke")
    plan.add_argument("--json", action="store_true", help="print the dry-run report as JSON")
    commands.add_parser("demo", help="run against the embedded local endpoint")
    commands.add_parser(
        "schema", help="print the JSON Schema of the payload, the same inside every envelope"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "schema":
        print(json.dumps(payload_schema(), indent=2))
        return EXIT_OK
    if args.command == "demo":
        try:
            from .testing.demo import run_demo
        except ImportError:
            # The deployed package leaves the local endpoint out.
            print("the demo is not part of this installation", file=sys.stderr)
            return EXIT_INVALID
        return run_demo()
    if args.command == "plan":
        show = "report" if args.json else "table"
        return _invoke(args.event, dry_run=True, deadline=None, show=show)
    return _invoke(args.event, dry_run=args.dry_run, deadline=args.deadline, show="returned")


def _invoke(event_path: str | None, *, dry_run: bool, deadline: float | None, show: str) -> int:
    """Run the handler's code path and print `show`.

    "returned": what the handler returns, an API Gateway answer included; "report": the report
    as JSON; "table": the report for people. Without a report (an API Gateway answer to a
    request that ran no cleanup) the exit status is 2, as for an invalid payload.
    """
    # Imported here: `schema` needs none of the HTTP stack.
    from .entry import run_function

    try:
        event = _read_event(event_path)
    except OSError as exc:
        print(f"cannot read the event from {event_path}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    reports: list[dict[str, Any]] = []
    try:
        returned: dict[str, Any] = run_function(
            event,
            None,
            log_stream=sys.stderr,
            deadline_seconds=deadline,
            force_dry_run=dry_run,
            on_report=reports.append,
        )
    except RunNotClean as raised:
        # A timer or SMN run FunctionGraph would count as an error: the report all the same.
        returned = raised.report
    except CleanupError:
        # run_function has already logged why, as one JSON line on stderr.
        return EXIT_INVALID
    report = reports[0] if reports else None
    shown = returned if show == "returned" else report
    if shown is not None:
        text = (
            render_plan(shown)
            if show == "table"
            else json.dumps(shown, indent=2, ensure_ascii=False)
        )
        print(text)
    if report is None:
        return EXIT_INVALID  # an API Gateway answer to a request that ran no cleanup
    return EXIT_OK if report["status"] == "succeeded" else EXIT_NOT_CLEAN


def _read_event(path: str | None) -> object:
    if path is None:
        # No event: what a timer with an empty user event does: the configured defaults.
        return {"trigger_type": "TIMER", "user_event": ""}
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as handle:
        return handle.read()


if __name__ == "__main__":
    sys.exit(main())
