"""The example events run: every event in events/ through `plan`, against the local endpoint with
the default settings. (The commands the README and docs/ show run in test_doc_examples.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from modelarts_cleanup.testing import FakeModelArts
from tests.support import endpoint_environ, run_command

ROOT = Path(__file__).resolve().parent.parent
EVENTS = sorted(p.name for p in (ROOT / "events").glob("*.json"))


def template_selectors() -> str:
    """MODELARTS_CLEANUP_SELECTORS as template.yaml ships it, its variables filled in."""
    template = yaml.safe_load((ROOT / "template.yaml").read_text(encoding="utf-8"))
    (service,) = template["services"].values()
    raw = service["props"]["function"]["environmentVariables"]["MODELARTS_CLEANUP_SELECTORS"]
    return re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(template["vars"][m.group(1)]), raw)


def settings_for(name: str, url: str) -> dict[str, str]:
    """The default settings; the old API's example says which API it is for, and the empty
    timer event needs the rules the template configures."""
    extra = {}
    if "devenviron" in name:
        extra["MODELARTS_CLEANUP_API"] = "devenviron"
    if name == "timer-defaults.json":
        extra["MODELARTS_CLEANUP_SELECTORS"] = template_selectors()
    return endpoint_environ(url, **extra)


@pytest.mark.parametrize("name", EVENTS)
def test_every_example_event_runs_through_plan(fake: FakeModelArts, name: str) -> None:
    done = run_command(
        "plan", "--event", str(ROOT / "events" / name), env=settings_for(name, fake.url)
    )
    assert done.returncode == 0, done.stderr
    assert "status succeeded" in done.stdout
    # Only reads: the named targets, or the rules' listings.
    assert fake.requests and {r.method for r in fake.requests} == {"GET"}


def test_there_is_an_old_api_example() -> None:
    old = [n for n in EVENTS if "devenviron" in n]
    assert old
    for name in old:
        text = (ROOT / "events" / name).read_text(encoding="utf-8")
        assert '"DE-' in text


def test_notebook_examples_name_no_old_api_ids() -> None:
    for name in EVENTS:
        if "devenviron" not in name:
            assert "DE-" not in (ROOT / "events" / name).read_text(encoding="utf-8"), name
