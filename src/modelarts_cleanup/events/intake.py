"""One way down for an event: recognised, unwrapped, validated, then checked against the settings.

The entry hands an event to `receive` (which envelope: API Gateway's caller gets answers of its
own), then to `accept`, and gets back a payload or the one `PayloadError` that lists every problem.
Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import PayloadError
from ..vocabulary import ApiGeneration
from .envelopes import Received, receive, unwrap
from .payload import Payload, Target

if TYPE_CHECKING:
    from .rules import Selector

__all__ = ["Expectations", "accept", "check_generation", "receive"]


@dataclass(frozen=True)
class Expectations:
    """What the settings say of payloads: the API generation, and a timer's defaults."""

    api: ApiGeneration
    default_targets: Sequence[Target] = ()
    default_selectors: Sequence[Selector] = ()


def accept(received: Received, expect: Expectations) -> Payload:
    """The payload a received event carries, validated and checked against the settings."""
    payload = unwrap(
        received,
        default_targets=expect.default_targets,
        default_selectors=expect.default_selectors,
    )
    check_generation(payload, expect.api)
    return payload


def check_generation(payload: Payload, api: ApiGeneration) -> None:
    """What one API generation cannot do: 'DE-' IDs exist only in the old API (the new one would
    call them absent, which is a lie); grace periods need tags, which only the new one has."""
    if api is ApiGeneration.DEVENVIRON:
        problems = [
            f"selectors[{i}].grace_hours: a grace period marks notebooks with a tag, which only "
            "the notebook API has, but MODELARTS_CLEANUP_API is devenviron"
            for i, s in enumerate(payload.selectors)
            if s.grace_hours is not None
        ]
    else:
        problems = [
            f"targets[{i}].instance_id: 'DE-' IDs belong to the devenviron API, "
            f"but MODELARTS_CLEANUP_API is {api.value}"
            for i, t in enumerate(payload.targets)
            if t.instance_id.startswith("DE-")
        ]
    if problems:
        raise PayloadError(problems)
