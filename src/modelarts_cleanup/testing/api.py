"""The local endpoint's API: routes and what each answers, per the API reference.

Response bodies follow the public API reference (OTC `api-ref/source/
development_environment_management/*.rst`, `historical_apis/devenviron_old_version/*.rst`) and
the SDK models (`huaweicloudsdkmodelarts/v1/model/notebook_resp.py`, `lease.py`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from modelarts_cleanup.events.tags import check_key, check_value
from modelarts_cleanup.vocabulary import RUNNING_STATUSES, TRANSITIONAL_STATUSES

from .replies import (
    ALREADY_RUNNING,
    ALREADY_STOPPED,
    BUSY_WITH_ANOTHER,
    DE_NOT_FOUND,
    NO_SORTING,
    NOTEBOOK_NOT_FOUND,
    PARAMETER_ERROR,
    STOP_BEFORE_DELETE,
    STOPPING,
    TOO_MANY_TAGS,
    WORKSPACE_GONE,
    Reply,
    encoded_reply,
    error_reply,
    json_reply,
)
from .state import DEFAULT_WORKSPACE, DEVENVIRON, NOTEBOOK, Fleet, Instance, User

# ListNotebooks: "limit ... [10,20,50]" (SDK ListNotebooksRequest); Terraform pages with 50.
_NOTEBOOK_PAGE_SIZES = (10, 20, 50)
_NOTEBOOK_SORT_KEYS = frozenset(
    {"id", "name", "description", "status", "feature", "flavor", "create_at", "update_at"}
)
_DEVENVIRON_SORT_KEYS = frozenset({"name", "creation_timestamp"})
# TMS: at most 20 tags on one resource.
_MAX_TAGS = 20
# ListWorkspace: "limit ... default 1000" (SDK ListWorkspaceRequest).
_WORKSPACE_PAGE_SIZE = 1000
# Statuses in which the service refuses a delete when it insists on a stop first (6304).
MUST_STOP_FIRST = (RUNNING_STATUSES | TRANSITIONAL_STATUSES) - {"DELETING"}
# A stop of a stopped instance, or of one stopping (OTC appendix/error_codes.rst).
_STOP_REFUSALS = {"STOPPED": ALREADY_STOPPED, "STOPPING": STOPPING}
_ALREADY_STARTING = frozenset({"RUNNING", "STARTING"})


@dataclass(frozen=True)
class Route:
    """What a request asks for: an action, in a project, perhaps on one instance."""

    action: str
    project_id: str
    instance_id: str | None


_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action)
    for method, pattern, action in (
        ("GET", r"/v1/(?P<project>[^/]+)/notebooks", "notebook_list"),
        # Before the route of one notebook: "all" is not a notebook ID.
        ("GET", r"/v1/(?P<project>[^/]+)/notebooks/all", "notebook_list_all"),
        ("GET", r"/v1/(?P<project>[^/]+)/workspaces", "workspace_list"),
        ("GET", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)", "notebook_show"),
        ("DELETE", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)", "notebook_delete"),
        ("POST", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/stop", "notebook_stop"),
        ("POST", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/start", "notebook_start"),
        ("POST", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/tags/create", "tags_create"),
        ("DELETE", r"/v1/(?P<project>[^/]+)/notebooks/(?P<id>[^/]+)/tags/delete", "tags_delete"),
        ("GET", r"/v1/(?P<project>[^/]+)/demanager/instances", "de_list"),
        ("GET", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)", "de_show"),
        ("DELETE", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)", "de_delete"),
        ("POST", r"/v1/(?P<project>[^/]+)/demanager/instances/(?P<id>[^/]+)/action", "de_action"),
        # SMN's PublishMessage; the "instance" is the topic's URN.
        (
            "POST",
            r"/v2/(?P<project>[^/]+)/notifications/topics/(?P<id>[^/]+)/publish",
            "smn_publish",
        ),
    )
)


# The IAM action each route needs (ModelArts API reference, "Permissions Policies and Supported
# Actions": DevEnviron new version, DevEnviron old version, Workspace Management). The old API's
# list, show and delete need the same actions as the new one's; its stop and start go through
# `action`.
IAM_ACTIONS: dict[str, str] = {
    "notebook_list": "modelarts:notebook:list",
    "notebook_list_all": "modelarts:notebook:listAllNotebooks",
    "workspace_list": "modelarts:workspace:list",
    "notebook_show": "modelarts:notebook:get",
    "notebook_delete": "modelarts:notebook:delete",
    "notebook_stop": "modelarts:notebook:stop",
    "notebook_start": "modelarts:notebook:start",
    "tags_create": "modelarts:notebook:createTag",
    "tags_delete": "modelarts:notebook:deleteTag",
    "de_list": "modelarts:notebook:list",
    "de_show": "modelarts:notebook:get",
    "de_delete": "modelarts:notebook:delete",
    "de_action": "modelarts:notebook:action",
    # SMN API reference, "Permissions Policies and Supported Actions".
    "smn_publish": "smn:topic:publish",
}


def match_route(method: str, path: str) -> Route | None:
    """The route a request takes, or None (the gateway knows no such API)."""
    for route_method, pattern, action in _ROUTES:
        found = pattern.fullmatch(path)
        if found is not None and route_method == method:
            return Route(action, found["project"], found.groupdict().get("id"))
    return None


def _notebook_missing(route: Route) -> Reply:
    return error_reply(404, NOTEBOOK_NOT_FOUND, f"Notebook {route.instance_id} not found.")


class ModelArtsApi:
    """Carries out one routed request on the fleet (the endpoint holds its lock)."""

    def __init__(
        self, fleet: Fleet, *, caller: User, stop_before_delete: bool, legacy_error_message: bool
    ) -> None:
        self._fleet = fleet
        self._caller = caller
        self._stop_before_delete = stop_before_delete
        # The old API's own examples spell the message `error_message`; the SDK says `error_msg`.
        self._de_msg_key = "error_message" if legacy_error_message else "error_msg"

    def handle(self, route: Route, query: str, body: bytes) -> Reply:
        """The answer to a routed request."""
        action: Callable[[Route, str, bytes], Reply] = getattr(self, route.action)
        return action(route, query, body)

    def error(
        self,
        route: Route | None,
        status: int,
        code: str,
        msg: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Reply:
        """An error in the spelling of the route's API generation."""
        devenviron = route is not None and route.action.startswith("de_")
        key = self._de_msg_key if devenviron else "error_msg"
        return error_reply(status, code, msg, msg_key=key, headers=headers)

    # notebook API

    def notebook_show(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", NOTEBOOK)
        if found is None:
            return _notebook_missing(route)
        if found.shown:
            return json_reply(200, {**found.body, **found.shown})
        return json_reply(200, found.body)

    def notebook_delete(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", NOTEBOOK)
        if found is None:
            return _notebook_missing(route)
        if found.body["status"] == "DELETING":
            # Another operation (the deletion itself) is under way.
            return self.error(route, 400, *BUSY_WITH_ANOTHER)
        if self._stop_before_delete and found.body["status"] in MUST_STOP_FIRST:
            return self.error(route, 400, *STOP_BEFORE_DELETE)
        self._fleet.begin_deletion(found)
        return json_reply(200, found.body)

    def notebook_stop(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", NOTEBOOK)
        if found is None:
            return _notebook_missing(route)
        refusal = _STOP_REFUSALS.get(found.body["status"])
        if refusal is not None:
            return self.error(route, 400, *refusal)
        self._fleet.set_status(found, "STOPPING")
        return json_reply(200, found.body)

    def tags_create(self, route: Route, query: str, body: bytes) -> Reply:
        """CreateNotebookTags: add the tags, an existing key overwritten; 204."""
        return self._tags(route, query, body, create=True)

    def tags_delete(self, route: Route, query: str, body: bytes) -> Reply:
        """DeleteNotebookTags: remove the tags (by key, or key and value); a missing one is no
        error; 204."""
        return self._tags(route, query, body, create=False)

    def _tags(self, route: Route, query: str, body: bytes, *, create: bool) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", NOTEBOOK)
        # The calls take the notebook's workspace in the query (default "0"): elsewhere, it is
        # not there.
        workspace = _first_values(query).get("workspace_id", DEFAULT_WORKSPACE)
        if found is None or found.workspace_id != workspace:
            return _notebook_missing(route)
        tags = _tag_list(body, values_required=create)
        if tags is None:
            return self.error(route, 400, *PARAMETER_ERROR)
        current = [(t["key"], t.get("value", "")) for t in found.body.get("tags", [])]
        if create:
            keys = {key for key, _ in tags}
            current = [t for t in current if t[0] not in keys] + [(k, v or "") for k, v in tags]
            if len(current) > _MAX_TAGS:
                return self.error(route, 400, *TOO_MANY_TAGS)
        else:
            current = [
                (k, v)
                for k, v in current
                if not any(k == key and value in (None, v) for key, value in tags)
            ]
        found.body["tags"] = [{"key": k, "value": v} for k, v in current]
        found.changed()
        return Reply(204, b"")

    def notebook_start(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", NOTEBOOK)
        if found is None:
            return _notebook_missing(route)
        if found.body["status"] in _ALREADY_STARTING:
            return self.error(route, 400, *ALREADY_RUNNING)
        self._fleet.set_status(found, "STARTING")
        return json_reply(200, found.body)

    def notebook_list(self, route: Route, query: str, body: bytes) -> Reply:
        """ListNotebooks: read conservatively, only the caller's own notebooks."""
        return self._notebooks(route, query, own_only=True)

    def notebook_list_all(self, route: Route, query: str, body: bytes) -> Reply:
        """ListAllNotebooks: every user's notebooks."""
        return self._notebooks(route, query, own_only=False)

    def _notebooks(self, route: Route, query: str, *, own_only: bool) -> Reply:
        params = _first_values(query)
        limit = _int_param(params, "limit", 10)
        offset = _int_param(params, "offset", 0)
        sort_dir = params.get("sort_dir", "DESC").upper()
        if limit not in _NOTEBOOK_PAGE_SIZES or offset is None or offset < 0:
            return self.error(route, 400, *PARAMETER_ERROR)
        if sort_dir not in ("ASC", "DESC"):
            return self.error(route, 400, *PARAMETER_ERROR)
        sort_keys = [k for k in params.get("sort_key", "create_at").split(",") if k]
        if not sort_keys or any(k not in _NOTEBOOK_SORT_KEYS for k in sort_keys):
            return self.error(route, 400, *NO_SORTING)
        feature = params.get("feature", "NOTEBOOK")
        # Documented default: the default workspace, not every workspace.
        workspace = params.get("workspace_id", DEFAULT_WORKSPACE)
        name = params.get("name")
        if self._fleet.workspace_gone(route.project_id, workspace):
            return self.error(route, 400, *WORKSPACE_GONE)
        listed = self._fleet.listed(route.project_id, NOTEBOOK, workspace)
        matching = [i for i in listed if i.body.get("feature") == feature]
        if own_only:
            matching = [i for i in matching if i.owner == self._caller]
        for key in ("status", "id"):
            if key in params:
                matching = [i for i in matching if i.body.get(key) == params[key]]
        if name is not None:
            matching = [i for i in matching if name.lower() in str(i.body.get("name", "")).lower()]
        memo_key = ("sort", *sort_keys)

        def order(instance: Instance) -> tuple[tuple[int, Any], ...]:
            found = instance.memo.get(memo_key)
            if found is None:
                found = instance.memo[memo_key] = _sort_key(instance.body, sort_keys)
            return found

        matching.sort(key=order, reverse=sort_dir == "DESC")
        # `offset` counts records, not pages: the docs call it the "start offset of the records"
        # and Terraform's data source pages with offset += len(page). `current` is 0-based.
        page = f'"current": {offset // limit}, "pages": {math.ceil(len(matching) / limit)}'
        page += f', "size": {limit}, "total": {len(matching)}'
        shown = [i.encoded() for i in matching[offset : offset + limit]]
        return encoded_reply(200, page, "data", shown)

    def workspace_list(self, route: Route, query: str, body: bytes) -> Reply:
        """ListWorkspace: `offset` counts pages, not records (SDK ListWorkspaceRequest)."""
        params = _first_values(query)
        page = _int_param(params, "offset", 0)
        limit = _int_param(params, "limit", _WORKSPACE_PAGE_SIZE)
        if page is None or page < 0 or limit is None or not 1 <= limit <= _WORKSPACE_PAGE_SIZE:
            return self.error(route, 400, *PARAMETER_ERROR)
        every = self._fleet.workspaces(route.project_id)
        name = params.get("name")
        if name is not None:
            every = [w for w in every if name in str(w.get("name", ""))]
        shown = every[page * limit : (page + 1) * limit]
        return json_reply(
            200, {"total_count": len(every), "count": len(shown), "workspaces": shown}
        )

    # devenviron API

    def de_show(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", DEVENVIRON)
        if found is None:
            return self.error(route, 400, *DE_NOT_FOUND)
        return json_reply(200, found.body)

    def de_delete(self, route: Route, query: str, body: bytes) -> Reply:
        found = self._fleet.lookup(route.project_id, route.instance_id or "", DEVENVIRON)
        if found is None:
            return self.error(route, 400, *DE_NOT_FOUND)
        if self._stop_before_delete and found.body["status"] in MUST_STOP_FIRST:
            return self.error(route, 400, *STOP_BEFORE_DELETE)
        self._fleet.remove(route.project_id, route.instance_id or "")
        return json_reply(200, {"instance_id": route.instance_id})

    def de_action(self, route: Route, query: str, body: bytes) -> Reply:
        try:
            action = json.loads(body.decode("utf-8")).get("action") if body else None
        except (ValueError, AttributeError):
            action = None
        if action not in ("start", "stop"):
            return self.error(route, 400, *PARAMETER_ERROR)
        found = self._fleet.lookup(route.project_id, route.instance_id or "", DEVENVIRON)
        if found is None:
            return self.error(route, 400, *DE_NOT_FOUND)
        previous = found.body["status"]
        if action == "stop" and previous in _STOP_REFUSALS:
            return self.error(route, 400, *_STOP_REFUSALS[previous])
        if action == "start" and previous in _ALREADY_STARTING:
            return self.error(route, 400, *ALREADY_RUNNING)
        self._fleet.set_status(found, "STOPPING" if action == "stop" else "STARTING")
        return json_reply(200, {"current_status": found.body["status"], "previous_state": previous})

    def de_list(self, route: Route, query: str, body: bytes) -> Reply:
        params = _first_values(query)
        limit = _int_param(params, "limit", 0)
        offset = _int_param(params, "offset", 0)
        sortby = params.get("sortby", "name")
        order = params.get("order", "asc").lower()
        # `de_type` is mandatory and case-sensitive; `limit=0` (the default) means "all".
        if params.get("de_type") != "Notebook" or limit is None or offset is None:
            return self.error(route, 400, *PARAMETER_ERROR)
        if limit < 0 or offset < 0 or order not in ("asc", "desc"):
            return self.error(route, 400, *PARAMETER_ERROR)
        if sortby not in _DEVENVIRON_SORT_KEYS:
            return self.error(route, 400, *NO_SORTING)
        workspace = params.get("workspace_id", DEFAULT_WORKSPACE)
        if self._fleet.workspace_gone(route.project_id, workspace):
            return self.error(route, 400, *WORKSPACE_GONE)
        own_only = params.get("show_self", "true").lower() != "false"
        matching = [
            i.body
            for i in self._fleet.listed(route.project_id, DEVENVIRON, workspace)
            if params.get("status", i.body.get("status")) == i.body.get("status")
            and (not own_only or i.owner == self._caller)
        ]

        def by(b: dict[str, Any]) -> tuple[int, str]:
            if sortby == "creation_timestamp":
                return (int(b.get("creation_timestamp") or 0), "")
            return (0, str(b.get("name", "")))

        matching.sort(key=by, reverse=order == "desc")
        page = matching[offset:] if limit == 0 else matching[offset : offset + limit]
        return json_reply(200, {"total_count": len(matching), "instances": page})


def _first_values(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _int_param(params: Mapping[str, str], name: str, default: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    return int(raw) if re.fullmatch(r"-?\d{1,9}", raw) else None


def _tag_list(body: bytes, *, values_required: bool) -> list[tuple[str, str | None]] | None:
    """The request's tags, if they follow the TMS rules; else None."""
    try:
        document = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    items = document.get("tags") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        return None
    tags: list[tuple[str, str | None]] = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"key", "value"}:
            return None
        key, value = item.get("key"), item.get("value")
        if values_required and value is None:
            return None
        try:
            check_key(key)
            if value is not None:
                check_value(value)
        except ValueError:
            return None
        tags.append((str(key), value))
    return tags


def _sort_key(body: Mapping[str, Any], keys: list[str]) -> tuple[tuple[int, Any], ...]:
    # The notebook's times are in `lease`. Absent values sort together, apart from present ones,
    # so mixed types never meet.
    lease = body.get("lease")
    lease = lease if isinstance(lease, dict) else {}
    values = [lease.get(k) if k in ("create_at", "update_at") else body.get(k) for k in keys]
    return tuple((1, "") if v is None else (0, v) for v in values)
