"""Tag conditions: the three forms, the TMS rules they are checked by, and what a refusal says."""

from __future__ import annotations

import re

import pytest

from modelarts_cleanup.events.tags import (
    MAX_CONDITIONS,
    TagCondition,
    parse_condition,
    parse_conditions,
)

KEY_RULE = "a tag key has 1 to 128 letters, digits, spaces or _ . : = + - @ characters"
VALUE_RULE = "a tag value has at most 255 letters, digits, spaces or _ . : / = + - @ characters"


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"key": 7}, "a tag key must be a string"),
        ({"key": "team", "value": 7}, "a tag value must be a string"),
        ("team#1", KEY_RULE),
        ("", KEY_RULE),
        ("team=a#b", VALUE_RULE),
        ({"key": "team", "value": "v" * 256}, VALUE_RULE),
        (" team", "a tag key must not start or end with a space"),
        ("_sys_enterprise_project_id", "a tag key must not start with _sys_ (reserved)"),
        ({"key": "team", "colour": "red"}, "a tag condition object has only `key` and `value`"),
        ({"value": "ml"}, "a tag condition object needs `key`"),
        (["team"], 'a tag condition is "key", "key=value" or {"key": ..., "value": ...}'),
    ],
)
def test_a_condition_that_breaks_a_rule_says_which(item: object, says: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(says)}$"):
        parse_condition(item)


def test_at_most_twenty_conditions_and_the_wrong_one_named_by_position() -> None:
    assert len(parse_conditions(["team"] * MAX_CONDITIONS)) == MAX_CONDITIONS
    with pytest.raises(ValueError, match=r"^at most 20 tag conditions$"):
        parse_conditions(["team"] * (MAX_CONDITIONS + 1))
    with pytest.raises(ValueError, match=r"^\[1\]: a tag key must not start with _sys_"):
        parse_conditions(["team", "_sys_x"])


def test_a_condition_reads_back_in_its_short_form() -> None:
    assert str(TagCondition("expires")) == "expires"
    assert str(TagCondition("team", "ml")) == "team=ml"
    assert str(TagCondition("team", "")) == "team="
