"""Hostile and broken events: each is refused with one clear error, and no request is ever sent.

Every case goes through the whole function (`run_function`) as raw bytes, and, when the bytes are
JSON at all, a second time already decoded (as FunctionGraph hands events over). A representative
dozen also go through `python -m modelarts_cleanup invoke --event -` as a user would run it: exit
status 2, nothing on stdout, the reason on stderr. Then every case goes again inside each envelope
(a TIMER event's user_event, an API Gateway body in Base64 and as text, an SMN message alone and
after a valid one): refused the same way, and under API Gateway answered 400 or 413, not raised.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.payload import MAX_PAYLOAD_BYTES
from modelarts_cleanup.exceptions import PayloadError
from modelarts_cleanup.testing import FakeModelArts
from tests.support import answer_body, apig_event, endpoint_environ, smn_event

P = "ed43aef64dff4e5c81cb84b71adcb3fd"
I = "6fa459ea-ee8a-3ca4-894e-db77e160355e"  # noqa: E741
LIMIT = "more than the 1048576 allowed"
BAD_PROJECT = "project_id: must be 32 lowercase hexadecimal characters"
BAD_INSTANCE = "instance_id: must be a lowercase UUID, optionally prefixed 'DE-'"
NOT_A_STRING = "must be a string"
NOT_UNICODE = "must be valid Unicode text"
NOT_A_BOOLEAN = "dry_run: must be true or false"

GOOD = json.dumps({"targets": [{"project_id": P, "instance_id": I}]})

NO_DEFAULTS = (
    "user_event: empty, and neither MODELARTS_CLEANUP_TARGETS nor MODELARTS_CLEANUP_SELECTORS"
)


def j(document: object) -> bytes:
    return json.dumps(document).encode("utf-8")


def targets(project: object = P, instance: object = I, **extra: object) -> bytes:
    return j({"targets": [{"project_id": project, "instance_id": instance}], **extra})


def timer(user_event: object, **extra: object) -> bytes:
    return j(
        {"trigger_type": "TIMER", "trigger_name": "nightly", "user_event": user_event, **extra}
    )


def nested(depth: int, *, objects: bool = False) -> object:
    value: object = {}
    for _ in range(depth):
        value = {"a": value} if objects else [value]
    return value


def with_extra(raw: str, tail: bytes) -> bytes:
    """The payload with raw JSON text spliced in before its closing brace."""
    return raw.encode("utf-8")[:-1] + tail + b"}"


@dataclass(frozen=True)
class Hostile:
    event: bytes | dict[str, Any]
    says: str  # what the error must say (location and reason)
    decoded: bool = True  # also send it decoded, when the bytes are JSON at all


CASES: dict[str, Hostile] = {
    # Not JSON, or not UTF-8.
    "not_json": Hostile(b"delete everything", "event: not valid JSON"),
    "empty": Hostile(b"", "event: not valid JSON"),
    "whitespace_and_newlines": Hostile(b" \n\t\r\n ", "event: not valid JSON"),
    "single_quotes": Hostile(GOOD.replace('"', "'").encode(), "event: not valid JSON"),
    "trailing_comma": Hostile(GOOD.replace("}]", "},]").encode(), "event: not valid JSON"),
    "comment": Hostile(b'{"targets": [] /* everything */}', "event: not valid JSON"),
    "trailing_garbage": Hostile(GOOD.encode() + b"; rm -rf /", "event: not valid JSON (Extra data"),
    "two_documents": Hostile(GOOD.encode() * 2, "event: not valid JSON (Extra data"),
    "invalid_utf8": Hostile(targets().replace(P.encode(), b"\xff\xfe" * 16), "not valid UTF-8"),
    "utf16": Hostile(GOOD.encode("utf-16"), "event: not valid UTF-8"),
    "utf8_bom": Hostile(b"\xef\xbb\xbf" + GOOD.encode(), "event: not valid JSON"),
    "raw_nul_byte": Hostile(GOOD.encode() + b"\x00", "event: contains a NUL character"),
    # A number of more than 4300 digits makes json.loads raise a plain ValueError (Python's limit
    # on integer string conversion), not JSONDecodeError: still an invalid payload, exit 2.
    "huge_integer": Hostile(with_extra(GOOD, b', "dry_run": ' + b"9" * 5000), "event: "),
    "nan_as_dry_run": Hostile(with_extra(GOOD, b', "dry_run": NaN'), NOT_A_BOOLEAN),
    "infinity_as_dry_run": Hostile(with_extra(GOOD, b', "dry_run": 1e999'), NOT_A_BOOLEAN),
    # Duplicate keys: JSON keeps the last, another reader of the same text may keep the first
    # (and see a dry run). Which one wins must never decide a deletion: refused.
    "duplicate_dry_run_keys": Hostile(
        with_extra(GOOD, b', "dry_run": true, "dry_run": false'), "dry_run", decoded=False
    ),
    # Not an object, or the wrong shape.
    "null": Hostile(b"null", "payload: must be a JSON object, not null"),
    "boolean": Hostile(b"true", "payload: must be a JSON object, not a boolean"),
    "number": Hostile(b"42", "payload: must be a JSON object, not a number"),
    # Decoded once it is a string, which the handler rightly reads as the event's JSON text.
    "double_encoded_string": Hostile(
        j(GOOD), "payload: must be a JSON object, not a string", decoded=False
    ),
    "bare_list_of_targets": Hostile(
        j([{"project_id": P, "instance_id": I}]), "payload: must be a JSON object, not a list"
    ),
    "no_keys": Hostile(j({}), "nothing to do"),
    "targets_empty": Hostile(j({"targets": []}), "nothing to do"),
    "targets_null": Hostile(j({"targets": None}), "targets: must be a list"),
    "targets_object": Hostile(
        j({"targets": {"project_id": P, "instance_id": I}}), "targets: must be a list"
    ),
    "targets_string": Hostile(j({"targets": f"{P}/{I}"}), "targets: must be a list"),
    "target_as_list": Hostile(j({"targets": [[P, I]]}), "targets[0]: must be an object"),
    "target_as_path": Hostile(j({"targets": [f"{P}/{I}"]}), "targets[0]: must be an object"),
    "target_without_instance": Hostile(
        j({"targets": [{"project_id": P}]}), "targets[0].instance_id: required"
    ),
    "project_null": Hostile(targets(project=None), f"targets[0].project_id: {NOT_A_STRING}"),
    "instance_null": Hostile(targets(instance=None), f"targets[0].instance_id: {NOT_A_STRING}"),
    "project_as_number": Hostile(
        targets(project=int(P[:15], 16)), f"targets[0].project_id: {NOT_A_STRING}"
    ),
    "instance_as_list": Hostile(targets(instance=[I]), f"targets[0].instance_id: {NOT_A_STRING}"),
    "instance_as_query_object": Hostile(
        targets(instance={"$ne": ""}), f"targets[0].instance_id: {NOT_A_STRING}"
    ),
    # Booleans that are not booleans.
    "dry_run_string_true": Hostile(targets(dry_run="true"), NOT_A_BOOLEAN),
    "dry_run_string_false": Hostile(targets(dry_run="false"), NOT_A_BOOLEAN),
    "dry_run_number": Hostile(targets(dry_run=1), NOT_A_BOOLEAN),
    "dry_run_null": Hostile(targets(dry_run=None), NOT_A_BOOLEAN),
    # Keys nobody asked for: a typo must not silently turn a dry run into a real one.
    "dry_run_typo": Hostile(targets(dryrun=True), "dryrun: unknown key"),
    "force_flag": Hostile(targets(force=True), "force: unknown key"),
    "unknown_target_key": Hostile(
        j({"targets": [{"project_id": P, "instance_id": I, "name": "x"}]}),
        "targets[0].name: unknown key",
    ),
    "proto_key": Hostile(targets(__proto__={"dry_run": False}), "__proto__: unknown key"),
    "terminal_escape_key": Hostile(targets(**{"\x1b[2J\x1b[H": 1}), "\\x1b[2J\\x1b[H: unknown key"),
    "very_long_key": Hostile(targets(**{"k" * 10_000: 1}), "k" * 40 + "...: unknown key"),
    # IDs that would change the URL, or only look right.
    "dot_dot_slash_instance": Hostile(targets(instance="../../v2/other"), BAD_INSTANCE),
    "dot_dot_slash_project": Hostile(targets(project="../" + P[3:]), BAD_PROJECT),
    "percent_2f_instance": Hostile(targets(instance=I[:8] + "%2F" + I[11:]), BAD_INSTANCE),
    "percent_encoded_digit": Hostile(targets(instance="%36" + I[1:]), BAD_INSTANCE),
    "query_in_instance": Hostile(targets(instance=I + "?force=true"), BAD_INSTANCE),
    "fragment_in_instance": Hostile(targets(instance=I + "#"), BAD_INSTANCE),
    "path_after_instance": Hostile(targets(instance=I + "/stop"), BAD_INSTANCE),
    "cyrillic_a_in_instance": Hostile(targets(instance=I.replace("a", "\u0430", 1)), BAD_INSTANCE),
    "cyrillic_e_in_project": Hostile(targets(project=P.replace("e", "\u0435", 1)), BAD_PROJECT),
    "fullwidth_digits_project": Hostile(targets(project="\uff10" * 32), BAD_PROJECT),
    "arabic_indic_digits_project": Hostile(targets(project="\u0661" * 32), BAD_PROJECT),
    "uppercase_project": Hostile(targets(project=P.upper()), BAD_PROJECT),
    "uppercase_instance": Hostile(targets(instance=I.upper()), BAD_INSTANCE),
    "leading_space": Hostile(targets(instance=" " + I), BAD_INSTANCE),
    "trailing_newline": Hostile(targets(instance=I + "\n"), BAD_INSTANCE),
    "trailing_newline_project": Hostile(targets(project=P + "\n"), BAD_PROJECT),
    "tab_inside": Hostile(targets(instance=I[:8] + "\t" + I[9:]), BAD_INSTANCE),
    "escaped_nul_in_instance": Hostile(targets(instance=I[:-1] + "\u0000"), BAD_INSTANCE),
    "zero_width_space": Hostile(targets(instance=I[:8] + "\u200b" + I[8:]), BAD_INSTANCE),
    "right_to_left_override": Hostile(targets(instance="\u202e" + I), BAD_INSTANCE),
    "lone_surrogate": Hostile(
        GOOD.replace(I, I[:-1] + "\\ud800").encode(), f"targets[0].instance_id: {NOT_UNICODE}"
    ),
    "uuid_without_dashes": Hostile(targets(instance=I.replace("-", "")), BAD_INSTANCE),
    "braced_uuid": Hostile(targets(instance="{" + I + "}"), BAD_INSTANCE),
    "urn_uuid": Hostile(targets(instance="urn:uuid:" + I), BAD_INSTANCE),
    "double_de_prefix": Hostile(targets(instance="DE-DE-" + I), BAD_INSTANCE),
    "lowercase_de_prefix": Hostile(targets(instance="de-" + I), BAD_INSTANCE),
    "old_api_id_on_new_api": Hostile(targets(instance="DE-" + I), "belong to the devenviron API"),
    "project_too_short": Hostile(targets(project=P[:-1]), BAD_PROJECT),
    "project_too_long": Hostile(targets(project=P + "0"), BAD_PROJECT),
    "every_problem_listed": Hostile(
        j({"targets": [{"project_id": "x", "instance_id": "y"}], "dry_run": "no", "all": 1}),
        "(4 problems)",
    ),
    "many_bad_targets": Hostile(
        j({"targets": [{"project_id": P, "instance_id": "../x"}] * 2000}),
        f"targets[1999].{BAD_INSTANCE}",
    ),
    # Too deep, too big, too many.
    "deep_brackets": Hostile(b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
    "deep_targets": Hostile(j({"targets": [nested(40)]}), "nested deeper than 32 levels"),
    "deep_object_in_memory": Hostile({"targets": [nested(10_000)]}, "nested deeper than 32 levels"),
    "deep_objects": Hostile(j({"targets": [nested(40, objects=True)]}), "nested deeper than 32"),
    "deep_objects_in_memory": Hostile(
        {"targets": [nested(5000, objects=True)]}, "nested deeper than 32 levels"
    ),
    "ten_megabytes": Hostile(
        j({"targets": [{"project_id": P, "instance_id": I}], "pad": "x" * 10 * 1024 * 1024}), LIMIT
    ),
    "hundred_thousand_targets": Hostile(
        j({"targets": [{"project_id": P, "instance_id": I}] * 100_000}), LIMIT
    ),
    "hundred_thousand_empty_targets": Hostile(
        j({"targets": [{}] * 100_000}), "targets: 100000 entries, more than the 5000 allowed"
    ),
    "one_target_over_the_limit": Hostile(
        j({"targets": [{"project_id": P, "instance_id": I}] * 5001}),
        "targets: 5001 entries, more than the 5000 allowed",
    ),
    # Timer events with a broken user_event.
    "timer_user_event_not_json": Hostile(timer("targets: all"), "user_event: not valid JSON"),
    "timer_user_event_list": Hostile(
        timer(json.dumps([{"project_id": P, "instance_id": I}])),
        "must be a JSON object, not a list",
    ),
    "timer_user_event_object": Hostile(
        timer({"targets": [{"project_id": P, "instance_id": I}]}),
        "user_event: must be a string holding the payload as JSON",
    ),
    "timer_user_event_number": Hostile(timer(7), "user_event: must be a string"),
    "timer_user_event_boolean": Hostile(timer(True), "user_event: must be a string"),
    "timer_user_event_json_string": Hostile(
        timer(json.dumps("")), "must be a JSON object, not a string"
    ),
    "timer_user_event_null_literal": Hostile(timer("null"), "must be a JSON object, not null"),
    "timer_user_event_bad_id": Hostile(
        timer(json.dumps({"targets": [{"project_id": P, "instance_id": "../x"}]})), BAD_INSTANCE
    ),
    "timer_user_event_trailing_garbage": Hostile(timer(GOOD + "}"), "user_event: not valid JSON"),
    "timer_user_event_nul": Hostile(timer(GOOD + "\u0000"), "user_event: contains a NUL"),
    "timer_user_event_deep": Hostile(timer("[" * 1000 + "]" * 1000), "nested deeper than 32"),
    "timer_inside_timer": Hostile(
        timer(json.dumps({"trigger_type": "TIMER", "user_event": GOOD})),
        "trigger_type: unknown key",
    ),
    "timer_user_event_too_big": Hostile(
        timer(json.dumps({"targets": [{"project_id": P, "instance_id": I}] * 12_000})), LIMIT
    ),
    "timer_empty_without_default_targets": Hostile(
        timer(""),
        NO_DEFAULTS,
    ),
    "timer_blank_without_default_targets": Hostile(
        timer(" \n "),
        NO_DEFAULTS,
    ),
    # Other triggers, and things that only look like TIMER.
    "apig_trigger": Hostile(
        j({"trigger_type": "APIG", "body": GOOD}), "only TIMER events are accepted, not 'APIG'"
    ),
    "lowercase_timer": Hostile(
        j({"trigger_type": "timer", "user_event": GOOD}), "only TIMER events are accepted"
    ),
    "fullwidth_timer": Hostile(
        j({"trigger_type": "\uff34\uff29\uff2d\uff25\uff32", "user_event": GOOD}),
        "only TIMER events are accepted",
    ),
    "padded_timer": Hostile(
        j({"trigger_type": "TIMER ", "user_event": GOOD}), "only TIMER events are accepted"
    ),
    "null_trigger": Hostile(
        j({"trigger_type": None, "user_event": GOOD}), "only TIMER events are accepted, not null"
    ),
    "list_trigger": Hostile(
        j({"trigger_type": ["TIMER"], "user_event": GOOD}), "only TIMER events are accepted"
    ),
    "apig_event_shape": Hostile(
        j({"httpMethod": "POST", "body": GOOD, "isBase64Encoded": False}), "httpMethod: unknown key"
    ),
}

# Run as a user would: a separate process, the event on standard input.
SUBPROCESS_CASES = (
    "not_json",
    "invalid_utf8",
    "raw_nul_byte",
    "huge_integer",
    "dry_run_string_true",
    "dot_dot_slash_instance",
    "cyrillic_a_in_instance",
    "trailing_newline",
    "terminal_escape_key",
    "deep_brackets",
    "ten_megabytes",
    "hundred_thousand_targets",
    "timer_user_event_not_json",
    "apig_trigger",
    "instance_null",
)


def as_bytes(event: bytes | dict[str, Any]) -> bytes | None:
    """The event as raw bytes, or None when it only exists in memory (too deep to serialise)."""
    if isinstance(event, bytes):
        return event
    try:
        return j(event)
    except RecursionError:
        return None


def decoded(event: bytes | dict[str, Any]) -> object | None:
    """The event as the platform would hand it over, or None when the bytes are not JSON."""
    if not isinstance(event, bytes):
        return event
    try:
        document: object = json.loads(event.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a huge number, too deep
        return None
    return document


@pytest.fixture
def fake(fake: FakeModelArts) -> FakeModelArts:
    """The shared local endpoint, holding the one instance the events name."""
    fake.add_instance(P, I)
    return fake


def assert_refused(fake: FakeModelArts, event: object, says: str) -> None:
    log = io.StringIO()
    with pytest.raises(PayloadError) as raised:
        run_function(event, None, environ=endpoint_environ(fake.url), log_stream=log)
    message = str(raised.value)
    assert message.startswith("invalid payload (")
    assert says in message
    # Safe to print and to index: no control characters from the input, and bounded.
    assert all(c.isprintable() or c == "\n" for c in message)
    (line,) = log.getvalue().splitlines()
    logged = json.loads(line)
    assert (logged["level"], logged["error_type"]) == ("ERROR", "PayloadError")
    assert says in logged["message"]
    assert fake.requests == []
    assert fake.instance_ids() == {(P, I)}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_event_is_refused_before_any_request(fake: FakeModelArts, case: Hostile) -> None:
    raw = as_bytes(case.event)
    if raw is not None:
        assert_refused(fake, raw, case.says)
    if case.decoded:
        document = decoded(case.event)
        if document is not None:
            assert_refused(fake, document, case.says)


def test_a_text_event_with_a_lone_surrogate_is_refused(fake: FakeModelArts) -> None:
    # Text handed over as a str (not bytes) can hold what UTF-8 cannot encode.
    event = GOOD.replace(I, I[:-1] + "\ud800")
    assert_refused(fake, event, f"targets[0].instance_id: {NOT_UNICODE}")


def test_there_are_enough_hostile_cases() -> None:
    assert len(CASES) >= 50
    assert set(SUBPROCESS_CASES) <= set(CASES)
    # All but what no envelope can carry goes through every envelope.
    assert len(carried()) >= len(CARRIERS) * (len(CASES) - 4)


def invoke(
    fake: FakeModelArts, *args: str, stdin: bytes | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_"))}
    env.update(endpoint_environ(fake.url))
    done = subprocess.run(
        [sys.executable, "-m", "modelarts_cleanup", "invoke", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_invoke_refuses_hostile_event_with_exit_2(fake: FakeModelArts, name: str) -> None:
    case = CASES[name]
    raw = as_bytes(case.event)
    assert raw is not None
    done = invoke(fake, "--event", "-", stdin=raw)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    logged = json.loads(line)
    assert logged["level"] == "ERROR"
    assert case.says in logged["message"]
    assert fake.requests == []


def test_invoke_refuses_a_hostile_event_file_too(fake: FakeModelArts, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_bytes(CASES["cyrillic_e_in_project"].event)  # type: ignore[arg-type]
    done = invoke(fake, "--event", str(event), stdin=None)
    assert done.returncode == 2
    assert done.stdout == ""
    assert BAD_PROJECT in json.loads(done.stderr)["message"]
    assert fake.requests == []


# --- the same cases inside every envelope ----------------------------------------------------


@dataclass(frozen=True)
class Carrier:
    """An envelope for a case's bytes: where it says they are, and whether they must be text."""

    wrap: Any  # bytes -> event
    location: str  # replaces "event" in what a case says
    text_only: bool = True  # the envelope carries text: bytes that are not UTF-8 cannot go
    default_targets: bool = False  # an empty payload means "the configured default targets"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


CARRIERS: dict[str, Carrier] = {
    "timer": Carrier(
        lambda raw: {"trigger_type": "TIMER", "user_event": _text(raw)},
        "user_event",
        default_targets=True,
    ),
    "apig_base64": Carrier(lambda raw: apig_event(raw), "body", text_only=False),
    "apig_plain": Carrier(lambda raw: apig_event(_text(raw), base64_encoded=False), "body"),
    "smn": Carrier(lambda raw: smn_event(_text(raw)), "record[0].smn.message"),
    "smn_after_a_valid_message": Carrier(
        lambda raw: smn_event(GOOD, _text(raw)), "record[1].smn.message"
    ),
}


# Refused for its text, before it is read as JSON, wherever it travels.
TEXT_LEVEL = {CASES["timer_user_event_deep"].says}


def expected_inside(raw: bytes, case: Hostile, carrier: Carrier) -> str:
    """What the refusal says when the case's bytes travel inside an envelope."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return LIMIT
    document = decoded(raw)
    if isinstance(document, dict) and "trigger_type" in document and case.says not in TEXT_LEVEL:
        # Envelopes do not nest: inside one, an event is a payload with an unknown key.
        return "trigger_type: unknown key"
    if not raw.strip():
        if carrier.default_targets:
            return NO_DEFAULTS
        if carrier.location.endswith("smn.message"):
            return f"{carrier.location}: empty: nothing says what to delete"
    return case.says.replace("event: ", f"{carrier.location}: ")


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def carried() -> list[Any]:
    """Every case in every envelope that can carry it.

    Not the case only in memory (no bytes to carry), nor bytes that are not UTF-8 in an envelope
    that carries text: only a Base64 body can hold those.
    """
    return [
        pytest.param(case, carrier, id=f"{name}-{carrier_name}")
        for name, case in CASES.items()
        if (raw := as_bytes(case.event)) is not None
        for carrier_name, carrier in CARRIERS.items()
        if not carrier.text_only or _utf8(raw)
    ]


@pytest.mark.parametrize(("case", "carrier"), carried())
def test_hostile_payload_inside_any_envelope_is_refused_before_any_request(
    fake: FakeModelArts, case: Hostile, carrier: Carrier
) -> None:
    raw = as_bytes(case.event)
    assert raw is not None
    event = carrier.wrap(raw)
    says = expected_inside(raw, case, carrier)
    if carrier.location != "body":
        assert_refused(fake, event, says)
        return
    log = io.StringIO()
    answer = run_function(event, None, environ=endpoint_environ(fake.url), log_stream=log)
    assert answer["statusCode"] == (413 if says == LIMIT else 400)
    (line,) = log.getvalue().splitlines()
    logged = json.loads(line)["message"]
    assert says in logged
    problems = answer_body(answer)["problems"]
    assert logged == str(PayloadError(problems))  # the caller is told every problem the log has
    assert all(p.isprintable() for p in problems)
    assert fake.requests == []
    assert fake.instance_ids() == {(P, I)}
