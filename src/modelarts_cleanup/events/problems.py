"""Problems in words: validation errors as `location: message` lines, never echoing input. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from ..vocabulary import INSTANCE_ID_RULE, PROJECT_ID_RULE

_PATTERN_MESSAGES = {
    "project_id": PROJECT_ID_RULE,
    "instance_id": INSTANCE_ID_RULE,
    "name_pattern": "must not contain control characters",
    "workspace_ids": '"0" or 32 lowercase hexadecimal characters (a workspace ID)',
    "owners": "must not contain control characters",
    "pools": '"public", "dedicated", or a pool ID (4 to 64 lower-case letters, digits, hyphens)',
}


def describe_errors(
    exc: ValidationError,
    roots: Mapping[str, str] | None = None,
    *,
    prefix: tuple[int | str, ...] = (),
) -> list[str]:
    """One line per problem, `location: message`, never echoing the input.

    `roots` renames the first element of a location (a field name to its environment variable);
    `prefix` says where the validated value sits in a larger document.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = (*prefix, *error["loc"])
        field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
        if error["type"] == "string_pattern_mismatch" and field in _PATTERN_MESSAGES:
            message = _PATTERN_MESSAGES[field]
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            problems.append(message)
            continue
        first = str(loc[0])
        root = (roots or {}).get(first, first)
        problems.append(f"{_location((root, *loc[1:]))}: {message}")
    return problems


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{printable(part)}" if text else printable(part)
    return text or "payload"


def printable(key: str) -> str:
    """A key (or any text from the input) as it can be shown: shortened and escaped."""
    shown = key if len(key) <= 40 else key[:40] + "..."
    return shown.encode("unicode_escape").decode("ascii")


def type_name(value: object) -> str:
    """A JSON value's type as a problem states it: "an object", "a list", "null", ..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    names.update({int: "a number", float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)
