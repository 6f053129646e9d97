"""Named targets read before they are deleted: gone, protected, or what the read gave.

A payload that names an instance is no reason to delete one its owner tagged to keep. While
protect tags are set, each named target is read first (one GET); every dry run reads them too,
so that a plan says what the real run would do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..cloud.instances import ListedInstance, describe
from ..events.payload import Target
from ..events.tags import any_holds
from .report import Reason

if TYPE_CHECKING:
    from ..events.tags import TagCondition


class ReadingClient(Protocol):
    """What the guard needs from a ModelArts client."""

    def get_listed_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> ListedInstance | None: ...


@dataclass(frozen=True)
class Reading:
    """What the read of a named target found: why to keep it (None: delete it) and what it is."""

    reason: str | None
    name: str | None
    details: Mapping[str, Any]


ReadNamed = Callable[[Target], "Reading | None"]


def refusal(instance: ListedInstance, protect: Sequence[TagCondition]) -> str | None:
    """Why a named instance is kept: a protect tag, or tags that cannot be read while protect
    tags are set (`state_unreadable`), as for a selected one; None: nothing keeps it."""
    if not protect:
        return None
    if instance.tags is None:
        return Reason.STATE_UNREADABLE.value
    if any_holds(protect, instance.tags) is not None:
        return Reason.PROTECTED.value
    return None


def named_reader(
    client: ReadingClient, deadline: float | None, protect: Sequence[TagCondition]
) -> ReadNamed:
    """Reads one named target (None when it is gone); the read obeys the deadline's admission."""

    def read(target: Target) -> Reading | None:
        found = client.get_listed_instance(target.project_id, target.instance_id, deadline=deadline)
        if found is None:
            return None
        return Reading(refusal(found, protect), found.name, describe(found))

    return read
