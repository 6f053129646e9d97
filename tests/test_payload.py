"""The payload: what is accepted, what is refused, and how each refusal reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from modelarts_cleanup.events.envelopes import parse_event
from modelarts_cleanup.events.payload import (
    MAX_PAYLOAD_BYTES,
    MAX_SELECTORS,
    MAX_TARGETS,
    Payload,
    Target,
    parse_payload,
    payload_schema,
)
from modelarts_cleanup.events.problems import describe_errors, printable, type_name
from modelarts_cleanup.exceptions import PayloadError

P1 = "ed43aef64dff4e5c81cb84b71adcb3fd"
P2 = "0123456789abcdef0123456789abcdef"
I1 = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
I2 = "DE-0b1f3c2a-4d5e-4f60-8a7b-9c8d7e6f5a4b"


def target(project_id: str = P1, instance_id: str = I1) -> dict[str, str]:
    return {"project_id": project_id, "instance_id": instance_id}


def problems_of(event: object, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(PayloadError) as caught:
        parse_event(event, **kwargs)
    return caught.value.problems


def test_canonical_payload_is_accepted() -> None:
    payload = parse_event({"targets": [target(), target(P2, I2)]})
    assert payload.targets == [
        Target(project_id=P1, instance_id=I1),
        Target(project_id=P2, instance_id=I2),
    ]
    assert payload.dry_run is False


def test_payload_dry_run_is_read() -> None:
    assert parse_event({"targets": [target()], "dry_run": True}).dry_run is True


def test_payload_as_json_text_and_bytes_is_accepted() -> None:
    text = json.dumps({"targets": [target()]})
    assert parse_event(text) == parse_event(text.encode()) == Payload(targets=[Target(**target())])


def test_duplicate_pairs_are_merged_keeping_first_order() -> None:
    payload = parse_event({"targets": [target(), target(P2, I2), target(), target(P2, I2)]})
    assert [t.instance_id for t in payload.targets] == [I1, I2]


def test_same_instance_in_two_projects_is_not_a_duplicate() -> None:
    assert len(parse_event({"targets": [target(P1, I1), target(P2, I1)]}).targets) == 2


def test_timer_event_unwraps_user_event() -> None:
    event = {
        "version": "v1.0",
        "time": "2023-06-01T08:30:00+08:00",
        "trigger_type": "TIMER",
        "trigger_name": "Timer_001",
        "user_event": json.dumps({"targets": [target()], "dry_run": True}),
    }
    payload = parse_event(event)
    assert payload.targets == [Target(**target())]
    assert payload.dry_run is True


@pytest.mark.parametrize("user_event", ["", "   ", None])
def test_empty_user_event_means_default_targets(user_event: str | None) -> None:
    defaults = (Target(**target()), Target(**target(P2, I2)))
    event = {"trigger_type": "TIMER", "user_event": user_event}
    assert parse_event(event, default_targets=defaults).targets == list(defaults)


@pytest.mark.parametrize("with_targets", [False, True])
def test_empty_user_event_means_default_selectors_too(with_targets: bool) -> None:
    from modelarts_cleanup.events.rules import Selector

    rules = (
        Selector(project_id=P2, statuses=("STOPPED",), idle_hours=72),
        Selector(project_id=P2, statuses=("ERROR",)),
    )
    targets = (Target(**target()),) if with_targets else ()
    event = {"trigger_type": "TIMER", "user_event": ""}

    payload = parse_event(event, default_targets=targets, default_selectors=rules)

    assert (payload.targets, payload.selectors, payload.dry_run) == (
        list(targets),
        list(rules),
        False,
    )
    # A payload in the user event replaces the defaults, selectors included.
    given = {**event, "user_event": json.dumps({"targets": [target(P2, I2)]})}
    replaced = parse_event(given, default_targets=targets, default_selectors=rules)
    assert (replaced.targets, replaced.selectors) == ([Target(**target(P2, I2))], [])


def test_timer_event_without_a_user_event_key_means_default_targets() -> None:
    defaults = (Target(**target()),)
    event = {"trigger_type": "TIMER", "trigger_name": "nightly"}
    assert parse_event(event, default_targets=defaults).targets == list(defaults)
    (problem,) = problems_of(event)
    assert problem == (
        "user_event: empty, and neither MODELARTS_CLEANUP_TARGETS nor MODELARTS_CLEANUP_SELECTORS "
        "is set: nothing says what to delete"
    )


def test_empty_user_event_without_default_targets_is_an_error() -> None:
    (problem,) = problems_of({"trigger_type": "TIMER", "user_event": ""})
    assert "MODELARTS_CLEANUP_TARGETS" in problem and "MODELARTS_CLEANUP_SELECTORS" in problem


def test_timer_user_event_that_is_not_json_is_an_error() -> None:
    (problem,) = problems_of({"trigger_type": "TIMER", "user_event": "delete everything"})
    assert problem.startswith("user_event: not valid JSON")


def test_timer_user_event_must_be_a_string() -> None:
    (problem,) = problems_of({"trigger_type": "TIMER", "user_event": {"targets": [target()]}})
    assert problem.startswith("user_event: must be a string")


@pytest.mark.parametrize(
    ("trigger", "shown"),
    [
        ("APIG", "'APIG'"),
        ("T" * 50, "'" + "T" * 39),  # a long one cut to 40 characters
        (7, "a number"),
        (1.5, "a number"),
        (None, "null"),
        (["TIMER"], "a list"),
        ({"type": "TIMER"}, "an object"),
        (True, "a boolean"),
    ],
)
def test_other_trigger_types_are_refused_and_shown_safely(trigger: object, shown: str) -> None:
    (problem,) = problems_of({"trigger_type": trigger, "body": "{}"})
    assert problem == (
        f"trigger_type: only TIMER events are accepted, not {shown} "
        "(API Gateway and SMN events are recognised by their own shapes)"
    )


def test_a_value_of_no_json_type_is_named_by_its_python_type() -> None:
    assert type_name((1, 2)) == "tuple"
    assert type_name(b"x") == "bytes"


@pytest.mark.parametrize(
    ("key", "shown"),
    [("k" * 40, "k" * 40), ("k" * 41, "k" * 40 + "..."), ("\u202e" * 3, "\\u202e" * 3)],
)
def test_keys_are_shown_up_to_forty_characters_and_escaped(key: str, shown: str) -> None:
    assert printable(key) == shown


def test_every_problem_is_listed_with_its_location() -> None:
    event = {
        "targets": [
            target(),
            {"project_id": "ED43AEF64DFF4E5C81CB84B71ADCB3FD", "instance_id": I1},
            {"project_id": P1, "instance_id": "../../v1/other"},
            {"project_id": P1},
            {"project_id": P1, "instance_id": I1, "name": "x"},
        ],
        "dry_run": "yes",
        "force": True,
    }
    problems = problems_of(event)
    assert "targets[1].project_id: must be 32 lowercase hexadecimal characters" in problems
    assert "targets[2].instance_id: must be a lowercase UUID, optionally prefixed 'DE-'" in problems
    assert "targets[3].instance_id: required" in problems
    assert "targets[4].name: unknown key" in problems
    assert "force: unknown key" in problems
    assert any(p.startswith("dry_run: ") for p in problems)
    assert len(problems) == 6


def test_problems_in_targets_and_in_selectors_are_listed_together() -> None:
    event = {
        "targets": [{"project_id": P1}],
        "selectors": [
            {"project_id": P1, "statuses": ["STOPPED"]},
            {"project_id": P1, "statuses": ["stopped"], "colour": "red"},
            "not an object",
        ],
        "dry_run": 1,
    }
    problems = problems_of(event)
    assert "targets[0].instance_id: required" in problems
    assert any(p.startswith("selectors[1].statuses[0]: ") for p in problems)
    assert "selectors[1].colour: unknown key" in problems
    assert any(p.startswith("selectors[2]: ") for p in problems)
    assert any(p.startswith("dry_run: ") for p in problems)
    assert len(problems) == 6  # the bad status also leaves `statuses` empty: said too


def test_a_valid_selector_beside_an_invalid_target_deletes_nothing() -> None:
    with pytest.raises(PayloadError):
        parse_event(
            {
                "targets": [{"project_id": P1, "instance_id": "x"}],
                "selectors": [{"project_id": P1, "statuses": ["STOPPED"]}],
            }
        )


@pytest.mark.parametrize(
    "instance_id",
    [
        "6FA459EA-EE8A-3CA4-894E-DB77E160355E",
        "6fa459ea-ee8a-3ca4-894e-db77e160355e\n",
        " 6fa459ea-ee8a-3ca4-894e-db77e160355e",
        "6fa459eaee8a3ca4894edb77e160355e",
        "de-6fa459ea-ee8a-3ca4-894e-db77e160355e",
        "6fa459ea-ee8a-3ca4-894e-db77e160355e/stop",
        "6fa459ea-ee8a-3ca4-894e-db77e160355%2F",
        "６fa459ea-ee8a-3ca4-894e-db77e160355e",
        "",
    ],
)
def test_instance_ids_that_are_not_exact_uuids_are_refused(instance_id: str) -> None:
    (problem,) = problems_of({"targets": [target(instance_id=instance_id)]})
    assert problem.startswith("targets[0].instance_id: ")


@pytest.mark.parametrize("value", [42, None, ["a"], {"a": 1}, True])
def test_ids_of_the_wrong_type_are_refused(value: object) -> None:
    (problem,) = problems_of({"targets": [{"project_id": value, "instance_id": I1}]})
    assert problem.startswith("targets[0].project_id: ")


@pytest.mark.parametrize(
    ("event", "start"),
    [
        ([], "payload: must be a JSON object"),
        ("[]", "payload: must be a JSON object"),
        ("null", "payload: must be a JSON object"),
        ("{", "event: not valid JSON"),
        (b"\xff\xfe", "event: not valid UTF-8"),
        ('{"targets": []}\x00', "event: contains a NUL"),
        ({"targets": []}, "nothing to do: give at least one target or selector"),
        ({}, "nothing to do: give at least one target or selector"),
        ({"targets": "a,b"}, "targets: must be a list"),
    ],
)
def test_malformed_payloads_are_refused(event: object, start: str) -> None:
    problems = problems_of(event)
    assert problems[0].startswith(start), problems


def test_oversized_text_payload_is_refused_before_parsing() -> None:
    (problem,) = problems_of(" " * (MAX_PAYLOAD_BYTES + 1))
    assert "more than the" in problem


def test_too_many_targets_are_refused() -> None:
    event = {"targets": [target()] * (MAX_TARGETS + 1)}
    (problem,) = problems_of(event)
    assert problem == f"targets: {MAX_TARGETS + 1} entries, more than the {MAX_TARGETS} allowed"


# The limits, exactly: the largest accepted, and one more refused.


def padded(extra: int) -> str:
    """A valid payload's text, `extra` bytes of spaces longer."""
    text = json.dumps({"targets": [target()]})
    return text + " " * extra


def test_text_of_exactly_the_largest_size_is_read_and_one_byte_more_is_not() -> None:
    largest = padded(MAX_PAYLOAD_BYTES - len(padded(0)))
    assert len(largest) == MAX_PAYLOAD_BYTES
    for text in (largest, largest.encode("utf-8")):
        assert parse_event(text).targets == [Target(**target())]
    (problem,) = problems_of(largest + " ")
    assert problem == f"event: {MAX_PAYLOAD_BYTES + 1} bytes, more than the 1048576 allowed"


def test_text_size_is_counted_in_utf8_bytes_not_characters() -> None:
    text = json.dumps({"targets": [target()], "note": "\u00e9" * (MAX_PAYLOAD_BYTES // 2)})
    text = text.encode("ascii").decode("unicode_escape")  # the é as itself, two bytes each
    assert len(text) < MAX_PAYLOAD_BYTES < len(text.encode("utf-8"))
    (problem,) = problems_of(text)  # refused as text, before it is parsed
    assert problem == f"event: {len(text.encode('utf-8'))} bytes, more than the 1048576 allowed"


def test_a_decoded_payload_of_the_largest_size_is_checked_and_one_byte_more_is_not() -> None:
    def event(pad: int) -> dict[str, Any]:
        return {"targets": [target()], "pad": "x" * pad}

    size = len(json.dumps(event(0)).encode("utf-8"))
    largest = event(MAX_PAYLOAD_BYTES - size)
    assert problems_of(largest) == ("pad: unknown key",)
    bigger = event(MAX_PAYLOAD_BYTES - size + 1)
    assert problems_of(bigger) == (
        f"payload: {MAX_PAYLOAD_BYTES + 1} bytes, more than the {MAX_PAYLOAD_BYTES} allowed",
    )


def test_exactly_the_most_targets_are_accepted() -> None:
    payload = parse_event({"targets": [target()] * MAX_TARGETS})
    assert payload.targets == [Target(**target())]


def test_exactly_the_most_selectors_are_accepted_and_each_is_checked() -> None:
    rule = {"project_id": P1, "statuses": ["STOPPED"]}
    payload = parse_event({"selectors": [rule] * MAX_SELECTORS})
    assert len(payload.selectors) == MAX_SELECTORS
    assert all(s.statuses == ("STOPPED",) for s in payload.selectors)
    broken = [rule] * (MAX_SELECTORS - 1) + [{**rule, "statuses": ["stopped"]}]
    assert problems_of({"selectors": broken})[0].startswith(
        f"selectors[{MAX_SELECTORS - 1}].statuses[0]: must be 'INIT'"
    )
    (problem,) = problems_of({"selectors": [rule] * (MAX_SELECTORS + 1)})
    assert problem == "selectors: must have at most 50 entries, not 51"


def test_a_selector_that_is_not_an_object_does_not_hide_the_problems_after_it() -> None:
    problems = problems_of({"selectors": ["STOPPED", {"project_id": P1}]})
    assert problems[0].startswith("selectors[0]: must be an object")
    assert "selectors[1].statuses: required" in problems


def lists(depth: int) -> str:
    """A payload whose text nests `depth` levels: an unknown key holding nested lists."""
    return json.dumps({"targets": [target()], "pad": nested_lists(depth - 1)})


def nested_lists(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_of_exactly_the_deepest_level_is_read_and_one_more_is_not() -> None:
    for document in (lists(32), json.loads(lists(32))):
        assert problems_of(document) == ("pad: unknown key",)
    (problem,) = problems_of(lists(33))
    assert problem == "event: nested deeper than 32 levels"
    (problem,) = problems_of(json.loads(lists(33)))
    assert problem == "payload: nested deeper than 32 levels"


def objects(depth: int) -> dict[str, Any]:
    """A payload nesting `depth` levels: an unknown key holding nested objects, an empty one
    innermost, after an empty object that closes deeper down."""
    value: dict[str, Any] = {}
    for _ in range(depth - 3):
        value = {"a": value}
    return {"targets": [target()], "pad": {"closed": {}, "deep": value}}


def test_nesting_counts_objects_and_every_closing_bracket_alike() -> None:
    for depth, refused in ((32, False), (33, True)):
        document = objects(depth)
        text = json.dumps(document)
        assert (problems_of(text) == ("event: nested deeper than 32 levels",)) is refused
        assert (problems_of(document) == ("payload: nested deeper than 32 levels",)) is refused
    # Brackets are what count, not other characters.
    assert problems_of(json.dumps({"targets": [target()], "X" * 40: 1})) == (
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX: unknown key",
    )
    deep = json.dumps({"X" * 40: 1, "pad": nested_lists(40)})
    assert problems_of(deep) == ("event: nested deeper than 32 levels",)


def test_values_that_are_not_json_are_refused() -> None:
    assert problems_of({"targets": [target()], "pad": {1, 2}}) == (
        "payload: holds values that are not JSON (only objects, lists, strings, ...)",
    )


def test_objects_nested_thousands_deep_are_refused_not_recursed_into() -> None:
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"a": deep}
    (problem,) = problems_of({"targets": [target()], "pad": deep})
    assert problem == "payload: nested deeper than 32 levels"
    (problem,) = problems_of('{"a": ' * 5000 + "1" + "}" * 5000)
    assert problem == "event: nested deeper than 32 levels"


def test_deep_nesting_is_refused_without_recursing() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (problem,) = problems_of(deep)
    assert "nested deeper" in problem
    nested: object = []
    for _ in range(200):
        nested = [nested]
    (problem,) = problems_of({"targets": nested})
    assert "nested deeper" in problem


def test_hostile_keys_are_shown_escaped_and_short() -> None:
    (problem,) = problems_of({"targets": [target()], "\u202e" + "k" * 100: 1})
    assert "\\u202e" in problem
    assert len(problem) < 80


def test_parse_payload_validates_the_canonical_object_only() -> None:
    with pytest.raises(PayloadError):
        parse_payload({"trigger_type": "TIMER", "user_event": ""})
    assert parse_payload({"targets": [target()]}).targets == [Target(**target())]


def test_error_message_counts_and_lists_problems() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event({"targets": [target()], "x": 1, "y": 2})
    assert str(caught.value).startswith("invalid payload (2 problems):\n  - ")


def test_schema_describes_the_payload() -> None:
    schema = payload_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"targets", "selectors", "dry_run"}
    assert "required" not in schema
    assert [branch["required"] for branch in schema["anyOf"]] == [["targets"], ["selectors"]]
    assert schema["properties"]["selectors"]["items"] == {"$ref": "#/$defs/Selector"}
    rule = schema["$defs"]["Selector"]
    assert rule["required"] == ["project_id", "statuses"]
    assert "STOPPED" in rule["properties"]["statuses"]["items"]["enum"]
    target_schema = schema["$defs"]["Target"]
    assert target_schema["properties"]["project_id"]["pattern"] == "^[0-9a-f]{32}$"
    assert target_schema["additionalProperties"] is False


def test_schema_says_the_payload_is_the_same_inside_every_envelope() -> None:
    description = payload_schema()["description"]
    assert "The same object in every envelope" in description
    for envelope in ("TIMER", "`user_event`", "API Gateway", "`isBase64Encoded`", "SMN"):
        assert envelope in description
    assert "`selectors[i]` by position in the merged list" in description
    assert "no envelope can turn a configured dry run off" in description


def test_an_empty_key_is_named_as_the_payload_itself() -> None:
    # An empty key has no name to show: the problem is placed at the payload.
    assert problems_of({"": 1, "targets": [target()]}) == ("payload: unknown key",)


class Worded(BaseModel):
    """A model whose every constraint describe_errors has words for."""

    name: str = Field("abc", min_length=3)
    nick: str = Field("x", min_length=1)
    tags: list[str] = Field(default_factory=lambda: ["a"], min_length=1)
    pair: list[str] = Field(default_factory=lambda: ["a", "b"], min_length=2)
    size: int = 5

    @field_validator("size")
    @classmethod
    def _small(cls, value: int) -> int:
        if value >= 10:
            raise AssertionError("must be under 10")  # pydantic: "Assertion failed, ..."
        if value == 7:
            # An error type we have words for, without the context its words need.
            raise PydanticCustomError("greater_than", "seven is not allowed")
        return value


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"name": "ab"}, "name: must have at least 3 characters"),
        ({"nick": ""}, "nick: must not be empty"),
        ({"tags": []}, "tags: must not be empty"),
        ({"pair": ["a"]}, "pair: must have at least 2 entries, not 1"),
        ({"size": 11}, "size: must be under 10"),
        ({"size": 7}, "size: must be more than"),
    ],
)
def test_constraint_problems_are_in_our_words(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Worded(**given)
    assert describe_errors(caught.value) == [problem]
