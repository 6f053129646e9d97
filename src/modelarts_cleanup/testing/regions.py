"""Several regions at once: a local ModelArts endpoint per region (each on its own port, serving
only its region's projects) and a local IAM that lists them all."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .http_server import Startable
from .iam import FakeIam
from .server import FakeModelArts


class LocalCloud(Startable):
    """`regions`: region ID -> its projects. Each project is listed by IAM under its region's
    name; `subprojects` (project ID -> (region, name)) are listed as `<region>_<name>` and are
    served by that region."""

    def __init__(
        self,
        regions: Mapping[str, Sequence[str]],
        *,
        subprojects: Mapping[str, tuple[str, str]] | None = None,
        access_key: str = "fake-ak",
        secret_key: str = "fake-sk",  # noqa: S107  (a fake key for a fake endpoint)
        security_token: str | None = None,
        latency: Mapping[str, float] | None = None,
        **options: Any,
    ) -> None:
        subprojects = dict(subprojects or {})
        served = {region: list(projects) for region, projects in regions.items()}
        for project_id, (region, _) in subprojects.items():
            served.setdefault(region, []).append(project_id)
        self.regions: dict[str, FakeModelArts] = {
            region: FakeModelArts(
                access_key=access_key,
                secret_key=secret_key,
                security_token=security_token,
                projects=projects,
                latency=(latency or {}).get(region, 0.0),
                **options,
            )
            for region, projects in served.items()
        }
        self.iam = FakeIam(
            access_key=access_key, secret_key=secret_key, security_token=security_token
        )
        for region, projects in regions.items():
            for project_id in projects:
                self.iam.add_project(project_id, region)
        for project_id, (region, name) in subprojects.items():
            parent = next(iter(regions.get(region, ())), None)
            self.iam.add_project(project_id, f"{region}_{name}", parent)

    def __getitem__(self, region: str) -> FakeModelArts:
        return self.regions[region]

    def start(self) -> LocalCloud:
        """Start every region and IAM."""
        for fake in self.regions.values():
            fake.start()
        self.iam.start()
        return self

    def stop(self) -> None:
        """Stop them all."""
        for fake in self.regions.values():
            fake.stop()
        self.iam.stop()

    def environ(self) -> dict[str, str]:
        """The settings that send each region's requests to its local endpoint, and IAM's."""
        return {
            "MODELARTS_CLEANUP_ENDPOINTS": json.dumps(
                {region: fake.url for region, fake in self.regions.items()}
            ),
            "MODELARTS_CLEANUP_IAM_ENDPOINT": self.iam.url,
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
        }
