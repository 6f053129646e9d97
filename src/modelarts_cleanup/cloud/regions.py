"""Every project to its own region: where a project is, and a transport that sends each request
to its project's region.

A project's region comes from the explicit map, else from the function's own project (in the
configured region), else from IAM, asked once for all the projects not known otherwise. A project
found nowhere is not touched: the run says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ApiError
from .transport import Answer, Transport

# The reason a project's targets are refused, and the error code of its selectors.
REGION_UNKNOWN = "region_unknown"


@dataclass(frozen=True)
class Located:
    """Where each project of a run is, and why the rest could not be found."""

    regions: Mapping[str, str] = field(default_factory=dict)  # project ID -> region ID
    unknown: Mapping[str, str] = field(default_factory=dict)  # project ID -> why

    def region(self, project_id: str) -> str | None:
        """The project's region, if it was found."""
        return self.regions.get(project_id)


def locate(
    projects: Iterable[str],
    *,
    explicit: Mapping[str, str],
    own: tuple[str, str] | None,
    ask_iam: Callable[[], Mapping[str, str]] | None,
    no_iam: str,
    reachable: frozenset[str] | None = None,
    unreachable: str = "in region {region}, which these credentials cannot reach",
) -> Located:
    """The region of each project: the explicit map, the function's own, then IAM (once).

    `ask_iam` None: IAM cannot be asked, and `no_iam` says why. `reachable`, when given, is every
    region the credentials work in; a project elsewhere is unknown for `unreachable`'s reason.
    """
    wanted = list(dict.fromkeys(projects))
    found: dict[str, str] = {}
    for project in wanted:
        if project in explicit:
            found[project] = explicit[project]
        elif own is not None and project == own[0]:
            found[project] = own[1]
    unknown: dict[str, str] = {}
    missing = [p for p in wanted if p not in found]
    if missing:
        if ask_iam is None:
            unknown.update(dict.fromkeys(missing, no_iam))
        else:
            try:
                listed = ask_iam()
            except ApiError as exc:
                why = f"IAM could not be asked which region it is in: {exc}"
                unknown.update(dict.fromkeys(missing, why))
            else:
                for project in missing:
                    if project in listed:
                        found[project] = listed[project]
                    else:
                        unknown[project] = (
                            "not in MODELARTS_CLEANUP_PROJECT_REGIONS, and IAM does not list "
                            "it among the projects these credentials may use"
                        )
    if reachable is not None:
        for project, region in list(found.items()):
            if region not in reachable:
                del found[project]
                unknown[project] = unreachable.format(region=region)
    return Located(found, unknown)


class RegionalTransport:
    """Sends each request to its project's region; at most `limit` in flight per region.

    Each region has its own transport (its own connection pool and admission), so a slow
    region neither holds up nor misleads a near one. `default` takes every project when one
    endpoint serves them all.
    """

    def __init__(
        self,
        transports: Mapping[str, Transport],
        routes: Mapping[str, str],
        *,
        limit: int,
        default: str | None = None,
    ) -> None:
        if not transports:
            raise ValueError("at least one transport")
        self._transports = dict(transports)
        self._routes = dict(routes)
        self._default = default
        self._gates = {key: threading.BoundedSemaphore(max(1, limit)) for key in transports}

    @property
    def base_url(self) -> str:
        """The first region's base URL (for messages)."""
        return next(iter(self._transports.values())).base_url

    @property
    def base_urls(self) -> tuple[str, ...]:
        """Every region's base URL."""
        return tuple(t.base_url for t in self._transports.values())

    def send(
        self,
        method: str,
        path: str,
        *,
        project_id: str | None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> Answer:
        """Send through the project's region's transport; a project with none is refused."""
        key = self._routes.get(project_id or "", self._default)
        transport = None if key is None else self._transports.get(key)
        if key is None or transport is None:
            raise ApiError(
                f"{method} {path}: the project's region is not known; nothing was sent",
                error_code=REGION_UNKNOWN,
                error_msg="the project's region is not known; nothing was sent",
                attempts=0,
            )
        with self._gates[key]:
            return transport.send(
                method,
                path,
                project_id=project_id,
                params=params,
                json_body=json_body,
                deadline=deadline,
            )
