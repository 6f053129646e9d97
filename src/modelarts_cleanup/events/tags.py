"""Tag conditions: `key`, `key=value` or {"key": ..., "value": ...}, checked by TMS rules. Pure.

TMS rules (CreateNotebookTags, `TmsTag`): a key has 1 to 128 characters, letters of any language,
digits, space and `_ . : = + - @`, no space at either end, and does not start with `_sys_`; a
value has up to 255 characters, the same and `/`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..vocabulary import MARK_KEY

# \w is Unicode-aware: letters and digits of any language, and `_`.
_KEY = re.compile(r"[\w .:=+\-@]{1,128}")
_VALUE = re.compile(r"[\w .:/=+\-@]{0,255}")
MAX_CONDITIONS = 20
# The mark of a grace period (MARK_KEY): when the instance may be deleted, RFC 3339 UTC to the
# second.
_MARK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_MARK = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TagCondition:
    """A tag that must be there: this key with any value, or with exactly this value."""

    key: str
    value: str | None = None

    def holds(self, tags: Iterable[tuple[str, str]]) -> bool:
        """Whether the instance carries this tag."""
        return any(k == self.key and self.value in (None, v) for k, v in tags)

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


def check_key(key: object) -> str:
    """The key, if TMS allows it; else ValueError saying what is wrong (never echoing it)."""
    if not isinstance(key, str):
        raise ValueError("a tag key must be a string")
    if not _KEY.fullmatch(key):
        raise ValueError(
            "a tag key has 1 to 128 letters, digits, spaces or _ . : = + - @ characters"
        )
    if key != key.strip():
        raise ValueError("a tag key must not start or end with a space")
    if key.startswith("_sys_"):
        raise ValueError("a tag key must not start with _sys_ (reserved)")
    return key


def check_value(value: object) -> str:
    """The value, if TMS allows it; else ValueError."""
    if not isinstance(value, str):
        raise ValueError("a tag value must be a string")
    if not _VALUE.fullmatch(value):
        raise ValueError(
            "a tag value has at most 255 letters, digits, spaces or _ . : / = + - @ characters"
        )
    return value


def parse_condition(item: Any) -> TagCondition:
    """One condition in any of its three forms; ValueError says what is wrong."""
    if isinstance(item, TagCondition):
        return item
    if isinstance(item, str):
        # Split at the first `=`: a key holding `=` needs the object form.
        key, sep, value = item.partition("=")
        return TagCondition(check_key(key), check_value(value) if sep else None)
    if isinstance(item, dict):
        unknown = set(item) - {"key", "value"}
        if unknown:
            raise ValueError("a tag condition object has only `key` and `value`")
        if "key" not in item:
            raise ValueError("a tag condition object needs `key`")
        given = item.get("value")
        return TagCondition(check_key(item["key"]), None if given is None else check_value(given))
    raise ValueError('a tag condition is "key", "key=value" or {"key": ..., "value": ...}')


def parse_conditions(items: Sequence[Any]) -> tuple[TagCondition, ...]:
    """Several conditions, in order; ValueError names the first wrong one by position."""
    if len(items) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} tag conditions")
    return tuple(_numbered(index, item) for index, item in enumerate(items))


def _numbered(index: int, item: Any) -> TagCondition:
    try:
        return parse_condition(item)
    except ValueError as exc:
        raise ValueError(f"[{index}]: {exc}") from None


def any_holds(conditions: Iterable[TagCondition], tags: Tags) -> TagCondition | None:
    """The first condition the tags satisfy, or None."""
    return next((c for c in conditions if c.holds(tags)), None)


# What the JSON Schema says a condition is.
CONDITION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "minLength": 1,
            "description": 'a key (any value), or "key=value" split at the first "="',
        },
        {
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 1, "maxLength": 128},
                "value": {"type": "string", "maxLength": 255},
            },
            "required": ["key"],
            "additionalProperties": False,
            "description": "the only form for a key that holds '='; without value: any value",
        },
    ]
}


def mark_value(epoch_ms: int) -> str:
    """The mark's value for a moment: `2026-12-02T02:00:00Z`."""
    return datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc).strftime(_MARK_FORMAT)


def read_mark(tags: Tags) -> tuple[bool, int | None]:
    """(whether the instance carries the mark, its moment in epoch ms or None if unreadable).

    Only the form this function writes is read; anything else (a hand-edited date, another
    format) is unreadable, and an unreadable mark is never taken as passed.
    """
    values = [v for k, v in tags if k == MARK_KEY]
    if not values:
        return False, None
    if len(values) != 1 or not _MARK.fullmatch(values[0]):
        return True, None
    try:
        when = datetime.strptime(values[0], _MARK_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:  # right shape, impossible date (2026-02-30)
        return True, None
    return True, int(when.timestamp()) * 1000
