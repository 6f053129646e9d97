"""Grace periods: a rule with `grace_hours` marks what it picks and deletes it in a later run. Pure.

The mark is the tag `modelarts-cleanup:delete-after` on the instance itself, where its owner sees
it: its value is the moment after which the rule may delete it. A run decides per instance:

- picked, no mark: mark it (now + grace), delete nothing;
- picked, a mark still in the future: it waits (reported `marked` again, nothing written);
- picked, a mark that has passed: delete it (read again first, as every selected instance);
- picked, a mark that cannot be read: keep it (`mark_unreadable`), the mark left alone;
- kept back by the rule (protected, unreadable state, pre-paid) or not picked at all, but
  marked: take the mark off. An owner keeps a notebook with a protect tag; removing the mark
  only restarts the grace period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..cloud.instances import ListedInstance
from ..events.tags import mark_value, read_mark
from .report import Reason

HOUR_MS = 3_600_000

Action = Literal["delete", "mark", "wait", "unmark", "keep"]


@dataclass(frozen=True)
class Decision:
    """What a run does with one instance a grace rule covers."""

    action: Action
    delete_after: str | None  # the mark written, waiting or passed
    reason: str | None = None  # why it is kept, or why its mark comes off


def decide(
    instance: ListedInstance, refusal: str | None, *, grace_hours: float, now_ms: int
) -> Decision:
    """For an instance the rule picked (`refusal`: why it keeps it back, if it does)."""
    if instance.tags is None and refusal is None:
        # Whether it is marked cannot be told: never write (or delete) on a guess.
        return Decision("keep", None, Reason.STATE_UNREADABLE.value)
    marked, when = read_mark(instance.tags or ())
    if refusal is not None:
        if marked:
            return Decision("unmark", _shown(when), refusal)
        return Decision("keep", None, refusal)
    if not marked:
        return Decision("mark", mark_value(now_ms + round(grace_hours * HOUR_MS)))
    if when is None:
        return Decision("keep", None, Reason.MARK_UNREADABLE.value)
    if when > now_ms:
        return Decision("wait", mark_value(when))
    return Decision("delete", mark_value(when))


def mark_on(instance: ListedInstance) -> str | None:
    """The instance's mark, if it carries a readable one."""
    return _shown(read_mark(instance.tags or ())[1])


def carries_mark(instance: ListedInstance) -> bool:
    """Whether the instance carries a mark, readable or not."""
    return read_mark(instance.tags or ())[0]


def still_due(instance: ListedInstance, *, now_ms: int) -> bool:
    """Read again before deleting: the mark is still there, readable, and has passed."""
    marked, when = read_mark(instance.tags or ())
    return marked and when is not None and when <= now_ms


def _shown(when: int | None) -> str | None:
    return None if when is None else mark_value(when)
