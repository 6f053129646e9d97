"""The envelopes a payload arrives in, recognised by their documented shapes and unwrapped. Pure.

- direct: the canonical object itself (console test, `invoke`, other platforms);
- TIMER: `{"trigger_type": "TIMER", ..., "user_event": "<payload as JSON text>"}`;
- API Gateway: `{"requestContext": {...}, "httpMethod": ..., "body": ..., "isBase64Encoded": ...}`;
- SMN: `{"record": [{"event_source": "smn", "smn": {"message": ...}, ...}, ...], ...}`.

Recognising is cheap and lives here; unwrapping an API Gateway or SMN event lives in `apig` and
`smn`, imported only when such an event arrives, so a direct or timer run never loads them.
Anything that is none of these shapes is read as a canonical payload, and refused as one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..exceptions import PayloadError
from .payload import Payload, Target, decode_json, parse_payload
from .problems import type_name

if TYPE_CHECKING:
    from .rules import Selector


class Envelope(str, Enum):
    """How an event carries its payload."""

    DIRECT = "direct"
    TIMER = "timer"
    APIG = "apig"
    SMN = "smn"


@dataclass(frozen=True)
class Received:
    """An event, decoded from JSON text if it came as text, and what envelope it is."""

    envelope: Envelope
    document: object


def receive(event: object) -> Received:
    """Decode the event if it is JSON text, and recognise its envelope; nothing is validated yet."""
    if isinstance(event, (bytes, str)):
        event = decode_json(event, where="event")
    return Received(_recognise(event), event)


def unwrap(
    received: Received,
    *,
    default_targets: Sequence[Target] = (),
    default_selectors: Sequence[Selector] = (),
) -> Payload:
    """The canonical payload inside a received event, validated.

    A timer event with an empty user event means the defaults: the targets and the selectors
    the settings hold.
    """
    document = received.document
    if received.envelope is Envelope.DIRECT or not isinstance(document, Mapping):
        return parse_payload(document)
    if received.envelope is Envelope.TIMER:
        return _timer_payload(document, default_targets, default_selectors)
    if received.envelope is Envelope.APIG:
        from .apig import request_payload

        return request_payload(document)
    from .smn import merged_payload

    return merged_payload(document)


def parse_event(
    event: object,
    *,
    default_targets: Sequence[Target] = (),
    default_selectors: Sequence[Selector] = (),
) -> Payload:
    """Unwrap any accepted envelope and validate the payload inside it."""
    return unwrap(
        receive(event), default_targets=default_targets, default_selectors=default_selectors
    )


def _recognise(event: object) -> Envelope:
    if not isinstance(event, Mapping):
        return Envelope.DIRECT
    if "trigger_type" in event:
        return Envelope.TIMER
    # Both keys, of the documented types: an object that merely has a `body` is not a request.
    if isinstance(event.get("requestContext"), Mapping) and isinstance(
        event.get("httpMethod"), str
    ):
        return Envelope.APIG
    records = event.get("record")
    if isinstance(records, list) and records and all(_is_smn_record(r) for r in records):
        return Envelope.SMN
    return Envelope.DIRECT


def _is_smn_record(record: object) -> bool:
    return (
        isinstance(record, Mapping)
        and record.get("event_source") == "smn"
        and isinstance(record.get("smn"), Mapping)
    )


def _timer_payload(
    event: Mapping[Any, Any],
    default_targets: Sequence[Target],
    default_selectors: Sequence[Selector],
) -> Payload:
    trigger = event.get("trigger_type")
    if trigger != "TIMER":
        raise PayloadError(
            [
                f"trigger_type: only TIMER events are accepted, not {_show(trigger)} "
                "(API Gateway and SMN events are recognised by their own shapes)"
            ]
        )
    user_event = event.get("user_event", "")
    if user_event is None:
        user_event = ""
    if not isinstance(user_event, str):
        raise PayloadError(["user_event: must be a string holding the payload as JSON"])
    if not user_event.strip():
        if not default_targets and not default_selectors:
            raise PayloadError(
                [
                    "user_event: empty, and neither MODELARTS_CLEANUP_TARGETS nor "
                    "MODELARTS_CLEANUP_SELECTORS is set: nothing says what to delete"
                ]
            )
        # Both were checked when the settings were loaded.
        # No targets: an empty payload (model_construct skips the check that there is work).
        payload = (
            Payload(targets=list(default_targets)) if default_targets else Payload.model_construct()
        )
        return payload.model_copy(update={"selectors": list(default_selectors)})
    return parse_payload(decode_json(user_event, where="user_event"))


def _show(value: object) -> str:
    return repr(value)[:40] if isinstance(value, str) else type_name(value)
