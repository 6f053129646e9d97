"""The envelopes a payload arrives in, unwrapped to it. Pure.

- direct: the canonical object itself (console test, `invoke`, other platforms);
- TIMER: `{"trigger_type": "TIMER", ..., "user_event": "<payload as JSON text>"}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .exceptions import PayloadError
from .payload import Payload, Target, decode_json, parse_payload, type_name


def parse_event(event: object, *, default_targets: Sequence[Target] = ()) -> Payload:
    """Unwrap any accepted envelope and validate the payload inside it."""
    if isinstance(event, (bytes, str)):
        event = decode_json(event, where="event")
    if isinstance(event, Mapping) and "trigger_type" in event:
        return _timer_payload(event, default_targets)
    return parse_payload(event)


def _timer_payload(event: Mapping[Any, Any], default_targets: Sequence[Target]) -> Payload:
    trigger = event.get("trigger_type")
    if trigger != "TIMER":
        raise PayloadError([f"trigger_type: only TIMER events are accepted, not {_show(trigger)}"])
    user_event = event.get("user_event", "")
    if user_event is None:
        user_event = ""
    if not isinstance(user_event, str):
        raise PayloadError(["user_event: must be a string holding the payload as JSON"])
    if not user_event.strip():
        if not default_targets:
            raise PayloadError(
                [
                    "user_event: empty, and MODELARTS_CLEANUP_TARGETS is not set: "
                    "nothing says what to delete"
                ]
            )
        return Payload(targets=list(default_targets))
    return parse_payload(decode_json(user_event, where="user_event"))


def _show(value: object) -> str:
    return repr(value)[:40] if isinstance(value, str) else type_name(value)
