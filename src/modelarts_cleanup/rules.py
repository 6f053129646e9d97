"""Rules: selectors that pick instances of a project by status, age and name.

Checked only when a payload (or a setting) has selectors, so a run that names its targets never
loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .payload import ProjectId, describe_errors
from .vocabulary import STATUSES, Status

NameGlob = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="shell-style pattern matched against the whole name, case-sensitive "
        "(* any run, ? one character, [abc] one of)",
    ),
]
MAX_HOURS = 24 * 3650


class Selector(BaseModel):
    """A rule that picks instances of one project by status, age and name."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    project_id: ProjectId
    statuses: tuple[Status, ...] = Field(
        min_length=1,
        max_length=len(STATUSES),
        description="Only instances in one of these statuses (required: a rule never means "
        "'every status').",
    )
    idle_hours: float | None = Field(
        default=None,
        gt=0,
        le=MAX_HOURS,
        description="Only instances not updated for at least this many hours.",
    )
    older_than_hours: float | None = Field(
        default=None,
        gt=0,
        le=MAX_HOURS,
        description="Only instances created at least this many hours ago.",
    )
    name_pattern: NameGlob | None = Field(
        default=None, description="Only instances whose name matches this pattern."
    )
    exclude_names: tuple[NameGlob, ...] = Field(
        default=(), max_length=50, description="Never instances whose name matches one of these."
    )

    @field_validator("statuses", "exclude_names", mode="before")
    @classmethod
    def _lists_are_tuples(cls, value: object) -> object:
        # Strict mode wants a tuple; JSON only has lists.
        return tuple(value) if isinstance(value, list) else value


def parse_selectors(raw: Sequence[object], *, where: str) -> tuple[list[Selector], list[str]]:
    """Each selector that is a JSON object, checked; problems located as `where[i].key`.

    Entries that are not objects are left to the caller, which reports them already.
    """
    selectors: list[Selector] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        try:
            selectors.append(Selector.model_validate(item))
        except ValidationError as exc:
            problems.extend(describe_errors(exc, prefix=(where, index)))
    return selectors, problems
