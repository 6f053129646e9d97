"""What a test (or a notebook's owner, in the console) does to the local endpoint's state: add
instances and workspaces, tag, rename, start them, look at them; every change under the lock."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .smn import PublishedMessage, Topics
from .state import DEFAULT_WORKSPACE, NOTEBOOK, Fleet, Instance, User


class Console:
    """The state-changing side of `FakeModelArts` (which sets these attributes)."""

    _lock: threading.Lock
    _fleet: Fleet
    _caller: User
    _topics: Topics
    _before_read: dict[tuple[str, str], Callable[[], None]]

    def add_instance(
        self,
        project_id: str,
        instance_id: str | None = None,
        *,
        api: str = NOTEBOOK,
        status: str = "STOPPED",
        name: str | None = None,
        created_ms: int | None = None,
        updated_ms: int | None = None,
        owner: User | None = None,
        workspace_id: str = DEFAULT_WORKSPACE,
        pool: tuple[str, str] | Mapping[str, str] | None = None,
        tags: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        shown: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """Create an instance; returns its ID.

        `owner` defaults to the caller (whom the credentials belong to); `pool` is a dedicated
        pool's (id, name), None for the public pool; `extra` overrides top-level body fields;
        `shown` adds fields to a read of this one instance only (not to listings).
        """
        pairs = list(tags.items()) if isinstance(tags, Mapping) else list(tags)
        if isinstance(pool, Mapping):
            pool = (pool["id"], pool.get("name", ""))
        with self._lock:
            added = self._fleet.add(
                project_id,
                instance_id,
                api=api,
                status=status,
                name=name,
                created_ms=created_ms,
                updated_ms=updated_ms,
                owner=self._caller if owner is None else owner,
                workspace_id=workspace_id,
                pool=pool,
                tags=pairs,
                extra=extra,
            )
            self._fleet.instances[(project_id, added)].shown = dict(shown or {})
            return added

    def add_workspace(self, project_id: str, workspace_id: str, name: str | None = None) -> str:
        """Create a workspace in the project (the default one, "0", always exists)."""
        with self._lock:
            return self._fleet.add_workspace(project_id, workspace_id, name)

    def delete_workspace(self, project_id: str, workspace_id: str) -> None:
        """Start deleting a workspace: ListWorkspace still shows it (status `DELETING`), its
        notebooks are gone, and listing them is answered 400 `ModelArts.0102` ("the workspace
        does not exist", OTC `appendix/error_codes.rst`)."""
        with self._lock:
            self._fleet.delete_workspace(project_id, workspace_id)

    def seed_fleet(
        self,
        project_id: str,
        count: int,
        *,
        api: str = NOTEBOOK,
        seed: int = 0,
        workspaces: Sequence[str] = (DEFAULT_WORKSPACE,),
        owners: Sequence[User] = (),
    ) -> list[dict[str, Any]]:
        """`count` instances as teams leave them; returns their bodies as first served.

        Mixed statuses (mostly stopped or running), names of a few kinds (`tmp-`, `tmp-keep-`,
        `course-`, `prod-`), created up to 90 days ago and last updated since; with the notebook
        API one in ten is a free CodeLab instance (`feature` DEFAULT), about a third carry a
        `team` tag, one in ten the tag `modelarts-cleanup:keep`, and some run on a dedicated
        pool. Instances are spread over `owners` (the caller by default) and `workspaces` in
        turn. The same arguments give the same fleet.
        """
        with self._lock:
            return self._fleet.seed(
                project_id,
                count,
                api=api,
                seed=seed,
                workspaces=workspaces,
                owners=owners or (self._caller,),
            )

    def instance(self, project_id: str, instance_id: str) -> dict[str, Any] | None:
        """The instance as the API would show it now, or None when it does not exist."""
        with self._lock:
            found = self._fleet.lookup(project_id, instance_id)
            return None if found is None else copy.deepcopy(found.body)

    def tag(self, project_id: str, instance_id: str, tags: Mapping[str, str]) -> None:
        """Add (or overwrite) tags on an instance, as its owner would in the console."""
        with self._lock:
            found = self._existing(project_id, instance_id)
            kept = [t for t in found.body.get("tags", []) if t.get("key") not in tags]
            found.body["tags"] = kept + [{"key": k, "value": v} for k, v in tags.items()]
            found.changed()

    def untag(self, project_id: str, instance_id: str, keys: Iterable[str]) -> None:
        """Take tags off an instance, as its owner would in the console."""
        with self._lock:
            found = self._existing(project_id, instance_id)
            gone = set(keys)
            found.body["tags"] = [t for t in found.body.get("tags", []) if t["key"] not in gone]
            found.changed()

    def rename(self, project_id: str, instance_id: str, name: str) -> None:
        """Give an instance another name, as its owner would."""
        with self._lock:
            found = self._existing(project_id, instance_id)
            found.body["name"] = name
            found.changed()

    def set_status(self, project_id: str, instance_id: str, status: str) -> None:
        """Move an instance to a status at once (someone started it, say)."""
        with self._lock:
            found = self._existing(project_id, instance_id)
            self._fleet.set_status(found, status)

    def _existing(self, project_id: str, instance_id: str) -> Instance:
        """The instance, for a test to change (the lock held); KeyError when there is none."""
        found = self._fleet.lookup(project_id, instance_id)
        if found is None:
            raise KeyError(instance_id)
        return found

    def on_next_read(self, project_id: str, instance_id: str, act: Callable[[], None]) -> None:
        """Run `act` just before the next read of this instance (GET) is answered: someone
        changing it between a listing and the function's re-read."""
        with self._lock:
            self._before_read[(project_id, instance_id)] = act

    def instance_ids(self, project_id: str | None = None) -> set[tuple[str, str]]:
        """(project_id, instance_id) of every instance present, optionally in one project."""
        with self._lock:
            return {key for key in self._fleet.instances if project_id in (None, key[0])}

    def add_topic(self, urn: str) -> str:
        """Create an SMN topic (`urn:smn:<region>:<project_id>:<name>`) that takes messages."""
        with self._lock:
            return self._topics.add(urn)

    @property
    def published(self) -> list[PublishedMessage]:
        """Every message an SMN topic took, in order (a copy)."""
        with self._lock:
            return list(self._topics.published)
