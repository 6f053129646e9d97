"""Command line: `python -m modelarts_cleanup invoke|plan|demo|schema`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__
from .cleanup.report import JsonLog
from .cleanup.tables import FORMATS, render_plan
from .environment import function_environment
from .events.payload import payload_schema
from .exceptions import CleanupError, ConfigurationError, RunNotClean
from .settings import text_logs, variable

EXIT_OK, EXIT_NOT_CLEAN, EXIT_INVALID = 0, 1, 2
LOG_FORMAT, LOG_LEVEL = variable("log_format"), variable("log_level")
DEFAULTS = (variable("targets"), variable("selectors"))
PROG = "python -m modelarts_cleanup"
NO_EVENT = (
    f"no event given, and neither {DEFAULTS[0]} nor {DEFAULTS[1]} is set: pass --event FILE, "
    "or --event - (or a pipe) for standard input"
)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Delete Huawei Cloud ModelArts notebook instances, with one result each. "
        "Settings come from the environment (MODELARTS_CLEANUP_*, HUAWEICLOUD_SDK_*).",
    )
    parser.add_argument("--version", action="version", version=f"modelarts-cleanup {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    invoke = commands.add_parser(
        "invoke",
        help="run the function here, for real, with settings from the environment",
        description="Runs the function here, for real, and prints what the handler returns: "
        "the report, or for an API Gateway event the answer APIG gets. Logs go to standard "
        "error: text on a terminal, JSON lines otherwise (MODELARTS_CLEANUP_LOG_FORMAT=json or "
        "text decides). Exit status: 0 succeeded; 1 partial, failed or refused; 2 invalid "
        "payload or configuration (for an API Gateway event: 0 for 200; 1 for 207, 409, 502; "
        "2 for 400, 405, 413, 500).",
    )
    _event_option(invoke)
    invoke.add_argument("--dry-run", action="store_true", help="delete nothing, say what would go")
    invoke.add_argument(
        "--deadline",
        type=_seconds,
        metavar="SECONDS",
        help="time budget, as FunctionGraph's remaining time would give it",
    )
    _verbosity(invoke, "without it, MODELARTS_CLEANUP_LOG_LEVEL (INFO) decides")
    plan = commands.add_parser(
        "plan",
        help="show what a run would delete and which rule picked each instance; delete nothing",
        description="Lists what the selectors name (read-only) and prints the plan: each "
        "instance a run would delete or refuses, with its workspace, owner, days idle and "
        "days old. Deletes nothing. Exit status as for invoke.",
    )
    _event_option(plan)
    plan.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (the default, at most 120 columns), json (the report, as invoke prints "
        "it), csv (every column) or markdown (to paste into a ticket)",
    )
    plan.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    plan.add_argument(
        "--wide", action="store_true", help="every column, whole values, however wide"
    )
    _verbosity(plan, "without it, only warnings and errors")
    commands.add_parser(
        "demo",
        help="run against the embedded local endpoint",
        description="Runs the function against a local ModelArts endpoint started for the "
        "purpose (no account needed): named targets, cleanup by rule, a grace period. Exit "
        "status 0 if each went as expected.",
    )
    commands.add_parser(
        "schema",
        help="print the JSON Schema of the payload, the same inside every envelope",
        description="Prints the JSON Schema (draft 2020-12) of the payload: what --event, a "
        "timer's user event, an API Gateway body and an SMN message hold.",
    )
    return parser, dict(commands.choices)


def _event_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--event",
        metavar="FILE",
        help="the event as JSON: a payload, or a TIMER, API Gateway or SMN event; '-' reads "
        "standard input (so does a pipe without --event); with no event, the configured "
        "MODELARTS_CLEANUP_TARGETS and MODELARTS_CLEANUP_SELECTORS are used",
    )


def _verbosity(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=f"-v: info lines too, -vv: debug lines too; {default}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser, commands = _parsers()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # The command's own usage, not the top level's.
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "schema":
        print(json.dumps(payload_schema(), indent=2))
        return EXIT_OK
    if args.command == "demo":
        try:
            from .testing.demo import run_demo
        except ImportError:
            # The deployed package leaves the local endpoint out.
            print(
                "error: the demo needs the local endpoint (modelarts_cleanup.testing), which "
                "this installation leaves out (the deployed package does): run `make demo` in "
                "a checkout of the source",
                file=sys.stderr,
            )
            return EXIT_INVALID
        return run_demo()
    environ = _environment(os.environ, args, terminal=sys.stderr.isatty())
    if args.command == "plan":
        # A preview for the person at the terminal: the topic's subscribers hear nothing of it.
        return _invoke(args.event, environ, dry_run=True, deadline=None, show=args, publish=False)
    return _invoke(args.event, environ, dry_run=args.dry_run, deadline=args.deadline, show=None)


def _environment(
    environ: Mapping[str, str], args: argparse.Namespace, *, terminal: bool
) -> dict[str, str]:
    """The settings the run sees: the environment, and what the command line decides of logs.

    Text logs on a terminal unless MODELARTS_CLEANUP_LOG_FORMAT says otherwise; `plan` shows
    warnings and errors only, `-v` info lines too, `-vv` debug lines too.
    """
    merged = dict(environ)
    if not merged.get(LOG_FORMAT, "").strip():
        merged[LOG_FORMAT] = "text" if terminal else "json"
    if args.verbose:
        merged[LOG_LEVEL] = "INFO" if args.verbose == 1 else "DEBUG"
    elif args.command == "plan":
        merged[LOG_LEVEL] = "WARNING"
    return merged


def _invoke(
    event_path: str | None,
    environ: Mapping[str, str],
    *,
    dry_run: bool,
    deadline: float | None,
    show: argparse.Namespace | None,
    publish: bool = True,
) -> int:
    """Run the handler's code path and print what it returns, or (`show`) the plan.

    Without a report (an API Gateway answer to a request that ran no cleanup) the exit status
    is 2, as for an invalid payload.
    """
    # Imported here: `schema` needs none of the HTTP stack.
    from .entry import run_function

    log = JsonLog(sys.stderr, text=text_logs(environ))
    try:
        event = _read_event(event_path)
    except OSError as exc:
        log.error(f"cannot read the event file {event_path}: {_reason(exc)}")
        return EXIT_INVALID
    if event is None:
        if not _has_defaults(environ):
            log.error(NO_EVENT)
            return EXIT_INVALID
        # What a timer with an empty user event does: the configured defaults.
        event = {"trigger_type": "TIMER", "user_event": ""}
    reports: list[dict[str, Any]] = []
    try:
        returned: dict[str, Any] = run_function(
            event,
            None,
            environ=environ,
            log_stream=sys.stderr,
            deadline_seconds=deadline,
            force_dry_run=dry_run,
            on_report=reports.append,
            publish=publish,
        )
    except RunNotClean as raised:
        # A timer or SMN run FunctionGraph would count as an error: the report all the same.
        returned = raised.report
    except CleanupError:
        # run_function has already logged why, on stderr.
        return EXIT_INVALID
    report = reports[0] if reports else None
    if show is None:
        print(json.dumps(returned, indent=2, ensure_ascii=False))
    elif report is not None and show.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif report is not None:
        print(render_plan(report, form=show.format, wide=show.wide))
    if report is None:
        return EXIT_INVALID  # an API Gateway answer to a request that ran no cleanup
    return EXIT_OK if report["status"] == "succeeded" else EXIT_NOT_CLEAN


def _read_event(path: str | None) -> object | None:
    """The event's bytes, or None when none was given (no --event, nothing piped in)."""
    if path == "-":
        return sys.stdin.buffer.read()
    if path is not None:
        with open(path, "rb") as handle:
            return handle.read()
    if sys.stdin is None or sys.stdin.isatty():
        return None
    piped = sys.stdin.buffer.read()
    return piped if piped.strip() else None


def _has_defaults(environ: Mapping[str, str]) -> bool:
    """Whether default targets or selectors are set (whether valid is for the run to say)."""
    try:
        merged = function_environment(None, environ)
    except ConfigurationError:
        return True  # the run says what is wrong with RUNTIME_USERDATA
    return any(merged.get(name, "").strip() not in ("", "[]") for name in DEFAULTS)


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


if __name__ == "__main__":
    sys.exit(main())
