"""The documentation (README.md, docs/) and DESIGN.md say what the code does: names, outcomes,
commands. tests/test_doc_examples.py checks every example they show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelarts_cleanup.__main__ import _parsers
from modelarts_cleanup.cleanup.report import Outcome, Reason, Report, RunStatus, summary_log_fields
from modelarts_cleanup.events.apig import ERRORS, STATUS_CODES
from modelarts_cleanup.events.envelopes import parse_event
from modelarts_cleanup.settings import ENV_NAMES
from tests.support import apig_event, smn_event

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DESIGN = (ROOT / "DESIGN.md").read_text(encoding="utf-8")


def page(name: str) -> str:
    return (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")


# Where each subject is documented for users, beside DESIGN.md.
REPORT, PAYLOAD, COMMAND_LINE = (
    page("report"),
    page("payload"),
    page("command-line"),
)
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def test_the_readmes_two_commands_are_make_targets() -> None:
    # That they open the README: test_doc_examples.
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", MAKEFILE, re.MULTILINE)


def test_mutation_testing_is_documented_and_kept_out_of_make_test() -> None:
    development = page("development")
    assert "make mutation" in development
    assert re.search(r"^mutation:", MAKEFILE, re.MULTILINE)
    (test_target,) = re.findall(r"^test:(.*)$", MAKEFILE, re.MULTILINE)
    assert "mutation" not in test_target


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_setting_is_in_design_md() -> None:
    # docs/settings.md has a row for each: test_doc_examples.
    documented = set(re.findall(r"`((?:MODELARTS_CLEANUP|HUAWEICLOUD_SDK)_[A-Z_]+)`", DESIGN))
    assert documented == set(ENV_NAMES)


@pytest.mark.parametrize("doc", ["docs/report.md", "DESIGN.md"])
def test_every_outcome_is_in_the_outcomes_table(doc: str) -> None:
    text = REPORT if doc == "docs/report.md" else DESIGN
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
    assert {o.value for o in Outcome} <= rows


def test_every_reason_is_documented() -> None:
    for reason in Reason:
        assert f"`{reason.value}`" in DESIGN


@pytest.mark.parametrize("doc", ["docs/report.md", "DESIGN.md"])
def test_every_report_and_summary_key_is_documented(doc: str) -> None:
    text = REPORT if doc == "docs/report.md" else DESIGN
    report = Report(RunStatus.SUCCEEDED, False, "notebook", "r", 0, ())
    keys = set(report.to_dict()) | set(summary_log_fields(report)) | set(report.failed_by)
    assert not [k for k in sorted(keys) if f"`{k}`" not in text and f'"{k}"' not in text]


def test_every_command_and_flag_is_documented() -> None:
    _, commands = _parsers()
    for name, command in commands.items():
        assert f"python -m modelarts_cleanup {name}" in COMMAND_LINE
        assert f"python -m modelarts_cleanup {name}" in DESIGN
        flags = {f for action in command._actions for f in action.option_strings}
        for flag in flags - {"-h", "--help", "--verbose", "--json"}:
            assert flag in COMMAND_LINE, flag
            assert flag in DESIGN, flag
    assert "python -m modelarts_cleanup --version" in COMMAND_LINE
    assert "python -m modelarts_cleanup --version" in DESIGN


@pytest.mark.parametrize("doc", ["docs/payload.md", "DESIGN.md"])
def test_every_api_gateway_status_code_is_documented(doc: str) -> None:
    text = PAYLOAD if doc == "docs/payload.md" else DESIGN
    rows = set(re.findall(r"^\| `(\d{3})` \|", text, re.MULTILINE))
    codes = {str(code) for code in STATUS_CODES.values()} | {str(row[1]) for row in ERRORS}
    assert codes <= rows
    for status in STATUS_CODES:
        assert re.search(rf"^\| `{STATUS_CODES[status]}` \| .*`{status.value}`", text, re.MULTILINE)
    for _, _, error, _ in ERRORS:
        assert f"`{error}`" in text


@pytest.mark.parametrize("doc", ["docs/payload.md", "DESIGN.md"])
def test_every_envelope_is_documented(doc: str) -> None:
    text = PAYLOAD if doc == "docs/payload.md" else DESIGN
    for words in ("TIMER", "API Gateway", "SMN", "isBase64Encoded", "smn.message"):
        assert words in text


def test_api_gateway_and_smn_examples_carry_valid_payloads() -> None:
    curl_bodies = re.findall(r"-d '(\{.*?\})'$", PAYLOAD, re.DOTALL | re.MULTILINE)
    apig_body, smn_request = curl_bodies
    assert parse_event(apig_event(apig_body)).targets
    assert parse_event(smn_event(json.loads(smn_request)["message"])).targets
