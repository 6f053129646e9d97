"""Selectors applied to a listing: what a rule picks, and what it must keep. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..cloud.instances import ListedInstance
from ..events.rules import Selector
from ..events.tags import TagCondition, any_holds
from .guard import refusal
from .report import Reason

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Pick:
    """An instance a selector picked: to delete, or kept back with the reason (fail closed)."""

    instance: ListedInstance
    refusal: str | None

    @property
    def instance_id(self) -> str:
        """The picked instance's ID."""
        return self.instance.instance_id

    @property
    def name(self) -> str | None:
        """The picked instance's name, as listed."""
        return self.instance.name


def select(
    selector: Selector,
    instances: Iterable[ListedInstance],
    *,
    now_ms: int,
    protect: Sequence[TagCondition] = (),
) -> list[Pick]:
    """The instances this selector picks, in listing order.

    Every criterion is true, false or unknown (a field that cannot be read). Any false: not
    picked. A picked instance carrying a protect tag is kept (`protected`); any unknown keeps it
    too (`state_unreadable`), and so do unreadable tags while protect tags are configured. All
    true: deleted, unless the instance is on pre-paid billing (`prepaid`) or its billing cannot
    be read (`billing_unreadable`).
    """
    picks = []
    for instance in instances:
        verdict = evaluate(selector, instance, now_ms=now_ms)
        if verdict is not False:
            picks.append(Pick(instance, _refusal(verdict, instance, protect)))
    return picks


def evaluate(selector: Selector, instance: ListedInstance, *, now_ms: int) -> bool | None:
    """True if every criterion holds, False if one fails, None if one cannot be read."""
    verdicts = (
        None if instance.status is None else instance.status in selector.statuses,
        _at_least(instance.updated_ms, selector.idle_hours, now_ms),
        _at_least(instance.created_ms, selector.older_than_hours, now_ms),
        _name(selector, instance.name),
        _tags(selector, instance),
        _owner(selector, instance),
        _pool(selector, instance),
    )
    if False in verdicts:
        return False
    return None if None in verdicts else True


def recheck(
    selector: Selector,
    fresh: ListedInstance,
    *,
    now_ms: int,
    protect: Sequence[TagCondition] = (),
) -> str | None:
    """Just before deleting: None if the instance still qualifies, else why it no longer does."""
    verdict = evaluate(selector, fresh, now_ms=now_ms)
    if verdict is False:
        return Reason.STATE_CHANGED.value
    refusal = _refusal(verdict, fresh, protect)
    # Unreadable now where it was readable at listing: the state changed, as far as we can tell.
    return Reason.STATE_CHANGED.value if refusal == Reason.STATE_UNREADABLE.value else refusal


def _refusal(
    verdict: bool | None, instance: ListedInstance, protect: Sequence[TagCondition]
) -> str | None:
    kept = refusal(instance, protect)  # the same protect tags as a named target's
    if kept is not None:
        return kept
    if verdict is None:
        return Reason.STATE_UNREADABLE.value
    return _billing_refusal(instance.billing)


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


def _tags(selector: Selector, instance: ListedInstance) -> bool | None:
    if not selector.tags and not selector.exclude_tags:
        return True
    if instance.tags is None:
        return None
    if not all(condition.holds(instance.tags) for condition in selector.tags):
        return False
    return any_holds(selector.exclude_tags, instance.tags) is None


def _owner(selector: Selector, instance: ListedInstance) -> bool | None:
    if not selector.owners:
        return True
    known = {v for v in (instance.owner_id, instance.owner_name) if v is not None}
    if not known:
        return None
    return not known.isdisjoint(selector.owners)


def _pool(selector: Selector, instance: ListedInstance) -> bool | None:
    if not selector.pools:
        return True
    if instance.pool_unreadable:
        return None
    wanted = set(selector.pools)
    if instance.pool is None:
        return "public" in wanted
    return "dedicated" in wanted or instance.pool[0] in wanted


def _billing_refusal(billing: str | None) -> str | None:
    if billing == "postpaid":
        return None
    reason = Reason.PREPAID if billing == "prepaid" else Reason.BILLING_UNREADABLE
    return reason.value
