"""The ModelArts client as a run sees it: one protocol for the real client and its test doubles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .client import DeleteResult


class DeletingClient(Protocol):
    """What a run needs from a client: execution deletes and tags, stopping reads and stops."""

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> DeleteResult: ...

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> Mapping[str, Any] | None: ...

    def stop_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> None: ...

    def tag(
        self,
        project_id: str,
        instance_id: str,
        tags: Mapping[str, str | None],
        *,
        workspace_id: str,
        remove: bool = False,
        deadline: float | None = None,
    ) -> bool: ...
