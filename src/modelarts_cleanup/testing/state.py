"""The local endpoint's instances: how each API shows them, and how their status moves.

Nothing here locks: the endpoint holds its lock around every call.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NOTEBOOK = "notebook"
DEVENVIRON = "devenviron"
DEFAULT_WORKSPACE = "0"
# When the notebook images were built: times of the image, not of any notebook (SDK `Image`).
_IMAGE_CREATED_MS = 1_600_000_000_000


@dataclass(frozen=True)
class User:
    """An IAM user: who created a notebook, or whom the endpoint's credentials belong to."""

    id: str  # 32 lowercase hex characters
    name: str


# The identity the endpoint's credentials belong to, unless told otherwise.
CALLER = User("c0ffee00c0ffee00c0ffee00c0ffee00", "modelarts-cleanup")


@dataclass
class Instance:
    """One instance: which API it belongs to, its body as that API shows it, and its owner."""

    api: str
    body: dict[str, Any]
    owner: User
    workspace_id: str = DEFAULT_WORKSPACE
    # When a STOPPING/STARTING instance began that transition, on the injected clock.
    since: float | None = None
    # When an accepted deletion began (it ends `delete_seconds` later), and whether it then
    # fails (DELETE_FAILED) instead of removing the instance.
    deleting_since: float | None = None
    deletion_fails: bool = False
    # Fields only a read of this one instance shows (GET), not a listing: some reads carry
    # top-level `create_at`/`update_at` beside the `lease` times.
    shown: dict[str, Any] = field(default_factory=dict)
    # The body as JSON, kept until the body changes: listings serve thousands of them.
    _encoded: bytes | None = None
    # Values derived from the body (sort keys), kept until the body changes.
    memo: dict[Any, Any] = field(default_factory=dict)

    def encoded(self) -> bytes:
        """The body as JSON bytes."""
        if self._encoded is None:
            self._encoded = json.dumps(self.body).encode("utf-8")
        return self._encoded

    def changed(self) -> None:
        """Say the body changed (after editing it in place)."""
        self._encoded = None
        self.memo.clear()


def _notebook_body(
    instance_id: str, name: str, status: str, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    # The fields of the SDK's NotebookResp (huaweicloudsdkmodelarts/v1/model/notebook_resp.py):
    # the instance's own times are only in `lease`; `image` carries the image's times, which a
    # parser must not mistake for the notebook's. Owner, workspace, pool and tags are set by
    # Fleet.add.
    return {
        "id": instance_id,
        "name": name,
        "description": "",
        "status": status,
        "feature": "NOTEBOOK",
        "flavor": "modelarts.vm.cpu.2u",
        "billing_items": ["ALL"],
        "image": {
            "id": "e1a07296-22a8-4f05-8bc8-e936c8e54090",
            "name": "notebook2.0-mul-kernel-cpu-cp36",
            "swr_path": "swr.example.com/atelier/notebook2.0-mul-kernel-cpu-cp36:3.3.2-release_v1",
            "tag": "3.3.2-release_v1",
            "type": "BUILD_IN",
            "create_at": _IMAGE_CREATED_MS,
            "update_at": _IMAGE_CREATED_MS,
        },
        "lease": {
            "create_at": created_ms,
            "duration": 3600000,
            "enable": True,
            "type": "TIMING",
            "update_at": updated_ms,
        },
        "token": str(uuid.uuid4()),
        "url": f"https://authoring-modelarts.example.com/{instance_id}/lab",
        "volume": {
            "category": "EVS",
            "ownership": "MANAGED",
            "mount_path": "/home/ma-user/work/",
            "capacity": 5,
        },
        "workspace_id": DEFAULT_WORKSPACE,
        "tags": [],
        "action_progress": [],
        "endpoints": [],
    }


def _devenviron_body(
    instance_id: str, name: str, status: str, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    # Shape of the "Obtaining Details About a Development Environment Instance" sample response.
    return {
        "id": instance_id,
        "name": name,
        "description": "",
        "status": status,
        "creation_timestamp": str(created_ms),
        "latest_update_timestamp": str(updated_ms),
        "flavor": "modelarts.vm.cpu.2u",
        "flavor_details": {
            "name": "modelarts.vm.cpu.2u",
            "params": {"CPU": 2, "memory": "8GiB"},
            "status": "onSale",
            "type": "CPU",
        },
        "profile": {
            "de_type": "Notebook",
            "description": "multi engine, cpu, python 3.6 for notebook",
            "flavor_type": "CPU",
            "id": "Multi-Engine 1.0 (python3)-cpu",
            "name": "Multi-Engine 1.0 (python3)-cpu",
            "provision": {
                "spec": {
                    "engine": "CCE",
                    "params": {
                        "annotations": None,
                        "image_name": "mul-kernel-cpu-cp36",
                        "image_tag": "2.0.5-B003",
                        "namespace": "atelier",
                    },
                },
                "type": "Docker",
            },
        },
        "spec": {
            "annotations": {"target_domain": "https://modelarts-notebook.example.com"},
            "auto_stop": {"duration": 3600, "enable": True, "prompt": True},
            "extend_params": None,
            "failed_reasons": None,
            "repository": None,
            "storage": {
                "location": {"path": "/home/ma-user/work", "volume_size": 5},
                "type": "evs",
            },
        },
        "ai_project": {"id": "default-ai-project"},
        "workspace": {"id": "0"},
    }


@dataclass
class Workspace:
    """A workspace as ListWorkspace shows it (SDK `WorkspaceResponse`)."""

    body: dict[str, Any]


class Fleet:
    """Every instance and workspace the endpoint holds, by project."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        now_ms: Callable[[], int],
        stop_seconds: float,
        delete_seconds: float = 0.0,
    ) -> None:
        self._clock = clock
        self._now_ms = now_ms
        self._stop_seconds = stop_seconds
        self._delete_seconds = delete_seconds
        self.instances: dict[tuple[str, str], Instance] = {}
        # The same instances by (project, workspace), so a listing reads only its own.
        self._in_workspace: dict[tuple[str, str], dict[str, Instance]] = {}
        # Added workspaces by project; the default workspace "0" exists in every project.
        self._workspaces: dict[str, dict[str, Workspace]] = {}

    def add(
        self,
        project_id: str,
        instance_id: str | None,
        *,
        api: str,
        status: str,
        name: str | None,
        created_ms: int | None,
        updated_ms: int | None,
        owner: User,
        workspace_id: str,
        pool: tuple[str, str] | None,
        tags: Iterable[tuple[str, str]],
        extra: dict[str, Any],
    ) -> str:
        """Create an instance; `extra` overrides top-level body fields. Returns its ID."""
        if api not in (NOTEBOOK, DEVENVIRON):
            raise ValueError(f"api must be {NOTEBOOK!r} or {DEVENVIRON!r}, not {api!r}")
        instance_id = str(uuid.uuid4()) if instance_id is None else instance_id
        created = self._now_ms() if created_ms is None else created_ms
        updated = created if updated_ms is None else updated_ms
        name = f"notebook-{instance_id.replace('-', '')[-4:]}" if name is None else name
        if api == NOTEBOOK:
            body = _notebook_body(instance_id, name, status, created, updated)
            body["workspace_id"] = workspace_id
            body["user"] = {"id": owner.id, "name": owner.name, "domain": dict(_DOMAIN)}
            body["user_id"] = owner.id
            body["tags"] = [{"key": key, "value": value} for key, value in tags]
            if pool is not None:
                body["pool"] = {"id": pool[0], "name": pool[1]}
        else:
            body = _devenviron_body(instance_id, name, status, created, updated)
            body["workspace"] = {"id": workspace_id}
            # OTC historical_apis/devenviron_old_version/obtaining_development_environment_
            # instances.rst, tables 10, 12 and 19: `user {id, name}`; `pool {id, name, type,
            # owner}`, type USER_DEFINED for a dedicated pool, owner `{project_id}`.
            body["user"] = {"id": owner.id, "name": owner.name}
            if pool is not None:
                body["pool"] = {
                    "id": pool[0],
                    "name": pool[1],
                    "type": "USER_DEFINED",
                    "owner": {"project_id": project_id},
                }
        body.update(copy.deepcopy(extra))
        # An instance seeded mid-transition finishes it like one the endpoint moved there itself.
        since = self._clock() if status in ("STOPPING", "STARTING") else None
        if (project_id, instance_id) in self.instances:
            raise ValueError(f"instance {instance_id} already exists in project {project_id}")
        self.add_workspace(project_id, workspace_id)
        instance = Instance(api, body, owner, workspace_id, since)
        self.instances[(project_id, instance_id)] = instance
        self._in_workspace.setdefault((project_id, workspace_id), {})[instance_id] = instance
        return instance_id

    def add_workspace(self, project_id: str, workspace_id: str, name: str | None = None) -> str:
        """Create a workspace (a no-op for one that exists, the default "0" included)."""
        if workspace_id == DEFAULT_WORKSPACE:
            return workspace_id
        known = self._workspaces.setdefault(project_id, {})
        if workspace_id not in known:
            now = self._now_ms()
            known[workspace_id] = Workspace(
                {
                    "id": workspace_id,
                    "name": name or f"workspace-{workspace_id[:6]}",
                    "description": "",
                    "owner": CALLER.name,
                    "auth_type": "PUBLIC",
                    "enterprise_project_id": "0",
                    "enterprise_project_name": "default",
                    "create_time": now,
                    "update_time": now,
                    "status": "NORMAL",
                    "status_info": "",
                }
            )
        return workspace_id

    def delete_workspace(self, project_id: str, workspace_id: str) -> None:
        """A workspace being deleted: still listed (`DELETING`), its notebooks gone, and a listing
        of them answered "the workspace does not exist"."""
        workspace = self._workspaces.get(project_id, {}).get(workspace_id)
        if workspace is None:
            raise KeyError(workspace_id)
        workspace.body["status"] = "DELETING"
        for instance in list(self._in_workspace.get((project_id, workspace_id), {}).values()):
            self.remove(project_id, instance.body["id"])

    def workspace_gone(self, project_id: str, workspace_id: str) -> bool:
        """Whether the workspace is being deleted (its notebooks can no longer be listed)."""
        workspace = self._workspaces.get(project_id, {}).get(workspace_id)
        return workspace is not None and workspace.body["status"] == "DELETING"

    def workspaces(self, project_id: str) -> list[dict[str, Any]]:
        """The project's workspaces, the default one first, then by creation."""
        default = {
            "id": DEFAULT_WORKSPACE,
            "name": "default",
            "description": "",
            "owner": CALLER.name,
            "auth_type": "PUBLIC",
            "enterprise_project_id": "0",
            "enterprise_project_name": "default",
            "create_time": _IMAGE_CREATED_MS,
            "update_time": _IMAGE_CREATED_MS,
            "status": "NORMAL",
            "status_info": "",
        }
        added = self._workspaces.get(project_id, {})
        return [default, *(w.body for w in added.values())]

    def seed(
        self,
        project_id: str,
        count: int,
        *,
        api: str,
        seed: int,
        workspaces: Sequence[str],
        owners: Sequence[User],
    ) -> list[dict[str, Any]]:
        """`count` instances as teams leave them (see FakeModelArts.seed_fleet)."""
        rng = random.Random(seed)  # noqa: S311  (a reproducible fleet, not a secret)
        now = self._now_ms()
        day = 24 * 3_600_000
        statuses = ["STOPPED"] * 8 + ["RUNNING"] * 5 + ["ERROR", "CREATE_FAILED", "STARTING"]
        seeded = []
        for n in range(count):
            created = now - rng.randint(1, 90 * day)
            extra: dict[str, Any] = {}
            if api == NOTEBOOK and rng.random() < 0.1:
                extra["feature"] = "DEFAULT"
            tags: list[tuple[str, str]] = []
            if rng.random() < 0.3:
                tags.append(("team", rng.choice(["vision", "nlp", "platform"])))
            if rng.random() < 0.1:
                tags.append(("modelarts-cleanup:keep", "true"))
            pool = None
            if rng.random() < 0.15:
                pool = ("pool-a1b2c3d4", "dedicated-v100")
            prefix = "DE-" if api == DEVENVIRON else ""
            instance_id = self.add(
                project_id,
                prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                api=api,
                status=rng.choice(statuses),
                name=f"{rng.choice(['tmp-', 'tmp-keep-', 'course-', 'prod-'])}{n:04d}",
                created_ms=created,
                updated_ms=rng.randint(created, now),
                owner=owners[n % len(owners)],
                workspace_id=workspaces[(n // len(owners)) % len(workspaces)],
                pool=pool,
                tags=tags,
                extra=extra,
            )
            seeded.append(copy.deepcopy(self.instances[(project_id, instance_id)].body))
        return seeded

    def lookup(self, project_id: str, instance_id: str, api: str | None = None) -> Instance | None:
        """The instance, its pending transition settled; None if absent (or of another API)."""
        found = self.instances.get((project_id, instance_id))
        if found is None or (api is not None and found.api != api):
            return None
        self.settle(found)
        return self.instances.get((project_id, instance_id))

    def begin_deletion(self, instance: Instance) -> None:
        """An accepted deletion: DELETING, then gone after `delete_seconds` (at once for 0)."""
        self.set_status(instance, "DELETING")
        instance.deleting_since = self._clock()
        self.settle(instance)

    def change_deletion(self, project_id: str, instance: Instance, *, ends: str) -> None:
        """Make an accepted deletion never end (`ends` "never") or end DELETE_FAILED ("failed")."""
        if (project_id, instance.body["id"]) not in self.instances:
            self.restore(project_id, instance)
        self.set_status(instance, "DELETING")
        instance.deleting_since = None if ends == "never" else self._clock()
        instance.deletion_fails = ends == "failed"

    def remove(self, project_id: str, instance_id: str) -> None:
        """Forget an instance."""
        instance = self.instances.pop((project_id, instance_id))
        del self._in_workspace[(project_id, instance.workspace_id)][instance_id]

    def restore(self, project_id: str, instance: Instance) -> None:
        """Put a removed instance back (a deletion the service never finished)."""
        instance_id = instance.body["id"]
        self.instances[(project_id, instance_id)] = instance
        self._in_workspace.setdefault((project_id, instance.workspace_id), {})[instance_id] = (
            instance
        )

    def listed(self, project_id: str, api: str, workspace_id: str) -> list[Instance]:
        """Every instance of the project's workspace in that API, transitions settled."""
        found = []
        for instance in list(self._in_workspace.get((project_id, workspace_id), {}).values()):
            if instance.api == api:
                self.settle(instance)
                if self.instances.get((project_id, instance.body["id"])) is instance:
                    found.append(instance)  # not removed by a deletion that just ended
        return found

    def settle(self, instance: Instance) -> None:
        """Finish a STOPPING/STARTING transition, or a deletion, whose time has come."""
        status = instance.body["status"]
        began = instance.deleting_since
        if began is not None and status == "DELETING":
            if self._clock() - began >= self._delete_seconds:
                instance.deleting_since = None
                if instance.deletion_fails:
                    self.set_status(instance, "DELETE_FAILED")
                else:
                    self.remove(instance_project(self, instance), instance.body["id"])
            return
        if instance.since is None or status not in ("STOPPING", "STARTING"):
            return
        if self._clock() - instance.since >= self._stop_seconds:
            self.set_status(instance, "STOPPED" if status == "STOPPING" else "RUNNING")

    def set_status(self, instance: Instance, status: str) -> None:
        """Move an instance to a status, as the service records it."""
        instance.body["status"] = status
        instance.changed()
        instance.since = self._clock() if status in ("STOPPING", "STARTING") else None
        now = self._now_ms()
        if instance.api == NOTEBOOK:
            if isinstance(instance.body.get("lease"), dict):
                instance.body["lease"]["update_at"] = now
        else:
            instance.body["latest_update_timestamp"] = str(now)


def instance_project(fleet: Fleet, instance: Instance) -> str:
    """The project an instance is held in."""
    return next(key[0] for key, held in fleet.instances.items() if held is instance)


_DOMAIN = {"id": "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0", "name": "example-account"}
