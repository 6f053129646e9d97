"""Rules: selectors that pick instances of a project by status, age, name, workspace, owner, pool
and tags.

Checked only when a payload (or a setting) has selectors, so a run that names its targets never
loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from ..vocabulary import STATUSES, ProjectId, Status
from .problems import describe_errors
from .tags import CONDITION_SCHEMA, MAX_CONDITIONS, TagCondition, parse_condition

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
MAX_GRACE_HOURS = 2160  # 90 days
# Workspace IDs: "0" (the default workspace) or a 32-hex UUID without hyphens (ListWorkspace).
WorkspaceId = Annotated[
    str,
    Field(
        pattern=r"^(0|[0-9a-f]{32})$",
        description='"0" (the default workspace) or 32 lowercase hexadecimal characters',
    ),
]
# IAM user IDs are 32 lowercase hex characters; user names anything printable.
Owner = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a user name, or a 32-hex user ID, as the notebook's `user` shows it",
    ),
]
# Pool IDs: 4 to 64 characters, lower-case letters, digits and hyphens, a letter first and no
# hyphen last (ListAllNotebooks `pool_id`).
PoolRef = Annotated[
    str,
    Field(
        pattern=r"^(public|dedicated|[a-z][a-z0-9-]{2,62}[a-z0-9])$",
        description='"public", "dedicated", or a dedicated pool\'s ID',
    ),
]
Condition = Annotated[
    TagCondition, PlainValidator(parse_condition), WithJsonSchema(CONDITION_SCHEMA)
]


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
    workspace_ids: tuple[WorkspaceId, ...] = Field(
        default=(),
        max_length=100,
        description="Only these workspaces (default: every workspace of the project).",
    )
    tags: tuple[Condition, ...] = Field(
        default=(),
        max_length=MAX_CONDITIONS,
        description="Only instances carrying every one of these tags.",
    )
    exclude_tags: tuple[Condition, ...] = Field(
        default=(),
        max_length=MAX_CONDITIONS,
        description="Never instances carrying any one of these tags.",
    )
    owners: tuple[Owner, ...] = Field(
        default=(),
        max_length=100,
        description="Only instances created by one of these users (names or IDs).",
    )
    grace_hours: float | None = Field(
        default=None,
        ge=1,
        le=MAX_GRACE_HOURS,
        description="Warn first: mark what the rule picks with the tag "
        "modelarts-cleanup:delete-after (now + this many hours) and delete it only in a later "
        "run after that time, if the rule still picks it.",
    )
    pools: tuple[PoolRef, ...] = Field(
        default=(),
        max_length=20,
        description='Only instances on one of these: "public", "dedicated" (any dedicated '
        "pool), or a dedicated pool's ID.",
    )

    @field_validator(
        "statuses",
        "exclude_names",
        "workspace_ids",
        "tags",
        "exclude_tags",
        "owners",
        "pools",
        mode="before",
    )
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
