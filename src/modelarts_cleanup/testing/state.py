"""The local endpoint's instances: how each API shows them, and how their status moves.

Nothing here locks: the endpoint holds its lock around every call.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NOTEBOOK = "notebook"
DEVENVIRON = "devenviron"


@dataclass
class Instance:
    """One instance: which API it belongs to and its body as that API shows it."""

    api: str
    body: dict[str, Any]
    # When a STOPPING/STARTING instance began that transition, on the injected clock.
    since: float | None = None


def _notebook_body(
    instance_id: str, name: str, status: str, created_ms: int, updated_ms: int
) -> dict[str, Any]:
    # Shape of the DeleteNotebook/ShowNotebook examples; `create_at`/`update_at` appear both at the
    # top level (examples) and in `lease` (SDK Lease model, what Terraform reads).
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
        },
        "lease": {
            "create_at": created_ms,
            "duration": 3600000,
            "enable": True,
            "type": "TIMING",
            "update_at": updated_ms,
        },
        "create_at": created_ms,
        "update_at": updated_ms,
        "token": str(uuid.uuid4()),
        "url": f"https://authoring-modelarts.example.com/{instance_id}/lab",
        "volume": {
            "category": "EVS",
            "ownership": "MANAGED",
            "mount_path": "/home/ma-user/work/",
            "capacity": 5,
        },
        "workspace_id": "0",
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


class Fleet:
    """Every instance the endpoint holds, by (project_id, instance_id)."""

    def __init__(
        self, *, clock: Callable[[], float], now_ms: Callable[[], int], stop_seconds: float
    ) -> None:
        self._clock = clock
        self._now_ms = now_ms
        self._stop_seconds = stop_seconds
        self.instances: dict[tuple[str, str], Instance] = {}

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
        extra: dict[str, Any],
    ) -> str:
        """Create an instance; `extra` overrides top-level body fields. Returns its ID."""
        if api not in (NOTEBOOK, DEVENVIRON):
            raise ValueError(f"api must be {NOTEBOOK!r} or {DEVENVIRON!r}, not {api!r}")
        instance_id = str(uuid.uuid4()) if instance_id is None else instance_id
        created = self._now_ms() if created_ms is None else created_ms
        updated = created if updated_ms is None else updated_ms
        name = f"notebook-{instance_id.replace('-', '')[-4:]}" if name is None else name
        build = _notebook_body if api == NOTEBOOK else _devenviron_body
        body = build(instance_id, name, status, created, updated)
        body.update(copy.deepcopy(extra))
        # An instance seeded mid-transition finishes it like one the endpoint moved there itself.
        since = self._clock() if status in ("STOPPING", "STARTING") else None
        if (project_id, instance_id) in self.instances:
            raise ValueError(f"instance {instance_id} already exists in project {project_id}")
        self.instances[(project_id, instance_id)] = Instance(api, body, since)
        return instance_id

    def seed(self, project_id: str, count: int, *, api: str, seed: int) -> list[dict[str, Any]]:
        """`count` instances as a team leaves them (see FakeModelArts.seed_fleet)."""
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
            prefix = "DE-" if api == DEVENVIRON else ""
            instance_id = self.add(
                project_id,
                prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                api=api,
                status=rng.choice(statuses),
                name=f"{rng.choice(['tmp-', 'tmp-keep-', 'course-', 'prod-'])}{n:04d}",
                created_ms=created,
                updated_ms=rng.randint(created, now),
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
        return found

    def remove(self, project_id: str, instance_id: str) -> None:
        """Forget an instance."""
        del self.instances[(project_id, instance_id)]

    def bodies(self, project_id: str, api: str) -> list[dict[str, Any]]:
        """Every instance of the project in that API, transitions settled."""
        found = []
        for (project, _), instance in self.instances.items():
            if project == project_id and instance.api == api:
                self.settle(instance)
                found.append(instance.body)
        return found

    def settle(self, instance: Instance) -> None:
        """Finish a STOPPING/STARTING transition whose time has come."""
        status = instance.body["status"]
        if instance.since is None or status not in ("STOPPING", "STARTING"):
            return
        if self._clock() - instance.since >= self._stop_seconds:
            self.set_status(instance, "STOPPED" if status == "STOPPING" else "RUNNING")

    def set_status(self, instance: Instance, status: str) -> None:
        """Move an instance to a status, as the service records it."""
        instance.body["status"] = status
        instance.since = self._clock() if status in ("STOPPING", "STARTING") else None
        now = self._now_ms()
        if instance.api == NOTEBOOK:
            instance.body["update_at"] = now
            if isinstance(instance.body.get("lease"), dict):
                instance.body["lease"]["update_at"] = now
        else:
            instance.body["latest_update_timestamp"] = str(now)
