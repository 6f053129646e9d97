"""Every example in README.md and docs/ is what the code does: JSON examples parse and validate
(payloads, events, reports, log lines, error bodies), commands exist and the offline ones run
against the local endpoint, setting names exist, links resolve. An example that drifts from the
code fails here."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.__main__ import _parsers
from modelarts_cleanup.cleanup.report import Outcome, Result, RunStatus
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.apig import ERRORS
from modelarts_cleanup.events.envelopes import parse_event
from modelarts_cleanup.events.payload import parse_payload, payload_schema
from modelarts_cleanup.events.rules import Selector
from modelarts_cleanup.exceptions import ConfigurationError
from modelarts_cleanup.settings import ENV_NAMES, load_settings
from modelarts_cleanup.testing import FakeModelArts, User
from tests.support import AK, SK, endpoint_environ, local_endpoint

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
COMMAND = "python -m modelarts_cleanup"
# The pages the reference is split into, one subject each.
SUBJECTS = (
    "payload",
    "rules",
    "settings",
    "report",
    "notifications",
    "command-line",
    "deploying",
    "performance",
    "development",
    "modelarts-facts",
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    before: str  # the text just before the fence

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def blocks(page: Path, lang: str | None = None) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match.group(1))
        body = "".join(line[indent:] for line in match.group(3).splitlines(keepends=True))
        line = text.count("\n", 0, match.start()) + 1
        block = Block(
            page, line, match.group(2), body, text[max(0, match.start() - 300) : match.start()]
        )
        if lang is None or block.lang == lang:
            found.append(block)
    return found


def all_blocks(lang: str) -> list[Block]:
    return [b for page in PAGES for b in blocks(page, lang)]


def saved_name(block: Block) -> str | None:
    """The file name the text before a JSON example tells the reader to save it as."""
    names = re.findall(r"`([\w.-]+\.json)`", block.before.rstrip().split("\n\n")[-1])
    return names[-1] if names else None


def code_texts(page: Path) -> list[str]:
    """Everything shown as code: fenced blocks, indented blocks, inline code spans."""
    text = page.read_text(encoding="utf-8")
    fenced = [b.body for b in blocks(page)]
    outside = _FENCE.sub("", text)
    indented = [line.strip() for line in outside.splitlines() if line.startswith("    ")]
    inline = re.findall(r"`([^`\n]+)`", outside)
    return [*fenced, *indented, *inline]


def commands(page: Path) -> list[str]:
    """Each `python -m modelarts_cleanup ...` shown, as written (comments and redirections cut)."""
    found = []
    for code in code_texts(page):
        for line in code.splitlines():
            at = line.find(COMMAND)
            if at >= 0:
                shown = line[at:].split("#", 1)[0].split(">", 1)[0].strip()
                found.append(shown)
    return found


def make_targets(page: Path) -> list[str]:
    return [
        t for code in code_texts(page) for t in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code)
    ]


# -- what the code really answers, to hold the examples against -------------------------------

FLEET = "0123456789abcdef0123456789abcdef"
NAMED = "ed43aef64dff4e5c81cb84b71adcb3fd"
EVENT_INSTANCES = ("6fa459ea-ee8a-3ca4-894e-db77e160355e", "0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b")
NOW_MS = int(time.time() * 1000)
HOUR = 3_600_000


def populate(fake: FakeModelArts) -> None:
    """A small fleet for the examples' rules to pick from: idle, recent, protected."""
    bob = User("b" * 32, "bob")
    fake.add_instance(FLEET, name="tmp-old", status="STOPPED", updated_ms=NOW_MS - 300 * HOUR)
    fake.add_instance(
        FLEET, name="old-course", status="STOPPED", updated_ms=NOW_MS - 900 * HOUR, owner=bob
    )
    fake.add_instance(FLEET, name="fresh", status="STOPPED", updated_ms=NOW_MS - HOUR)
    fake.add_instance(FLEET, name="training", status="RUNNING", updated_ms=NOW_MS - 300 * HOUR)
    fake.add_instance(NAMED, name="named", status="STOPPED")
    # The notebooks the example events name (events/*.json), so that their plans delete something.
    for instance_id in EVENT_INSTANCES:
        fake.add_instance(NAMED, instance_id, name="from-an-event", status="STOPPED")


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    """A real dry run of a grace rule against the local endpoint: its report and summary line."""
    rule = {"project_id": FLEET, "statuses": ["STOPPED"], "idle_hours": 168, "grace_hours": 48}
    log = io.StringIO()
    with local_endpoint() as fake:
        populate(fake)
        report = run_function(
            {"selectors": [rule], "dry_run": True},
            None,
            environ=endpoint_environ(fake.url),
            log_stream=log,
        )
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    (summary,) = [line for line in lines if line.get("message") == "run finished"]
    assert report["results"] and report["selectors"]
    return {"report": report, "summary": summary}


# -- the pages ---------------------------------------------------------------------------------


def test_the_readme_is_short_and_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    opening = "\n".join(lines[:15])
    assert "make demo" in opening and "make test" in opening


def test_the_reference_has_one_page_per_subject_and_the_readme_maps_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {p.stem for p in DOCS.glob("*.md")} == set(SUBJECTS)
    for subject in SUBJECTS:
        assert f"](docs/{subject}.md)" in readme, subject


# -- JSON examples -----------------------------------------------------------------------------

JSON_BLOCKS = all_blocks("json")


def test_there_are_json_examples_of_every_kind() -> None:
    kinds = {kind(json.loads(b.body)) for b in JSON_BLOCKS}
    assert kinds == {"payload", "event", "report", "summary line", "error body"}


def kind(obj: Any) -> str:
    if "trigger_type" in obj or "record" in obj or "httpMethod" in obj:
        return "event"
    if "error" in obj:
        return "error body"
    if obj.get("message") == "run finished":
        return "summary line"
    if "status" in obj and "counts" in obj:
        return "report"
    return "payload"


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=str)
def test_json_example_parses_and_is_what_the_code_gives(block: Block, real: dict[str, Any]) -> None:
    obj = json.loads(block.body)
    assert isinstance(obj, dict), block
    what = kind(obj)
    if what == "payload":
        parse_payload(obj)
    elif what == "event":
        parse_event(obj)
    elif what == "error body":
        assert (obj["error"], obj["message"]) in {(e, m) for _, _, e, m in ERRORS}, block
        assert set(obj) <= {"error", "message", "problems", "request_id"}, block
    elif what == "summary line":
        assert set(obj) == set(real["summary"]), block
        assert set(obj["counts"]) == {o.value for o in Outcome}
    else:
        check_report(obj, real["report"], str(block))


def check_report(obj: dict[str, Any], real: dict[str, Any], where: str) -> None:
    assert set(obj) == set(real), where
    assert obj["status"] in {s.value for s in RunStatus}, where
    assert set(obj["counts"]) == {o.value for o in Outcome}, where
    assert set(obj["failed_by"]) == set(real["failed_by"]), where
    for result in obj["results"]:
        assert set(result) == set(Result.__dataclass_fields__), where
        assert result["outcome"] in {o.value for o in Outcome}, where
    for entry in obj["selectors"]:
        assert set(entry) == set(real["selectors"][0]), where
    assert sum(obj["counts"].values()) == len(obj["results"]), where


def test_every_key_of_a_rule_is_in_the_rules_table() -> None:
    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    section = text.split("## A rule", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert rows == set(Selector.model_fields)


def test_every_key_of_the_payload_is_in_its_table() -> None:
    text = (DOCS / "payload.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))
    assert set(payload_schema()["properties"]) <= rows


# -- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_make_target_shown_exists(page: Path) -> None:
    for target in make_targets(page):
        assert re.search(rf"^{re.escape(target)}:", MAKEFILE, re.MULTILINE), f"make {target}"


def _subcommands() -> dict[str, Any]:
    return _parsers()[1]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_command_shown_exists_with_its_flags(page: Path) -> None:
    for shown in commands(page):
        words = shown[len(COMMAND) :].split()
        if any("[" in w for w in words):  # a synopsis: the command and its flags exist
            sub = _subcommands()[words[0]]
            known = {flag for action in sub._actions for flag in action.option_strings}
            for flag in re.findall(r"--[\w-]+|(?<![\w-])-\w\b", " ".join(words[1:])):
                assert flag in known, f"{page.name}: {shown}: {flag}"
        else:
            try:
                _parsers()[0].parse_args(shlex.split(shown)[3:])
            except SystemExit as exc:  # --version and --help end the parse, successfully
                if exc.code != 0:
                    pytest.fail(f"{page.name}: `{shown}` is not a command the command line takes")


RUNNABLE = [
    (page, shown)
    for page in PAGES
    for shown in dict.fromkeys(commands(page))
    if not any("[" in w for w in shown.split()) and shown.split()[3] in ("schema", "plan", "invoke")
]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeModelArts]:
    with local_endpoint() as fake:
        populate(fake)
        yield fake


@pytest.mark.parametrize(
    ("page", "shown"), RUNNABLE, ids=[f"{p.name}: {s[len(COMMAND) + 1 :]}" for p, s in RUNNABLE]
)
def test_every_offline_command_runs_against_the_local_endpoint(
    page: Path, shown: str, endpoint: FakeModelArts, tmp_path: Path, real: dict[str, Any]
) -> None:
    """Run as shown, in a directory holding `events/` and every file the page says to save, with
    the demo's settings pointing at the local endpoint."""
    shutil.copytree(ROOT / "events", tmp_path / "events")
    for block in blocks(page, "json"):
        if name := saved_name(block):
            (tmp_path / name).write_text(block.body, encoding="utf-8")
    args = shlex.split(shown)[3:]
    if "--event" in args:
        event = args[args.index("--event") + 1]
        assert (tmp_path / event).is_file(), f"{page.name}: `{shown}`: {event} is not given"
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_"))
    }
    environ.update(endpoint_environ(endpoint.url, access_key=AK, secret_key=SK))
    done = subprocess.run(
        [sys.executable, "-m", "modelarts_cleanup", *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (shown, done.stdout[-2000:], done.stderr[-2000:])
    deleting = [r for r in endpoint.requests if r.method != "GET"]
    if args[0] == "schema":
        assert json.loads(done.stdout) == payload_schema()
    elif args[0] == "plan" and "--json" not in args:
        assert "would_" in done.stdout or "marked" in done.stdout, done.stdout
    else:
        answer = json.loads(done.stdout)
        if "statusCode" in answer:  # API Gateway
            assert answer["statusCode"] == 200
            answer = json.loads(answer["body"])
        check_report(answer, real["report"], shown)
        assert answer["dry_run"] is True  # every runnable example is a dry run
    assert not deleting, deleting


def test_the_readmes_first_rule_needs_only_the_listing_policy() -> None:
    """The README says a user allowed what deploy/policies/selectors.json allows can run its
    plan: run it with exactly those actions."""
    readme = ROOT / "README.md"
    (rule,) = [b for b in blocks(readme, "json") if saved_name(b) == "my-rule.json"]
    policy = json.loads((ROOT / "deploy" / "policies" / "selectors.json").read_text("utf-8"))
    with local_endpoint() as fake:
        populate(fake)
        fake.permissions = {a for s in policy["Statement"] for a in s["Action"]}
        report = run_function(
            json.loads(rule.body),
            None,
            environ=endpoint_environ(fake.url),
            log_stream=io.StringIO(),
            force_dry_run=True,
        )
    assert report["status"] == "succeeded", report
    assert {r["outcome"] for r in report["results"]} == {"would_delete"}
    assert not [r for r in fake.requests if r.status == 403]


# -- settings ----------------------------------------------------------------------------------

_SETTING = re.compile(r"\b(?:MODELARTS_CLEANUP|HUAWEICLOUD_SDK)_[A-Z][A-Z0-9_]*[A-Z0-9]")
# A name shown as the mistake it is: the function's own words for a variable that is no setting.
_NOT_A_SETTING = re.compile(r"\b(MODELARTS_CLEANUP_[A-Z0-9_]+): not a setting")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_setting_named_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    named = set(_SETTING.findall(text)) - set(_NOT_A_SETTING.findall(text))
    assert not named - ENV_NAMES, sorted(named - ENV_NAMES)


def test_a_misspelt_setting_shown_in_the_docs_is_refused_in_those_words() -> None:
    shown = {n for page in PAGES for n in _NOT_A_SETTING.findall(page.read_text(encoding="utf-8"))}
    assert shown, "the settings page shows what a misspelt name gets"
    for name in shown:
        assert name not in ENV_NAMES
        with pytest.raises(ConfigurationError, match=f"{name}: not a setting; did you mean"):
            load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", name: "true"})


def test_the_settings_page_has_a_row_for_every_setting() -> None:
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    rows = {
        name
        for row in re.findall(r"^\| (.*?) \|", text, re.MULTILINE)
        for name in _SETTING.findall(row)
    }
    assert rows == set(ENV_NAMES)


EXPORTS = [
    (block, line)
    for block in all_blocks("sh")
    for line in block.body.splitlines()
    if line.startswith("export ") and "..." not in line
]


@pytest.mark.parametrize(("block", "line"), EXPORTS, ids=[str(b) for b, _ in EXPORTS])
def test_every_setting_example_is_accepted(block: Block, line: str) -> None:
    assignments = dict(word.split("=", 1) for word in shlex.split(line)[1:])
    settings = load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", **assignments})
    assert settings is not None


# -- links -------------------------------------------------------------------------------------


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    slugs = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


LINKED = ["DESIGN.md", "deploy/terraform/README.md"]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_link_resolves(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_file(), f"{page.name}: {link}"
        if anchor:
            assert anchor in anchors(target), f"{page.name}: {link}"


def test_the_serverless_devs_pin_matches_the_templates_specification() -> None:
    """template.yaml's `edition: 1.0.0` is the 2.x CLI's specification; 3.x reads 3.0.0."""
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    assert re.search(r"^edition: 1\.0\.0$", template, re.MULTILINE)
    for page in (ROOT / "README.md", DOCS / "deploying.md"):
        pins = re.findall(r"@serverless-devs/s@(\d+)\.\d+\.\d+", page.read_text(encoding="utf-8"))
        assert pins and set(pins) == {"2"}, page.name


def test_every_example_event_named_exists_and_is_an_event() -> None:
    named = {
        n for page in PAGES for n in re.findall(r"events/([\w-]+\.json)", page.read_text("utf-8"))
    }
    assert named
    for name in sorted(named):
        event = json.loads((ROOT / "events" / name).read_text(encoding="utf-8"))
        # An empty timer payload means the settings' defaults: give it one, as a template does.
        rule = Selector(project_id=FLEET, statuses=("STOPPED",))
        payload = parse_event(event, default_selectors=[rule])
        assert payload.targets or payload.selectors, name
