"""The one vocabulary: ID patterns, API generations, statuses and error codes. Pure.

Everything that names a project, an instance, a status or a ModelArts error code takes it from
here (payload, settings, client, selection, stopping and the local endpoint), so that no two
copies can drift apart.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal, get_args

from pydantic import Field

PROJECT_ID_PATTERN = r"^[0-9a-f]{32}$"
# UUIDs as ModelArts writes them (lower case); the old API also has `DE-` + UUID.
INSTANCE_ID_PATTERN = r"^(DE-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN, re.ASCII)
_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN, re.ASCII)

PROJECT_ID_RULE = "must be 32 lowercase hexadecimal characters"
INSTANCE_ID_RULE = "must be a lowercase UUID, optionally prefixed 'DE-'"


def is_project_id(value: object) -> bool:
    """Whether value is a well-formed project ID."""
    return isinstance(value, str) and _PROJECT_ID.fullmatch(value) is not None


def is_instance_id(value: object) -> bool:
    """Whether value is a well-formed instance ID (safe to put into a URL path)."""
    return isinstance(value, str) and _INSTANCE_ID.fullmatch(value) is not None


# The field types of every model that names a project or an instance (payload, rules, settings).
ProjectId = Annotated[
    str, Field(pattern=PROJECT_ID_PATTERN, description="32 lowercase hexadecimal characters")
]
InstanceId = Annotated[
    str,
    Field(pattern=INSTANCE_ID_PATTERN, description="UUID, optionally prefixed 'DE-' (old API)"),
]


class RunStatus(str, Enum):
    """The run as a whole."""

    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    REFUSED = "refused"


class ApiGeneration(str, Enum):
    """Which ModelArts API manages the instances."""

    NOTEBOOK = "notebook"
    DEVENVIRON = "devenviron"


# Statuses of both API generations (modelarts-api.md section 2); a selector naming anything else
# is refused, so a typo can never select nothing silently.
Status = Literal[
    "INIT",
    "CREATING",
    "CREATE_QUEUING",
    "CREATE_FAILED",
    "STARTING",
    "START_QUEUING",
    "READY_TO_START",
    "START_FAILED",
    "RESTARTING",
    "RUNNING",
    "STOPPING",
    "STOPPED",
    "SNAPSHOTTING",
    "RESIZING",
    "RESIZE_FAILED",
    "UNAVAILABLE",
    "ERROR",
    "FROZEN",
    "DELETING",
    "DELETE_FAILED",
    "DELETED",
]
STATUSES: tuple[str, ...] = get_args(Status)

RUNNING_STATUSES = frozenset({"RUNNING"})
# On the way from one state to another: a delete now is answered "not now", and waiting helps.
TRANSITIONAL_STATUSES = frozenset(
    {
        "INIT",
        "CREATING",
        "CREATE_QUEUING",
        "STARTING",
        "START_QUEUING",
        "READY_TO_START",
        "RESTARTING",
        "STOPPING",
        "SNAPSHOTTING",
        "RESIZING",
        "DELETING",
    }
)

# "Does not exist": 6309 on both generations, 6404 on the notebook API (Terraform maps both).
NOT_FOUND_CODES: frozenset[str] = frozenset({"ModelArts.6309", "ModelArts.6404"})
# Delete answers that mean "not now": stop first (6304), starting (6306), stopping (6308),
# another operation in progress or already in the target state (6357).
STOP_FIRST = "ModelArts.6304"
IN_TARGET_STATE = "ModelArts.6357"
NOT_NOW_CODES: frozenset[str] = frozenset(
    {STOP_FIRST, "ModelArts.6306", "ModelArts.6308", IN_TARGET_STATE}
)

# Stop answers that mean the stop is done or under way: already stopped (6307), stopping (6308)
# (OTC appendix/error_codes.rst), another operation or already in the target state (6357,
# which Terraform's notebook resource reads as "already stopped").
STOP_UNDER_WAY_CODES: frozenset[str] = frozenset(
    {"ModelArts.6307", "ModelArts.6308", IN_TARGET_STATE}
)

# A listing of a workspace that no longer exists (or is being deleted): "The workspace does not
# exist." (OTC appendix/error_codes.rst). Its notebooks are gone with it: listed, and empty.
WORKSPACE_GONE = "ModelArts.0102"

# Our own code for a request that was sent and whose answer the run's deadline cut short: whether
# it took effect is unknown.
DEADLINE_EXCEEDED = "DeadlineExceeded"

# Our own code for a request that was sent and whose answer was lost otherwise (a read timeout,
# a connection reset after it went out) with no answer since: its effect is unknown too.
ANSWER_LOST = "AnswerLost"

# Our own code for an answer that contradicts itself or the request (a listing whose pages do not
# add up, a read answered for another instance): asking again is the remedy.
INCONSISTENT_LISTING = "InconsistentListing"

# The tag that marks an instance for deletion after a grace period (a rule's grace_hours).
MARK_KEY = "modelarts-cleanup:delete-after"
