"""Envelopes: which events are API Gateway or SMN events, and the payload each one carries."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.events.envelopes import Envelope, parse_event, receive
from modelarts_cleanup.events.payload import MAX_PAYLOAD_BYTES, MAX_SELECTORS, MAX_TARGETS, Target
from modelarts_cleanup.events.smn import MAX_RECORDS
from modelarts_cleanup.exceptions import MethodNotAllowed, PayloadError, PayloadTooLarge
from tests.support import apig_event, smn_event

ROOT = Path(__file__).resolve().parent.parent
P1 = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
I1 = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
I2 = "0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b"
I3 = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
BASE64_FLAG = "isBase64Encoded: must be true or false: it says how the body is encoded"
T1, T2 = Target(project_id=P1, instance_id=I1), Target(project_id=P2, instance_id=I2)


def targets(*pairs: tuple[str, str], **extra: Any) -> str:
    return json.dumps({"targets": [{"project_id": p, "instance_id": i} for p, i in pairs], **extra})


def rule(project: str = P1, **extra: Any) -> dict[str, Any]:
    return {"project_id": project, "statuses": ["STOPPED"], **extra}


def problems_of(event: object) -> tuple[str, ...]:
    with pytest.raises(PayloadError) as caught:
        parse_event(event)
    return caught.value.problems


# --- recognising ---------------------------------------------------------------------------------


def documented(name: str) -> dict[str, Any]:
    """The developer guide's example events, as published (no payload inside)."""
    examples: dict[str, dict[str, Any]] = {
        "apig": {
            "body": "eyJuYW1lIjogIk9wZW5UZWxla29tQ2xvdWQifQ==",
            "requestContext": {
                "apiId": "bc1dcffd-aa35-474d-897c-d53425a4c08e",
                "requestId": "11cdcdcf33949dc6d722640a13091c77",
                "stage": "RELEASE",
            },
            "queryStringParameters": {"responseType": "html"},
            "httpMethod": "GET",
            "pathParameters": {},
            "headers": {"accept-language": "q=0.5,en-US;q=0.3,en;q=0.2", "host": "host"},
            "path": "/",
            "isBase64Encoded": True,
        },
        "smn": smn_event("this is smn message content", "this is smn message content"),
    }
    return examples[name]


@pytest.mark.parametrize(
    ("event", "envelope"),
    [
        (documented("apig"), Envelope.APIG),
        (apig_event(targets((P1, I1))), Envelope.APIG),
        (documented("smn"), Envelope.SMN),
        ({"trigger_type": "TIMER", "user_event": ""}, Envelope.TIMER),
        ({"targets": []}, Envelope.DIRECT),
        ([], Envelope.DIRECT),
    ],
)
def test_documented_shapes_are_recognised(event: object, envelope: Envelope) -> None:
    assert receive(event).envelope is envelope
    assert receive(json.dumps(event).encode()).envelope is envelope


def test_documented_apig_example_is_a_get_and_runs_nothing() -> None:
    with pytest.raises(MethodNotAllowed):
        parse_event(documented("apig"))


def test_documented_smn_example_carries_text_that_is_not_a_payload() -> None:
    problems = problems_of(documented("smn"))
    assert problems[0].startswith("record[0].smn.message: not valid JSON")
    assert problems[1].startswith("record[1].smn.message: not valid JSON")


@pytest.mark.parametrize(
    "event",
    [
        # Something that merely looks like a request is not one: a payload with unknown keys.
        {"httpMethod": "POST", "body": targets((P1, I1)), "isBase64Encoded": False},
        {"requestContext": "api", "httpMethod": "POST", "body": targets((P1, I1))},
        {"requestContext": {}, "httpMethod": ["POST"], "body": targets((P1, I1))},
        {"body": targets((P1, I1))},
        # ... and something that merely looks like a notification is not one either.
        {"record": []},
        {"record": {"smn": {"message": targets((P1, I1))}, "event_source": "smn"}},
        {"record": [{"smn": {"message": targets((P1, I1))}, "event_source": "obs"}]},
        {"record": [{"smn": targets((P1, I1)), "event_source": "smn"}]},
        {"record": [*smn_event(targets((P1, I1)))["record"], {"event_source": "smn"}]},
    ],
)
def test_lookalikes_are_invalid_payloads_with_unknown_keys(event: dict[str, Any]) -> None:
    assert receive(event).envelope is Envelope.DIRECT
    problems = problems_of(event)
    assert any(p.endswith(": unknown key") for p in problems)


# --- API Gateway ---------------------------------------------------------------------------------


@pytest.mark.parametrize("base64_encoded", [True, False])
def test_apig_body_is_the_payload(base64_encoded: bool) -> None:
    body = targets((P1, I1), (P2, I2), (P1, I1), dry_run=True)
    payload = parse_event(apig_event(body, base64_encoded=base64_encoded))
    assert payload == parse_event(json.loads(body))
    assert payload.targets == [T1, T2]
    assert payload.dry_run is True


def test_apig_body_with_selectors_is_the_payload() -> None:
    body = json.dumps({"selectors": [rule(name_pattern="tmp-*")]})
    assert parse_event(apig_event(body)).selectors[0].name_pattern == "tmp-*"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", ""])
def test_apig_methods_other_than_post_carry_no_cleanup(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        parse_event(apig_event(targets((P1, I1)), method=method))
    assert caught.value.problems == (f"httpMethod: only POST runs a cleanup, not {method!r}",)


def test_apig_method_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(MethodNotAllowed):
        parse_event(apig_event("not base64 !", method="GET", base64_encoded=False))


@pytest.mark.parametrize(
    "body",
    [
        "not base64 at all!",
        base64.b64encode(b'{"targets": [1]}').decode()[:-1],  # its padding cut short
        base64.b64encode(b'{"targets": []}').decode() + "\n",
        "\u00e9" * 8,
    ],
)
def test_apig_body_that_is_not_base64_is_refused(body: str) -> None:
    event = apig_event(b"") | {"body": body}
    assert problems_of(event) == ("body: not valid Base64, though isBase64Encoded is true",)


def test_apig_plain_body_is_not_decoded_as_base64() -> None:
    encoded = base64.b64encode(targets((P1, I1)).encode()).decode()
    (problem,) = problems_of(apig_event(encoded, base64_encoded=False))
    assert problem.startswith("body: not valid JSON")


@pytest.mark.parametrize("base64_encoded", [True, False])
def test_apig_body_of_the_largest_size_is_read_and_one_byte_more_is_not(
    base64_encoded: bool,
) -> None:
    body = targets((P1, I1))
    largest = body[:-1] + " " * (MAX_PAYLOAD_BYTES - len(body)) + "}"
    assert parse_event(apig_event(largest, base64_encoded=base64_encoded)).targets
    too_big = largest[:-1] + " }"
    with pytest.raises(PayloadTooLarge) as caught:
        parse_event(apig_event(too_big, base64_encoded=base64_encoded))
    assert caught.value.problems == (
        f"body: {MAX_PAYLOAD_BYTES + 1} bytes, more than the {MAX_PAYLOAD_BYTES} allowed",
    )


def test_apig_oversized_base64_body_is_refused_before_it_is_decoded() -> None:
    # Far too long and not Base64 at all: the size is what is said, so nothing decoded it.
    event = apig_event(b"") | {"body": "!" * (2 * MAX_PAYLOAD_BYTES)}
    with pytest.raises(PayloadTooLarge) as caught:
        parse_event(event)
    (problem,) = caught.value.problems
    assert problem.endswith(f"bytes once decoded, more than the {MAX_PAYLOAD_BYTES} allowed")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"isBase64Encoded": "true"}, BASE64_FLAG),
        ({"isBase64Encoded": None}, BASE64_FLAG),
        ({"body": None}, "body: must be a string holding the payload as JSON"),
        ({"body": {"targets": []}}, "body: must be a string holding the payload as JSON"),
        (
            {"queryStringParameters": {"dry_run": "true"}},
            "queryStringParameters.dry_run: not accepted: the whole payload, dry_run included, "
            "goes in the body",
        ),
        ({"queryStringParameters": "dry_run=true"}, "queryStringParameters: must be an object"),
        ({"dry_run": True}, "dry_run: belongs inside the body, not beside it"),
        ({"targets": []}, "targets: belongs inside the body, not beside it"),
    ],
)
def test_apig_request_that_says_something_outside_the_body_is_refused(
    change: dict[str, Any], says: str
) -> None:
    event = apig_event(targets((P1, I1))) | change
    assert says in problems_of(event)


def test_apig_event_without_isbase64encoded_key_is_refused() -> None:
    event = apig_event(targets((P1, I1)), base64_encoded=False)
    del event["isBase64Encoded"]
    assert problems_of(event) == (BASE64_FLAG,)


def test_apig_body_problems_are_the_payloads_own() -> None:
    body = json.dumps({"targets": [{"project_id": "x", "instance_id": I1}], "force": True})
    assert set(problems_of(apig_event(body))) == {
        "targets[0].project_id: must be 32 lowercase hexadecimal characters",
        "force: unknown key",
    }


def test_apig_event_inside_a_body_is_not_unwrapped_again() -> None:
    inner = json.dumps(apig_event(targets((P1, I1))))
    assert "requestContext: unknown key" in problems_of(apig_event(inner))


# --- SMN -----------------------------------------------------------------------------------------


def test_smn_message_is_the_payload() -> None:
    payload = parse_event(smn_event(targets((P1, I1), dry_run=True)))
    assert payload == parse_event(json.loads(targets((P1, I1), dry_run=True)))


def test_smn_records_are_merged_targets_once_selectors_in_order() -> None:
    event = smn_event(
        json.dumps({"targets": [{"project_id": P1, "instance_id": I1}], "selectors": [rule()]}),
        targets((P2, I2), (P1, I1)),
        json.dumps({"selectors": [rule(P2), rule(name_pattern="tmp-*")]}),
    )
    payload = parse_event(event)
    assert payload.targets == [T1, T2]
    # selectors[i] is the position in the merged list: message by message, in order.
    assert [(s.project_id, s.name_pattern) for s in payload.selectors] == [
        (P1, None),
        (P2, None),
        (P1, "tmp-*"),
    ]
    assert payload.dry_run is False


@pytest.mark.parametrize("which", [0, 1, 2])
def test_smn_dry_run_in_any_message_makes_the_run_a_dry_run(which: int) -> None:
    messages = [targets((P1, I1)), targets((P1, I2)), targets((P2, I3))]
    messages[which] = targets((P1, I1), dry_run=True)
    assert parse_event(smn_event(*messages)).dry_run is True


def test_smn_one_invalid_message_refuses_the_whole_event_with_every_problem() -> None:
    event = smn_event(
        targets((P1, I1)),
        "delete everything",
        targets((P1, "../x")),
        json.dumps({"trigger_type": "TIMER", "user_event": ""}),
    )
    problems = problems_of(event)
    assert problems[0].startswith("record[1].smn.message: not valid JSON")
    assert problems[1] == (
        "record[2].smn.message: targets[0].instance_id: "
        "must be a lowercase UUID, optionally prefixed 'DE-'"
    )
    # Envelopes do not nest: a TIMER event as a message is a payload with unknown keys.
    assert problems[2:] == (
        "record[3].smn.message: trigger_type: unknown key",
        "record[3].smn.message: user_event: unknown key",
    )


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (None, "record[0].smn.message: must be a string holding the payload as JSON"),
        ({"targets": []}, "record[0].smn.message: must be a string holding the payload as JSON"),
        ("", "record[0].smn.message: empty: nothing says what to delete"),
        (" \n ", "record[0].smn.message: empty: nothing says what to delete"),
        ("[]", "record[0].smn.message: payload: must be a JSON object, not a list"),
        (
            '{"targets": []}',
            "record[0].smn.message: nothing to do: give at least one target or selector",
        ),
    ],
)
def test_smn_message_that_is_not_a_payload_is_refused(message: object, says: str) -> None:
    assert problems_of(smn_event(message)) == (says,)


def test_smn_event_with_too_many_records_is_refused() -> None:
    event = smn_event(*[targets((P1, I1))] * (MAX_RECORDS + 1))
    assert problems_of(event) == (
        f"record: {MAX_RECORDS + 1} records, more than the {MAX_RECORDS} allowed",
    )
    assert parse_event(smn_event(*[targets((P1, I1))] * MAX_RECORDS)).targets


def test_smn_merged_lists_keep_the_payload_limits() -> None:
    def many(start: int) -> str:
        ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(start, start + MAX_TARGETS)]
        return json.dumps({"targets": [{"project_id": P1, "instance_id": i} for i in ids]})

    half = json.dumps({"selectors": [rule()] * (MAX_SELECTORS // 2 + 1)})
    assert set(problems_of(smn_event(many(0), many(1), half, half))) == {
        f"record: {MAX_TARGETS + 1} targets, more than the {MAX_TARGETS} allowed",
        f"record: {MAX_SELECTORS + 2} selectors, more than the {MAX_SELECTORS} allowed",
    }
    # The same targets twice are one list of MAX_TARGETS: within the limit.
    assert len(parse_event(smn_event(many(0), many(0))).targets) == MAX_TARGETS


def test_smn_payload_keys_beside_the_records_are_refused() -> None:
    event = smn_event(targets((P1, I1))) | {"dry_run": False}
    assert problems_of(event) == ("dry_run: belongs inside a record's smn.message, not beside it",)


# --- the example events --------------------------------------------------------------------------


def test_apig_example_event_posts_a_base64_dry_run_payload() -> None:
    event = json.loads((ROOT / "events" / "apig.json").read_text())
    assert receive(event).envelope is Envelope.APIG
    assert (event["httpMethod"], event["isBase64Encoded"]) == ("POST", True)
    payload = parse_event(event)
    assert payload.dry_run is True
    assert payload.targets


def test_smn_example_event_merges_two_messages() -> None:
    event = json.loads((ROOT / "events" / "smn.json").read_text())
    assert receive(event).envelope is Envelope.SMN
    assert len(event["record"]) == 2
    merged = parse_event(event)
    each = [parse_event(json.loads(r["smn"]["message"])) for r in event["record"]]
    assert merged.targets == list(dict.fromkeys(t for p in each for t in p.targets))
    assert len(merged.targets) < sum(len(p.targets) for p in each)  # one target in both
    assert merged.dry_run is True
