"""Problems in words: validation errors as `location: message` lines, never echoing input. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        loc = (*prefix, *error["loc"])
        field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
        message = _message(error["type"], field, error.get("ctx") or {}, str(error["msg"]))
        if not loc:
            problems.append(message)
            continue
        first = str(loc[0])
        root = (roots or {}).get(first, first)
        problems.append(f"{_location((root, *loc[1:]))}: {message}")
    return problems


# Pydantic's error types in our words. Only constraint values from the model are used (a bound,
# the values allowed, how many entries there were), never the input itself.
_TYPE_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false (or 1/0, yes/no, on/off)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "frozen_set_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "string_pattern_mismatch": "has a form that is not allowed here",
    "too_short": "must have at least {min_length} entries, not {actual_length}",
    "too_long": "must have at most {max_length} entries, not {actual_length}",
}


def _message(kind: str, field: str, context: Mapping[str, Any], fallback: str) -> str:
    """One pydantic error in our words; a value error's own text is ours already."""
    if kind == "string_pattern_mismatch" and field in _PATTERN_MESSAGES:
        return _PATTERN_MESSAGES[field]
    if kind in ("string_too_short", "too_short") and context.get("min_length") == 1:
        return "must not be empty"
    template = _TYPE_MESSAGES.get(kind)
    if template is None:
        return fallback.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in context.items()}
    try:
        return template.format(**shown)
    except (KeyError, IndexError, ValueError):
        return template.split(" {")[0]


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
