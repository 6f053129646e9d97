"""The ModelArts client: delete, read, stop and list instances, in either API generation.

Each call is one logical request (or one listing) over a `Transport`, which retries, bounds and
times it; `answers` says what a reply means, `instances` reads what it holds, `listing` pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..exceptions import ApiError
from ..vocabulary import INCONSISTENT_LISTING, ApiGeneration, is_instance_id, is_project_id
from .answers import MALFORMED_RESPONSE
from .transport import Sender

if TYPE_CHECKING:
    from .instances import ListedInstance
    from .listing import FleetLister, Scope


@dataclass(frozen=True)
class DeleteResult:
    """What a successful (or moot) deletion looked like."""

    outcome: Literal["deleted", "already_absent"]
    http_status: int
    request_id: str | None
    attempts: int
    status: str | None  # instance status the API returned (e.g. "DELETING"), if any


class ModelArtsClient:
    """Calls ModelArts for one API generation; every call goes through one retrying transport."""

    def __init__(self, transport: Sender, *, api: ApiGeneration) -> None:
        self._transport = transport
        self._api = ApiGeneration(api)

    @property
    def api(self) -> ApiGeneration:
        """The API generation this client speaks."""
        return self._api

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (no trailing slash)."""
        return self._transport.base_url

    def delete_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> DeleteResult:
        """Delete one instance; an instance that is already gone is `already_absent`."""
        path = self._instance_path(project_id, instance_id)
        answer = self._transport.send("DELETE", path, project_id=project_id, deadline=deadline)
        reply = answer.reply
        body = None if answer.absent else reply.json_object()
        status = body.get("status") if body is not None else None
        return DeleteResult(
            outcome="already_absent" if answer.absent else "deleted",
            http_status=reply.status,
            request_id=reply.request_id,
            attempts=answer.attempts,
            status=status if isinstance(status, str) else None,
        )

    def get_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        """The instance as the API describes it, or None when it does not exist."""
        path = self._instance_path(project_id, instance_id)
        answer = self._transport.send("GET", path, project_id=project_id, deadline=deadline)
        if answer.absent:
            return None
        body = answer.reply.json_object()
        if body is None:
            # Not retried here: whoever polls will ask again.
            raise ApiError(
                f"GET {path}: HTTP {answer.reply.status} with a body that is not a JSON object",
                http_status=answer.reply.status,
                error_code=MALFORMED_RESPONSE,
                error_msg="response body is not a JSON object",
                request_id=answer.reply.request_id,
                attempts=answer.attempts,
                retryable=True,
            )
        return body

    def get_listed_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> ListedInstance | None:
        """The instance read as a listing reads it (status, times, billing), or None if gone."""
        body = self.get_instance(project_id, instance_id, deadline=deadline)
        if body is None:
            return None
        if body.get("id", instance_id) != instance_id:
            raise ApiError(
                "GET answered for another instance",
                error_code=INCONSISTENT_LISTING,
                error_msg="the instance in the answer is not the one asked for",
            )
        item = {**body, "id": instance_id}
        from .instances import listed_devenviron, listed_notebook  # selected instances only

        if self._api is ApiGeneration.NOTEBOOK:
            return listed_notebook(project_id, item, "NOTEBOOK")
        return listed_devenviron(project_id, item)

    def stop_instance(
        self, project_id: str, instance_id: str, *, deadline: float | None = None
    ) -> None:
        """Ask the instance to stop; returns once the API accepted (an absent one needs none)."""
        path = self._instance_path(project_id, instance_id)
        if self._api is ApiGeneration.NOTEBOOK:
            self._transport.send("POST", f"{path}/stop", project_id=project_id, deadline=deadline)
        else:
            self._transport.send(
                "POST",
                f"{path}/action",
                project_id=project_id,
                json_body={"action": "stop"},
                deadline=deadline,
            )

    def tag(
        self,
        project_id: str,
        instance_id: str,
        tags: Mapping[str, str | None],
        *,
        workspace_id: str,
        remove: bool = False,
        deadline: float | None = None,
    ) -> bool:
        """Add tags to a notebook (an existing key is overwritten) or remove them (a value of
        None: the key with any value). False when the notebook no longer exists."""
        if self._api is not ApiGeneration.NOTEBOOK:
            raise ValueError("tags exist only in the notebook API")
        path = self._instance_path(project_id, instance_id) + (
            "/tags/delete" if remove else "/tags/create"
        )
        body = [{"key": k} if v is None else {"key": k, "value": v} for k, v in tags.items()]
        answer = self._transport.send(
            "DELETE" if remove else "POST",
            path,
            project_id=project_id,
            # The notebook's own workspace: the tag calls do not find it anywhere else.
            params={"workspace_id": workspace_id},
            json_body={"tags": body},
            deadline=deadline,
        )
        return not answer.absent

    def fleet(self, *, scope: Scope, concurrency: int, deadline: float | None) -> FleetLister:
        """A lister of workspaces and their instances over this client's transport."""
        from .listing import FleetLister  # only runs with selectors list anything

        return FleetLister(
            self._transport, self._api, scope=scope, concurrency=concurrency, deadline=deadline
        )

    def list_instances(
        self,
        project_id: str,
        *,
        workspace_id: str = "0",
        scope: Scope = "all",
        deadline: float | None = None,
    ) -> list[ListedInstance]:
        """One workspace's instances, every page, both features; raises rather than be partial."""
        if not is_project_id(project_id):
            raise ValueError("project_id must be 32 lowercase hexadecimal characters")
        lister = self.fleet(scope=scope, concurrency=1, deadline=deadline)
        (listing,) = lister.instances([(project_id, workspace_id)])
        if listing.error is not None:
            raise listing.error
        return list(listing.instances)

    def _instance_path(self, project_id: str, instance_id: str) -> str:
        # Payload validation happens earlier; this keeps an ID from ever changing a URL's meaning.
        if not is_project_id(project_id):
            raise ValueError("project_id must be 32 lowercase hexadecimal characters")
        if not is_instance_id(instance_id):
            raise ValueError("instance_id must be a UUID, optionally prefixed with 'DE-'")
        if self._api is ApiGeneration.NOTEBOOK:
            return f"/v1/{project_id}/notebooks/{instance_id}"
        return f"/v1/{project_id}/demanager/instances/{instance_id}"
