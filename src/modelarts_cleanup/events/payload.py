"""The canonical payload: which instances to delete, and how its JSON text is read. Pure.

The envelopes it arrives in (TIMER, API Gateway, SMN) are unwrapped by `envelopes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..exceptions import PayloadError
from ..vocabulary import InstanceId, ProjectId
from .problems import describe_errors, printable, type_name

# FunctionGraph accepts events of a few MB; a cleanup list never needs that much, and refusing early
# keeps a hostile event from costing memory or time.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_TARGETS = 5000
# Deeper than any valid payload can be; stops pathological nesting before json or pydantic recurse.
_MAX_DEPTH = 32


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


def keys_beside(envelope: Mapping[Any, Any], inside: str) -> list[str]:
    """Payload keys found next to an envelope instead of inside it.

    Ignoring them would be unsafe: a `"dry_run": true` beside the body must not vanish silently.
    """
    return [
        f"{key}: belongs inside {inside}, not beside it"
        for key in Payload.model_fields
        if key in envelope
    ]
