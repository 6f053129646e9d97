"""The canonical payload: which instances to delete, and how its JSON text is read. Pure.

The envelopes it arrives in (TIMER, API Gateway, SMN) are unwrapped by `envelopes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..exceptions import PayloadError
from ..vocabulary import INSTANCE_ID_PATTERN, INSTANCE_ID_RULE, PROJECT_ID_PATTERN, PROJECT_ID_RULE

# FunctionGraph accepts events of a few MB; a cleanup list never needs that much, and refusing early
# keeps a hostile event from costing memory or time.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_TARGETS = 5000
# Deeper than any valid payload can be; stops pathological nesting before json or pydantic recurse.
_MAX_DEPTH = 32

_PATTERN_MESSAGES = {
    "project_id": PROJECT_ID_RULE,
    "instance_id": INSTANCE_ID_RULE,
    "name_pattern": "must not contain control characters",
    "workspace_ids": '"0" or 32 lowercase hexadecimal characters (a workspace ID)',
    "owners": "must not contain control characters",
    "pools": '"public", "dedicated", or a pool ID (4 to 64 lower-case letters, digits, hyphens)',
}


# The schema says it too: the payload is this one object whichever way it arrives.
ENVELOPES_DESCRIPTION = (
    "What to delete. The same object in every envelope: sent as the event itself (direct "
    "invocation, `invoke`); as JSON text in a FunctionGraph TIMER event's `user_event` (empty: "
    "the configured default targets); as the body of a POST through API Gateway (Base64 or "
    "not, as the event's `isBase64Encoded` says); as the `smn.message` of each record of an SMN "
    "event, several records making one run (targets deduplicated, selectors kept in order and "
    "named `selectors[i]` by position in the merged list, a dry run if any message asks for "
    "one). Nothing outside the payload changes the run, and no envelope can turn a configured "
    "dry run off."
)


ProjectId = Annotated[
    str, Field(pattern=PROJECT_ID_PATTERN, description="32 lowercase hexadecimal characters")
]
InstanceId = Annotated[
    str,
    Field(pattern=INSTANCE_ID_PATTERN, description="UUID, optionally prefixed 'DE-' (old API)"),
]


class Target(BaseModel):
    """One instance to delete."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    project_id: ProjectId
    instance_id: InstanceId


# Rules are checked by `rules`, loaded only when a payload has some (see parse_payload).
MAX_SELECTORS = 50
if TYPE_CHECKING:
    from .rules import Selector

    Selectors = list[Selector]
else:
    Selectors = list[dict[str, Any]]


class Payload(BaseModel):
    """The canonical payload."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        title="modelarts-cleanup payload",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": ENVELOPES_DESCRIPTION,
            "anyOf": [
                {"required": ["targets"], "properties": {"targets": {"minItems": 1}}},
                {"required": ["selectors"], "properties": {"selectors": {"minItems": 1}}},
            ],
        },
    )

    targets: list[Target] = Field(
        default=[],
        max_length=MAX_TARGETS,
        description="Instances to delete; duplicate pairs are handled once.",
    )
    selectors: Selectors = Field(
        default=[],
        max_length=MAX_SELECTORS,
        description="Rules that pick instances to delete from a listing of their project.",
    )
    dry_run: bool = Field(
        default=False,
        description="Report what would be deleted and delete nothing. Can only make a run safer.",
    )

    @field_validator("targets")
    @classmethod
    def _merge_duplicates(cls, targets: list[Target]) -> list[Target]:
        # Selectors are kept as given: results name them by position (`selectors[i]`).
        return list(dict.fromkeys(targets))

    @model_validator(mode="after")
    def _something_to_do(self) -> Payload:
        if not self.targets and not self.selectors:
            raise ValueError("nothing to do: give at least one target or selector")
        return self


def payload_schema() -> dict[str, Any]:
    """The JSON Schema of the canonical payload."""
    from .rules import Selector

    schema = Payload.model_json_schema()
    rule = Selector.model_json_schema(ref_template="#/$defs/{model}")
    definitions = schema.setdefault("$defs", {})
    definitions.update(rule.pop("$defs", {}))
    definitions["Selector"] = rule
    schema["properties"]["selectors"]["items"] = {"$ref": "#/$defs/Selector"}
    return schema


def parse_payload(obj: object) -> Payload:
    """Validate a canonical payload object (already decoded from JSON)."""
    problems = _shape_problems(obj)
    if problems:
        raise PayloadError(problems)
    assert isinstance(obj, Mapping)  # noqa: S101  (_shape_problems refuses anything else)
    payload: Payload | None = None
    try:
        payload = Payload.model_validate(obj)
    except ValidationError as exc:
        problems = describe_errors(exc)
    raw = obj.get("selectors")
    selectors: list[Selector] = []
    if isinstance(raw, list) and 0 < len(raw) <= MAX_SELECTORS:
        from .rules import parse_selectors

        selectors, wrong = parse_selectors(raw, where="selectors")
        problems.extend(wrong)
    if problems or payload is None:
        raise PayloadError(problems)
    return payload.model_copy(update={"selectors": selectors}) if selectors else payload


def decode_json(raw: bytes | str, *, where: str) -> object:
    """JSON text to a document, refusing what no payload needs: size, depth, NUL, repeated keys.

    `where` names the text in every problem (`event`, `user_event`, `body`, ...).
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError([f"{where}: {size} bytes, more than the {MAX_PAYLOAD_BYTES} allowed"])
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if "\x00" in text:
            raise PayloadError([f"{where}: contains a NUL character"])
        if _nesting_depth(text) > _MAX_DEPTH:
            raise PayloadError([f"{where}: nested deeper than {_MAX_DEPTH} levels"])
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise PayloadError([f"{where}: not valid UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            [f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
        ) from None
    except _DuplicateKey as exc:
        raise PayloadError([f"{where}: the key {printable(exc.key)!r} appears twice"]) from None
    except ValueError:
        # e.g. an integer longer than Python converts (sys.get_int_max_str_digits)
        raise PayloadError([f"{where}: not valid JSON (a number too large to read)"]) from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON lets a key repeat and keeps the last; which one wins must never decide a deletion."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _nesting_depth(text: str) -> int:
    """Upper bound of JSON nesting (brackets inside strings count too: safe side)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _shape_problems(obj: object) -> list[str]:
    """Problems pydantic would not phrase well: wrong top-level type, size and depth."""
    if not isinstance(obj, Mapping):
        return [f"payload: must be a JSON object, not {type_name(obj)}"]
    if _depth(obj) > _MAX_DEPTH:
        return [f"payload: nested deeper than {_MAX_DEPTH} levels"]
    try:
        size = len(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return ["payload: holds values that are not JSON (only objects, lists, strings, ...)"]
    if size > MAX_PAYLOAD_BYTES:
        return [f"payload: {size} bytes, more than the {MAX_PAYLOAD_BYTES} allowed"]
    targets = obj.get("targets")
    if isinstance(targets, list) and len(targets) > MAX_TARGETS:
        return [f"targets: {len(targets)} entries, more than the {MAX_TARGETS} allowed"]
    return []


def _depth(obj: object, level: int = 0) -> int:
    if level > _MAX_DEPTH:
        return level
    if isinstance(obj, Mapping):
        return max((_depth(v, level + 1) for v in obj.values()), default=level + 1)
    if isinstance(obj, (list, tuple)):
        return max((_depth(v, level + 1) for v in obj), default=level + 1)
    return level


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
