"""The command line as a person meets it: its logs, its errors, its help, and the plan's formats.

Each run is a child process over real sockets against the local endpoint; "on a terminal" runs
give the child a pseudo-terminal for standard error, as a shell would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from modelarts_cleanup import __version__
from modelarts_cleanup.cleanup.tables import render_plan
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ConfigurationError, PayloadError
from modelarts_cleanup.testing import FakeModelArts
from modelarts_cleanup.testing.demo import FLEET_PROJECT, RULE, WORKSPACE_NAMES, seed_demo_fleet
from tests.support import FunctionGraphContext, endpoint_environ, run_command

PLAN = json.dumps({"selectors": [RULE]})
MISSING = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
NAMED = json.dumps({"targets": [{"project_id": FLEET_PROJECT, "instance_id": MISSING}]})
# What pydantic says in its own words; none of it may reach a person.
PYDANTIC_WORDING = ("Input should", "Field required", "after validation", "Value error", "a valid")


def plan(fake: FakeModelArts, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = endpoint_environ(fake.url, **{"MODELARTS_CLEANUP_MAX_DELETIONS": "200", **env})
    return run_command("plan", "--event", "-", *args, stdin=PLAN, env=environ)


def on_terminal(*args: str, stdin: str | None = "", **env: str) -> tuple[int, str, str]:
    """`python -m modelarts_cleanup ARGS` with standard error a terminal: (status, out, err).

    `stdin` None: standard input is the terminal too, and nobody types.
    """
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_"))
    }
    child_env.update(env)
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "modelarts_cleanup", *args],
        stdin=follower if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=child_env,
    )
    os.close(follower)
    err: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            err.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = child.communicate(None if stdin is None else stdin.encode(), timeout=60)
    reader.join(timeout=60)
    os.close(leader)
    # A terminal turns each line break into CR LF.
    return child.returncode, out.decode(), b"".join(err).decode().replace("\r\n", "\n")


@pytest.fixture
def demo(fake: FakeModelArts) -> FakeModelArts:
    seed_demo_fleet(fake)
    return fake


# The plan


def test_plan_of_the_demo_fleet_is_a_table_of_120_columns_with_names_and_nothing_else(
    demo: FakeModelArts,
) -> None:
    done = plan(demo)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    header = lines[0].split()
    assert header[:7] == [
        "instance_id",
        "name",
        "status",
        "owner",
        "workspace",
        "idle_days",
        "age_days",
    ]
    rows = [line.split() for line in lines[2:] if line.split()[0].endswith("~")]
    assert rows, done.stdout
    assert {row[4] for row in rows} == {"default", *WORKSPACE_NAMES.values()}
    assert {row[3] for row in rows} == {"alice", "bob", "chen"}
    assert not any(workspace_id in done.stdout for workspace_id in WORKSPACE_NAMES)
    assert "would delete" in lines[-1]


def test_plan_on_a_terminal_writes_nothing_on_stderr(demo: FakeModelArts) -> None:
    environ = endpoint_environ(demo.url, MODELARTS_CLEANUP_MAX_DELETIONS="200")
    status, out, err = on_terminal("plan", "--event", "-", stdin=PLAN, **environ)
    assert (status, err) == (0, "")
    assert "team-vision" in out


def test_plan_verbose_logs_each_instance_and_plan_quiet_still_says_warnings(
    demo: FakeModelArts,
) -> None:
    verbose = plan(demo, "-v")
    levels = {json.loads(line)["level"] for line in verbose.stderr.splitlines()}
    assert levels == {"INFO"}
    debug = plan(demo, "-vv")
    assert "DEBUG" in {json.loads(line)["level"] for line in debug.stderr.splitlines()}
    # A plan the cap refuses is not quiet: an error says so.
    capped = plan(demo, MODELARTS_CLEANUP_MAX_DELETIONS="2")
    assert capped.returncode == 1
    assert {json.loads(line)["level"] for line in capped.stderr.splitlines()} == {
        "ERROR",
        "WARNING",
    }


def test_plan_wide_shows_whole_ids_and_every_field(demo: FakeModelArts) -> None:
    report = json.loads(plan(demo, "--format", "json").stdout)
    wide = plan(demo, "--wide").stdout
    assert all(r["instance_id"] in wide for r in report["results"])
    header = wide.splitlines()[0].split()
    assert {"project_id", "owner_id", "workspace_id", "created", "updated", "tags"} <= set(header)
    assert max(len(line) for line in wide.splitlines()) > 120


def test_plan_json_is_the_report(demo: FakeModelArts) -> None:
    report = json.loads(plan(demo, "--format", "json").stdout)
    assert report["dry_run"] is True
    assert {r["outcome"] for r in report["results"]} == {"would_delete", "refused"}
    assert json.loads(plan(demo, "--json").stdout)["results"] == report["results"]
    entry = report["selectors"][0]["workspaces"]
    assert [w["workspace_name"] for w in entry] == ["default", *WORKSPACE_NAMES.values()]


def test_plan_csv_has_one_row_per_result_and_every_column(demo: FakeModelArts) -> None:
    report = json.loads(plan(demo, "--format", "json").stdout)
    done = plan(demo, "--format", "csv")
    assert done.stderr == ""
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == len(report["results"])
    by_id = {row["instance_id"]: row for row in rows}
    for result in report["results"]:
        row = by_id[result["instance_id"]]
        assert row["outcome"] == result["outcome"]
        assert row["owner"] == result["owner"]["name"]
        assert row["owner_id"] == result["owner"]["id"]
        assert row["workspace_id"] == result["workspace_id"]
        assert row["workspace"] == WORKSPACE_NAMES.get(result["workspace_id"], "default")
        assert row["reason"] == (result["reason"] or "")
        assert row["created"] == result["created"]
    # Every field of a result has its column, whatever fields the report grows.
    shown_as = {"instance_name": "name", "listed_status": "status"}
    assert {shown_as.get(k, k) for k in report["results"][0]} <= set(rows[0])


def test_plan_markdown_is_a_table_to_paste(demo: FakeModelArts) -> None:
    report = json.loads(plan(demo, "--format", "json").stdout)
    lines = plan(demo, "--format", "markdown").stdout.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[1] == "| " + " | ".join(["---"] * (table[0].count("|") - 1)) + " |"
    assert len(table) == 2 + len(report["results"])
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "| team-vision |" in "\n".join(table)
    assert any(line.startswith("- would delete") for line in lines)


def test_markdown_and_table_cells_stay_in_their_column() -> None:
    result = {
        "project_id": FLEET_PROJECT,
        "instance_id": MISSING,
        "outcome": "would_delete",
        "instance_name": "a|b\nc",
        "listed_status": "STOPPED",
        "owner": {"id": "a" * 32, "name": "x" * 200},
        "matched_by": "selectors[0]",
    }
    report = {"results": [result], "selectors": [], "counts": {"would_delete": 1, "refused": 0}}
    report["status"] = "succeeded"
    markdown = render_plan(report, form="markdown").splitlines()
    assert markdown[2].startswith(f"| {MISSING} | a\\|b c | STOPPED | ")
    table = render_plan(report).splitlines()
    assert max(len(line) for line in table) <= 120
    owner = next(cell for cell in table[2].split() if cell.startswith("xxx"))
    assert owner.endswith("~")  # cut, and the cut shown
    assert len(owner) < 200


def test_plan_with_nothing_selected_says_so() -> None:
    report = {
        "results": [],
        "selectors": [],
        "counts": {"would_delete": 0, "refused": 0},
        "status": "succeeded",
    }
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert render_plan(report, now=now).splitlines()[0] == "nothing selected"
    assert render_plan(report, form="csv", now=now).splitlines()[0].startswith("project_id,")


# Logs: text for people on a terminal, JSON lines for machines


def test_invoke_logs_text_on_a_terminal(fake: FakeModelArts) -> None:
    environ = endpoint_environ(fake.url)
    status, out, err = on_terminal("invoke", "--event", "-", stdin=NAMED, **environ)
    assert status == 0
    assert json.loads(out)["results"][0]["outcome"] == "already_absent"
    assert err.splitlines() == [
        # read before its DELETE (protect tags), found gone: no DELETE, so no HTTP status
        f"info: {MISSING}: already_absent (matched_by=targets)",
        "info: run finished (status=succeeded, dry_run=false, already_absent=1)",
    ]


def test_log_format_json_wins_on_a_terminal_and_text_in_a_pipe(fake: FakeModelArts) -> None:
    environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_LOG_FORMAT="json")
    _, _, err = on_terminal("invoke", "--event", "-", stdin=NAMED, **environ)
    assert [json.loads(line)["level"] for line in err.splitlines()] == ["INFO", "INFO"]
    piped = run_command(
        "invoke",
        "--event",
        "-",
        stdin=NAMED,
        env=endpoint_environ(fake.url, MODELARTS_CLEANUP_LOG_FORMAT="Text"),
    )
    assert piped.stderr.splitlines()[-1].startswith("info: run finished (")


def test_the_function_logs_json_unless_its_settings_say_text(fake: FakeModelArts) -> None:
    event = json.loads(NAMED)

    def logged(context: object = None, **env: str) -> list[str]:
        stream = io.StringIO()
        run_function(event, context, environ=endpoint_environ(fake.url, **env), log_stream=stream)
        return stream.getvalue().splitlines()

    assert all(json.loads(line)["service"] == "modelarts-cleanup" for line in logged())
    assert logged(MODELARTS_CLEANUP_LOG_FORMAT="text")[-1].startswith("info: run finished")
    context = FunctionGraphContext(user_data={"MODELARTS_CLEANUP_LOG_FORMAT": "text"})
    assert logged(context)[-1].startswith("info: run finished")


def test_an_unknown_log_format_is_a_configuration_error(fake: FakeModelArts) -> None:
    stream = io.StringIO()
    environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_LOG_FORMAT="yaml")
    with pytest.raises(ConfigurationError) as raised:
        run_function(json.loads(NAMED), None, environ=environ, log_stream=stream)
    assert "MODELARTS_CLEANUP_LOG_FORMAT: must be 'json' or 'text'" in str(raised.value)
    assert json.loads(stream.getvalue())["level"] == "ERROR"


# Errors in our own words, located, with the fix


def test_an_error_on_a_terminal_is_text_with_its_line_breaks(fake: FakeModelArts) -> None:
    environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_MAX_ATTEMPTS="zero")
    status, out, err = on_terminal("invoke", "--event", "-", stdin=NAMED, **environ)
    assert (status, out) == (2, "")
    assert err == (
        "error: invalid configuration:\n"
        "  - MODELARTS_CLEANUP_MAX_ATTEMPTS: must be a whole number\n"
    )


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ({"statuses": []}, "selectors[0].statuses: must not be empty"),
        ({}, "selectors[0].statuses: required"),
        (
            {"statuses": ["STOPPED"], "idle_hours": 0},
            "selectors[0].idle_hours: must be more than 0",
        ),
        (
            {"statuses": ["STOPPED"], "grace_hours": 0.5},
            "selectors[0].grace_hours: must be at least 1",
        ),
        ({"statuses": ["STOPPED"], "owners": "bob"}, "selectors[0].owners: must be a list"),
        (
            {"statuses": ["STOPPED"], "name_pattern": ""},
            "selectors[0].name_pattern: must not be empty",
        ),
        (
            {"statuses": ["STOPPED"], "exclude_names": ["x"] * 51},
            "selectors[0].exclude_names: must have at most 50 entries, not 51",
        ),
        (
            {"statuses": ["STOPPED"], "idle_hours": "72"},
            "selectors[0].idle_hours: must be a number",
        ),
    ],
)
def test_payload_problems_are_in_our_words(
    fake: FakeModelArts, selector: dict[str, Any], problem: str
) -> None:
    event = json.dumps({"selectors": [{"project_id": FLEET_PROJECT, **selector}]})
    environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_LOG_FORMAT="text")
    done = run_command("plan", "--event", "-", stdin=event, env=environ)
    assert done.returncode == 2
    assert done.stderr == f"error: invalid payload (1 problem):\n  - {problem}\n"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MAX_ATTEMPTS", "99", "must be at most 10"),
        ("CONCURRENCY", "0", "must be at least 1"),
        ("READ_TIMEOUT", "1e9", "must be at most 300"),
        ("LOG_LEVEL", "loud", "must be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("API", "v3", "must be 'notebook' or 'devenviron'"),
        ("DRY_RUN", "perhaps", "must be true or false (or 1/0, yes/no, on/off)"),
        ("TARGETS", "{}", "[0]: must be an object"),
        ("TARGETS", '[{"project_id": "' + FLEET_PROJECT + '"}]', "[0].instance_id: required"),
    ],
)
def test_setting_problems_are_in_our_words(name: str, value: str, problem: str) -> None:
    environ = {"MODELARTS_CLEANUP_REGION": "cn-north-4", f"MODELARTS_CLEANUP_{name}": value}
    with pytest.raises(ConfigurationError) as raised:
        run_function(json.loads(NAMED), None, environ=environ, log_stream=io.StringIO())
    separator = "" if problem.startswith("[") else ": "
    assert f"  - MODELARTS_CLEANUP_{name}{separator}{problem}" in str(raised.value).splitlines()
    assert not any(words in str(raised.value) for words in PYDANTIC_WORDING)


@pytest.mark.parametrize(
    "payload",
    [
        {"targets": None},
        {"targets": [["a", "b"]]},
        {"targets": [{"project_id": 5, "instance_id": None}]},
        {"targets": [], "dry_run": "yes"},
        {"selectors": ["rule"]},
        {"selectors": [{"project_id": FLEET_PROJECT, "statuses": ["NAPPING"], "pools": 3}]},
        {"selectors": [{"project_id": FLEET_PROJECT, "statuses": ["STOPPED"], "tags": [7]}]},
    ],
)
def test_no_pydantic_wording_reaches_a_person(payload: dict[str, Any]) -> None:
    from modelarts_cleanup.events.payload import parse_payload

    with pytest.raises(PayloadError) as raised:
        parse_payload(payload)
    assert not any(words in str(raised.value) for words in PYDANTIC_WORDING), raised.value


def test_invoke_without_an_event_says_no_event_was_given(fake: FakeModelArts) -> None:
    environ = endpoint_environ(fake.url, MODELARTS_CLEANUP_LOG_FORMAT="text")
    done = run_command("invoke", env=environ)  # standard input empty
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: no event given, and neither MODELARTS_CLEANUP_TARGETS nor "
        "MODELARTS_CLEANUP_SELECTORS is set: pass --event FILE, or --event - (or a pipe) for "
        "standard input\n"
    )
    status, _, err = on_terminal("invoke", stdin=None, **endpoint_environ(fake.url))
    assert status == 2
    assert err.startswith("error: no event given")
    assert fake.requests == []


def test_invoke_without_an_event_reads_a_pipe_or_the_configured_defaults(
    fake: FakeModelArts,
) -> None:
    piped = run_command("invoke", stdin=NAMED, env=endpoint_environ(fake.url))
    assert json.loads(piped.stdout)["results"][0]["outcome"] == "already_absent"
    defaults = run_command(
        "invoke", env=endpoint_environ(fake.url, MODELARTS_CLEANUP_TARGETS=f"{FLEET_PROJECT}")
    )
    assert defaults.returncode == 2  # a default target is project/instance: the setting says
    assert "MODELARTS_CLEANUP_TARGETS" in defaults.stderr
    assert "no event given" not in defaults.stderr


def test_an_event_file_that_cannot_be_read_is_named(tmp_path: Any) -> None:
    done = run_command(
        "invoke",
        "--event",
        str(tmp_path / "missing.json"),
        env={"MODELARTS_CLEANUP_LOG_FORMAT": "text"},
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"error: cannot read the event file {tmp_path / 'missing.json'}: "
        "no such file or directory\n"
    )


# Help, usage and version


@pytest.mark.parametrize("command", ["invoke", "plan", "demo", "schema"])
def test_a_bad_flag_prints_the_commands_own_usage(command: str) -> None:
    done = run_command(command, "--bogus", env={})
    assert done.returncode == 2
    assert done.stderr.startswith(f"usage: python -m modelarts_cleanup {command} [-h]")
    assert done.stderr.endswith(
        f"python -m modelarts_cleanup {command}: error: unrecognized arguments: --bogus\n"
    )


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("invoke", "Runs the function here, for real"),
        ("plan", "Deletes nothing."),
        ("demo", "Runs the function against a local ModelArts endpoint"),
        ("schema", "Prints the JSON Schema"),
    ],
)
def test_every_command_describes_itself(command: str, says: str) -> None:
    done = run_command(command, "--help", env={})
    assert done.returncode == 0
    assert says in " ".join(done.stdout.split())


def test_version() -> None:
    done = run_command("--version", env={})
    assert (done.returncode, done.stdout) == (0, f"modelarts-cleanup {__version__}\n")


def test_a_timer_run_refused_by_the_cap_prints_its_report_and_says_why_it_is_an_error(
    fake: FakeModelArts,
) -> None:
    ids = [fake.add_instance(FLEET_PROJECT) for _ in range(3)]
    targets = [{"project_id": FLEET_PROJECT, "instance_id": i} for i in ids]
    timer = json.dumps({"trigger_type": "TIMER", "user_event": json.dumps({"targets": targets})})
    env = endpoint_environ(fake.url, MODELARTS_CLEANUP_MAX_DELETIONS="2")
    done = run_command("invoke", "--event", "-", stdin=timer, env=env)
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "refused"
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if "FAIL_ON" in x]
    assert line["message"] == (
        "the run ended refused, a status MODELARTS_CLEANUP_FAIL_ON makes an invocation error "
        "(for FunctionGraph's metrics, retries and failure destination); its results and "
        "summary were logged before this line"
    )
    assert fake.requests == []  # refused: nothing was sent, the guard's reads included


def test_demo_without_the_local_endpoint_says_where_to_run_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelarts_cleanup.__main__ import main

    # As in the deployed package, which leaves modelarts_cleanup.testing out.
    monkeypatch.setitem(sys.modules, "modelarts_cleanup.testing.demo", None)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        "error: the demo needs the local endpoint (modelarts_cleanup.testing), which this "
        "installation leaves out (the deployed package does): run `make demo` in a checkout of "
        "the source\n"
    )
