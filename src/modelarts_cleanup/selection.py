"""Selectors applied to a project's listing: what a rule picks, and what it must keep. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .instances import ListedInstance
from .report import Reason
from .rules import Selector

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Pick:
    """An instance a selector picked: to delete, or kept back with the reason (fail closed)."""

    instance_id: str
    name: str | None
    status: str | None
    refusal: str | None


def select(selector: Selector, instances: Iterable[ListedInstance], *, now_ms: int) -> list[Pick]:
    """The instances this selector picks, in listing order.

    Every criterion is true, false or unknown (a field that cannot be read). Any false: not
    picked. Any unknown: picked, but kept (`state_unreadable`). All true: deleted, unless the
    instance is on pre-paid billing (`prepaid`) or its billing cannot be read
    (`billing_unreadable`).
    """
    picks = []
    for instance in instances:
        verdict = evaluate(selector, instance, now_ms=now_ms)
        if verdict is not False:
            if verdict is None:
                refusal: str | None = Reason.STATE_UNREADABLE.value
            else:
                refusal = _billing_refusal(instance.billing)
            picks.append(Pick(instance.instance_id, instance.name, instance.status, refusal))
    return picks


def evaluate(selector: Selector, instance: ListedInstance, *, now_ms: int) -> bool | None:
    """True if every criterion holds, False if one fails, None if one cannot be read."""
    verdicts = (
        None if instance.status is None else instance.status in selector.statuses,
        _at_least(instance.updated_ms, selector.idle_hours, now_ms),
        _at_least(instance.created_ms, selector.older_than_hours, now_ms),
        _name(selector, instance.name),
    )
    if False in verdicts:
        return False
    return None if None in verdicts else True


def recheck(selector: Selector, fresh: ListedInstance, *, now_ms: int) -> str | None:
    """Just before deleting: None if the instance still qualifies, else why it no longer does."""
    if evaluate(selector, fresh, now_ms=now_ms) is not True:
        return Reason.STATE_CHANGED.value
    return _billing_refusal(fresh.billing)


def _at_least(timestamp_ms: int | None, hours: float | None, now_ms: int) -> bool | None:
    if hours is None:
        return True
    if timestamp_ms is None:
        return None
    return now_ms - timestamp_ms >= hours * HOUR_MS


def _name(selector: Selector, name: str | None) -> bool | None:
    if selector.name_pattern is None and not selector.exclude_names:
        return True
    if name is None:
        return None
    if selector.name_pattern is not None and not fnmatchcase(name, selector.name_pattern):
        return False
    return not any(fnmatchcase(name, pattern) for pattern in selector.exclude_names)


def _billing_refusal(billing: str | None) -> str | None:
    if billing == "postpaid":
        return None
    reason = Reason.PREPAID if billing == "prepaid" else Reason.BILLING_UNREADABLE
    return reason.value
