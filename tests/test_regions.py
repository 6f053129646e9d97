"""Every project to its own region, end to end over real sockets: a local endpoint per region,
a local IAM, and the settings that say where each project is."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import NameResolutionError

from modelarts_cleanup.cloud.iam import ProjectRegionCache, project_regions, region_of_project_name
from modelarts_cleanup.cloud.regions import Located, RegionalTransport, locate
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ApiError, ConfigurationError
from modelarts_cleanup.settings import load_settings
from modelarts_cleanup.testing import LocalCloud
from tests.support import AK, SK, FunctionGraphContext

NORTH, EAST, SOUTHEAST = "cn-north-4", "cn-east-3", "ap-southeast-3"
P_NORTH = "1" * 32
P_EAST = "2" * 32
P_SOUTHEAST = "3" * 32
P_TEAM = "4" * 32  # a subproject of cn-north-4
P_UNLISTED = "5" * 32  # a project IAM does not list
P_OTHER = "6" * 32
TOKEN = "a-project-scoped-iam-token-never-logged"


def no_sleep(_: float) -> None:
    pass


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    regions = {NORTH: [P_NORTH], EAST: [P_EAST], SOUTHEAST: [P_SOUTHEAST]}
    with LocalCloud(
        regions, subprojects={P_TEAM: (NORTH, "team")}, access_key=AK, secret_key=SK
    ) as local:
        yield local


def environ(cloud: LocalCloud, **extra: str) -> dict[str, str]:
    return {
        **(cloud.environ() if "MODELARTS_CLEANUP_IAM_ENDPOINT" not in extra else {}),
        "MODELARTS_CLEANUP_ENDPOINTS": json.dumps({r: f.url for r, f in cloud.regions.items()}),
        "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
        "MODELARTS_CLEANUP_REGION": NORTH,
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        **extra,
    }


def run(
    cloud: LocalCloud,
    event: object,
    *,
    cache: ProjectRegionCache | None = None,
    context: object | None = None,
    **extra: str,
) -> tuple[dict[str, Any], str]:
    stream = io.StringIO()
    report = run_function(
        event,
        context,
        environ=environ(cloud, **extra),
        log_stream=stream,
        sleep=no_sleep,
        iam_cache=cache or ProjectRegionCache(),
    )
    return report, stream.getvalue()


def one_each(cloud: LocalCloud, *projects: str) -> dict[str, str]:
    """An instance in each project, in the project's own region; project -> instance ID."""
    placed = {}
    for project in projects:
        region = next(r for r, fake in cloud.regions.items() if project in (fake.projects or ()))
        placed[project] = cloud[region].add_instance(project)
    return placed


def targets(placed: dict[str, str]) -> list[dict[str, str]]:
    return [{"project_id": p, "instance_id": i} for p, i in placed.items()]


def by_project(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["project_id"]: r for r in report["results"]}


def iam_requests(cloud: LocalCloud) -> int:
    return len(cloud.iam.requests)


def test_targets_and_selectors_in_three_regions_each_go_to_their_own(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_NORTH, P_EAST, P_SOUTHEAST)
    regions = {P_NORTH: NORTH, P_EAST: EAST, P_SOUTHEAST: SOUTHEAST}
    selected = {
        p: cloud[r].add_instance(p, status="STOPPED", name="tmp-1") for p, r in regions.items()
    }
    selectors = [
        {"project_id": p, "statuses": ["STOPPED"], "name_pattern": "tmp-*"} for p in selected
    ]
    report, _ = run(cloud, {"targets": targets(placed), "selectors": selectors})
    assert report["status"] == "succeeded"
    assert report["regions"] == sorted([NORTH, EAST, SOUTHEAST])
    assert sorted((r["project_id"], r["region"], r["outcome"]) for r in report["results"]) == [
        (p, regions[p], "deleted") for p in sorted(regions) for _ in range(2)
    ]
    assert [(s["project_id"], s["region"], s["picked"]) for s in report["selectors"]] == [
        (p, regions[p], 1) for p in selected
    ]
    for project, region in regions.items():
        assert cloud[region].instance_ids() == set()
        # Every request a region saw was for its own project.
        assert {r.path.split("/")[2] for r in cloud[region].requests} == {project}
    assert iam_requests(cloud) == 1


def test_summary_line_lists_the_regions_touched(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_NORTH, P_EAST)
    _, log = run(cloud, {"targets": targets(placed)})
    summary = next(json.loads(line) for line in log.splitlines() if "run finished" in line)
    assert summary["regions"] == [EAST, NORTH]
    lines = [json.loads(line) for line in log.splitlines() if '"outcome"' in line]
    assert {(line["project_id"], line["region"]) for line in lines} == {
        (P_NORTH, NORTH),
        (P_EAST, EAST),
    }


def test_a_subproject_goes_to_its_region(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_TEAM)
    report, _ = run(cloud, {"targets": targets(placed)})
    assert by_project(report)[P_TEAM]["outcome"] == "deleted"
    assert by_project(report)[P_TEAM]["region"] == NORTH
    assert cloud[NORTH].instance_ids() == set()


def test_the_explicit_map_wins_and_iam_is_not_asked(cloud: LocalCloud) -> None:
    cloud[EAST].projects = {P_EAST, P_UNLISTED}
    unlisted = cloud[EAST].add_instance(P_UNLISTED)
    report, _ = run(
        cloud,
        {"targets": [{"project_id": P_UNLISTED, "instance_id": unlisted}]},
        MODELARTS_CLEANUP_PROJECT_REGIONS=json.dumps({P_UNLISTED: EAST}),
    )
    assert by_project(report)[P_UNLISTED]["outcome"] == "deleted"
    assert by_project(report)[P_UNLISTED]["region"] == EAST
    assert iam_requests(cloud) == 0


def test_the_functions_own_project_is_in_the_configured_region(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_NORTH)
    report, _ = run(cloud, {"targets": targets(placed)}, RUNTIME_PROJECT_ID=P_NORTH)
    assert by_project(report)[P_NORTH]["outcome"] == "deleted"
    assert iam_requests(cloud) == 0


def test_the_contexts_project_is_the_functions_own(cloud: LocalCloud) -> None:
    class Context(FunctionGraphContext):
        def getProjectID(self) -> str:
            return P_NORTH

    placed = one_each(cloud, P_NORTH)
    report, _ = run(cloud, {"targets": targets(placed)}, context=Context())
    assert by_project(report)[P_NORTH]["outcome"] == "deleted"
    assert iam_requests(cloud) == 0


def test_a_project_iam_does_not_list_is_refused_and_the_others_go_on(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_NORTH)
    event = {
        "targets": [*targets(placed), {"project_id": P_UNLISTED, "instance_id": placed[P_NORTH]}],
        "selectors": [{"project_id": P_UNLISTED, "statuses": ["STOPPED"]}],
    }
    report, log = run(cloud, event)
    assert report["status"] == "partial"
    assert by_project(report)[P_NORTH]["outcome"] == "deleted"
    unknown = by_project(report)[P_UNLISTED]
    assert (unknown["outcome"], unknown["reason"], unknown["region"]) == (
        "refused",
        "region_unknown",
        None,
    )
    assert "IAM does not list it" in unknown["error_msg"]
    (selector,) = report["selectors"]
    assert selector["error_code"] == "region_unknown"
    assert P_UNLISTED in selector["error_msg"]
    assert f"project {P_UNLISTED}: region unknown" in log
    assert report["regions"] == [NORTH]


@pytest.mark.parametrize("status", [401, 403])
def test_iam_refusing_leaves_unknown_projects_untouched(cloud: LocalCloud, status: int) -> None:
    cloud.iam.refuse(status)
    placed = one_each(cloud, P_NORTH, P_EAST)
    report, _ = run(
        cloud,
        {"targets": targets(placed)},
        MODELARTS_CLEANUP_PROJECT_REGIONS=json.dumps({P_NORTH: NORTH}),
    )
    assert report["status"] == "partial"
    assert by_project(report)[P_NORTH]["outcome"] == "deleted"
    east = by_project(report)[P_EAST]
    assert (east["outcome"], east["reason"]) == ("refused", "region_unknown")
    assert "IAM could not be asked" in east["error_msg"] and str(status) in east["error_msg"]
    assert cloud[EAST].requests == []
    assert iam_requests(cloud) == 1  # a refusal is not retried


def test_iam_down_leaves_unknown_projects_untouched(cloud: LocalCloud) -> None:
    gone = cloud.iam.url
    cloud.iam.stop()
    placed = one_each(cloud, P_NORTH, P_EAST)
    selectors = [{"project_id": P_EAST, "statuses": ["STOPPED"]}]
    report, _ = run(
        cloud,
        {"targets": targets(placed), "selectors": selectors},
        MODELARTS_CLEANUP_PROJECT_REGIONS=json.dumps({P_NORTH: NORTH}),
        MODELARTS_CLEANUP_MAX_ATTEMPTS="2",
        MODELARTS_CLEANUP_IAM_ENDPOINT=gone,
    )
    assert report["status"] == "partial"
    assert by_project(report)[P_NORTH]["outcome"] == "deleted"
    assert by_project(report)[P_EAST]["reason"] == "region_unknown"
    assert report["selectors"][0]["error_code"] == "region_unknown"
    assert cloud[EAST].requests == []
    assert cloud[EAST].instance_ids() != set()
    assert "IAM could not be asked" in report["results"][1]["error_msg"]


def test_one_iam_request_per_run_and_a_warm_container_reuses_it(cloud: LocalCloud) -> None:
    now = [1000.0]
    cache = ProjectRegionCache(clock=lambda: now[0])
    placed = one_each(cloud, P_EAST, P_SOUTHEAST, P_TEAM)
    run(cloud, {"targets": targets(placed)}, cache=cache)
    assert iam_requests(cloud) == 1
    placed = one_each(cloud, P_EAST, P_SOUTHEAST)
    now[0] += 599
    report, _ = run(cloud, {"targets": targets(placed)}, cache=cache)
    assert iam_requests(cloud) == 1
    assert {r["outcome"] for r in report["results"]} == {"deleted"}
    now[0] += 1  # ten minutes after the answer: asked again
    run(cloud, {"targets": targets(one_each(cloud, P_EAST))}, cache=cache)
    assert iam_requests(cloud) == 2


def test_a_failed_lookup_is_not_kept(cloud: LocalCloud) -> None:
    cache = ProjectRegionCache()
    cloud.iam.refuse(403)
    run(cloud, {"targets": targets(one_each(cloud, P_EAST))}, cache=cache)
    cloud.iam.refuse(None)
    report, _ = run(cloud, {"targets": targets(one_each(cloud, P_EAST))}, cache=cache)
    assert {r["outcome"] for r in report["results"]} == {"deleted"}
    assert iam_requests(cloud) == 2


def test_a_project_outside_the_allowlist_is_not_looked_up(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_EAST)
    report, _ = run(cloud, {"targets": targets(placed)}, MODELARTS_CLEANUP_ALLOWED_PROJECTS=P_NORTH)
    assert by_project(report)[P_EAST]["reason"] == "project_not_allowed"
    assert iam_requests(cloud) == 0


def test_a_token_works_in_the_configured_region_only() -> None:
    regions = {NORTH: [P_NORTH], EAST: [P_EAST], SOUTHEAST: [P_SOUTHEAST]}
    with LocalCloud(regions, access_key=AK, secret_key=SK, tokens=(TOKEN,)) as cloud:
        token_run(cloud)


def token_run(cloud: LocalCloud) -> None:
    placed = one_each(cloud, P_NORTH, P_EAST, P_SOUTHEAST)
    report, log = run(
        cloud,
        {"targets": targets(placed)},
        HUAWEICLOUD_SDK_AK="",
        HUAWEICLOUD_SDK_SK="",
        MODELARTS_CLEANUP_AUTH_TOKEN=TOKEN,
        RUNTIME_PROJECT_ID=P_NORTH,
        MODELARTS_CLEANUP_PROJECT_REGIONS=json.dumps({P_EAST: EAST}),
    )
    results = by_project(report)
    assert results[P_NORTH]["outcome"] == "deleted"
    for project in (P_EAST, P_SOUTHEAST):
        assert (results[project]["outcome"], results[project]["reason"]) == (
            "refused",
            "region_unknown",
        )
        assert "IAM token" in results[project]["error_msg"]
        assert f"only {NORTH}" in results[project]["error_msg"]
    assert "an IAM token works in one region only" in log
    assert TOKEN not in log and TOKEN not in json.dumps(report)
    assert iam_requests(cloud) == 0
    assert cloud[EAST].requests == [] and cloud[SOUTHEAST].requests == []


def test_temporary_keys_sign_iam_and_every_region() -> None:
    security_token = "temporary-security-token-never-logged"
    regions = {NORTH: [P_NORTH], EAST: [P_EAST]}
    with LocalCloud(regions, access_key=AK, secret_key=SK, security_token=security_token) as local:
        placed = one_each(local, P_NORTH, P_EAST)
        report, log = run(
            local, {"targets": targets(placed)}, HUAWEICLOUD_SDK_SECURITY_TOKEN=security_token
        )
        assert {r["outcome"] for r in report["results"]} == {"deleted"}
        assert len(local.iam.requests) == 1
        assert security_token not in log


def test_the_single_endpoint_setting_sends_everything_there_and_asks_no_one(
    cloud: LocalCloud,
) -> None:
    north = cloud[NORTH]
    north.projects = None  # one endpoint serving every project
    first, second = north.add_instance(P_NORTH), north.add_instance(P_EAST)
    report, _ = run(
        cloud,
        {
            "targets": [
                {"project_id": P_NORTH, "instance_id": first},
                {"project_id": P_EAST, "instance_id": second},
            ]
        },
        MODELARTS_CLEANUP_ENDPOINTS="",
        MODELARTS_CLEANUP_ENDPOINT=north.url,
    )
    assert {r["outcome"] for r in report["results"]} == {"deleted"}
    assert {r["region"] for r in report["results"]} == {NORTH}
    assert iam_requests(cloud) == 0


def test_a_misrouted_request_would_be_refused_by_the_local_region(cloud: LocalCloud) -> None:
    # The local endpoint fails loudly when a project goes to the wrong region, so a routing
    # mistake can never pass as "already absent" in these tests.
    instance = cloud[EAST].add_instance(P_EAST)
    report, _ = run(
        cloud,
        {"targets": [{"project_id": P_EAST, "instance_id": instance}]},
        MODELARTS_CLEANUP_PROJECT_REGIONS=json.dumps({P_EAST: NORTH}),
    )
    (result,) = report["results"]
    assert (result["outcome"], result["http_status"]) == ("failed", 403)


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "region"),
    [
        ("cn-north-4", "cn-north-4"),
        ("ap-southeast-1", "ap-southeast-1"),
        ("eu-west-101", "eu-west-101"),
        ("cn-north-4_team", "cn-north-4"),
        ("cn-north-4_a_b", "cn-north-4"),
        ("MOS", None),
        ("cn-north-4_", None),
        ("north", None),
        ("", None),
        (None, None),
    ],
)
def test_a_project_name_says_its_region(name: object, region: str | None) -> None:
    assert region_of_project_name(name) == region


def test_iam_answer_is_read_strictly() -> None:
    body = {
        "projects": [
            {"id": P_NORTH, "name": NORTH},
            {"id": P_TEAM, "name": f"{NORTH}_team"},
            {"id": P_OTHER, "name": "MOS"},
            {"id": "not-an-id", "name": EAST},
        ]
    }
    assert project_regions(body) == {P_NORTH: NORTH, P_TEAM: NORTH}
    for broken in ({}, {"projects": {}}, {"projects": ["x"]}, []):
        with pytest.raises(ValueError, match="project"):
            project_regions(broken)


def base(**extra: str) -> dict[str, str]:
    return {"MODELARTS_CLEANUP_REGION": NORTH, **extra}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MODELARTS_CLEANUP_PROJECT_REGIONS": "[]"}, "must be a JSON object"),
        ({"MODELARTS_CLEANUP_PROJECT_REGIONS": "{"}, "not valid JSON"),
        ({"MODELARTS_CLEANUP_PROJECT_REGIONS": '{"abc": "cn-north-4"}'}, "keys must be project"),
        ({"MODELARTS_CLEANUP_PROJECT_REGIONS": json.dumps({P_NORTH: "North 4"})}, "values must"),
        ({"MODELARTS_CLEANUP_PROJECT_REGIONS": json.dumps({P_NORTH: 4})}, "values must"),
        ({"MODELARTS_CLEANUP_ENDPOINTS": '{"Cn North": "https://x.example"}'}, "keys must be"),
        ({"MODELARTS_CLEANUP_ENDPOINTS": '{"cn-north-4": "ftp://x"}'}, "cn-north-4: must be"),
        ({"MODELARTS_CLEANUP_ENDPOINTS": '{"cn-north-4": 1}'}, "must be a URL"),
        ({"MODELARTS_CLEANUP_ENDPOINTS": '{"cn-north-4": "http://x.example"}'}, "plain http"),
        ({"MODELARTS_CLEANUP_IAM_ENDPOINT": "http://iam.example"}, "IAM_ENDPOINT is plain"),
        ({"MODELARTS_CLEANUP_IAM_ENDPOINT": "iam.example"}, "IAM_ENDPOINT"),
        (
            {
                "MODELARTS_CLEANUP_ENDPOINT": "https://a.example",
                "MODELARTS_CLEANUP_ENDPOINTS": '{"cn-north-4": "https://b.example"}',
            },
            "set one of them",
        ),
    ],
)
def test_region_settings_are_checked(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(base(**env))
    assert expected in str(caught.value)


def test_region_settings_as_given() -> None:
    settings = load_settings(
        {
            "MODELARTS_CLEANUP_ENDPOINTS": '{"cn-east-3": "https://modelarts.example/"}',
            "MODELARTS_CLEANUP_PROJECT_REGIONS": json.dumps({P_EAST: EAST}),
            "MODELARTS_CLEANUP_IAM_ENDPOINT": "https://iam.myhuaweicloud.eu",
        }
    )
    assert settings.region_url(EAST) == "https://modelarts.example"
    assert settings.region_url(NORTH) == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert settings.project_regions == {P_EAST: EAST}
    assert settings.iam_url == "https://iam.myhuaweicloud.eu"


# -- locating projects, and sending each request to its region (no sockets) -----------------


def iam_listing(listed: dict[str, str]) -> tuple[list[int], Any]:
    """An IAM stand-in that answers `listed`, and the count of times it was asked."""
    asked = [0]

    def ask() -> dict[str, str]:
        asked[0] += 1
        return listed

    return asked, ask


def test_locate_takes_the_map_then_the_functions_own_then_iam_once_for_the_rest() -> None:
    asked, ask = iam_listing({P_EAST: EAST, P_NORTH: SOUTHEAST, P_TEAM: NORTH})
    located = locate(
        [P_NORTH, P_EAST, P_TEAM, P_EAST, P_OTHER],
        explicit={P_NORTH: NORTH},
        own=(P_OTHER, SOUTHEAST),
        ask_iam=ask,
        no_iam="unused",
    )
    assert dict(located.regions) == {
        P_NORTH: NORTH,
        P_EAST: EAST,
        P_TEAM: NORTH,
        P_OTHER: SOUTHEAST,
    }
    assert dict(located.unknown) == {}
    assert asked[0] == 1
    assert (located.region(P_EAST), located.region(P_UNLISTED)) == (EAST, None)


def test_locate_asks_iam_nothing_when_every_project_is_known() -> None:
    asked, ask = iam_listing({})
    located = locate(
        [P_NORTH, P_OTHER], explicit={P_NORTH: NORTH}, own=(P_OTHER, EAST), ask_iam=ask, no_iam=""
    )
    assert dict(located.regions) == {P_NORTH: NORTH, P_OTHER: EAST}
    assert asked[0] == 0
    assert (Located().regions, Located().unknown) == ({}, {})


def test_locate_leaves_a_project_iam_does_not_list_unknown_and_says_why() -> None:
    _, ask = iam_listing({P_EAST: EAST})
    located = locate([P_EAST, P_UNLISTED], explicit={}, own=None, ask_iam=ask, no_iam="")
    assert dict(located.regions) == {P_EAST: EAST}
    assert dict(located.unknown) == {
        P_UNLISTED: "not in MODELARTS_CLEANUP_PROJECT_REGIONS, and IAM does not list it among "
        "the projects these credentials may use"
    }


def test_locate_without_iam_leaves_the_rest_unknown_for_the_reason_given() -> None:
    located = locate(
        [P_NORTH, P_EAST, P_UNLISTED],
        explicit={P_NORTH: NORTH},
        own=None,
        ask_iam=None,
        no_iam="IAM is not asked with a token",
    )
    assert dict(located.regions) == {P_NORTH: NORTH}
    assert dict(located.unknown) == {
        P_EAST: "IAM is not asked with a token",
        P_UNLISTED: "IAM is not asked with a token",
    }


def test_locate_when_iam_fails_leaves_the_rest_unknown_with_its_error() -> None:
    def ask() -> dict[str, str]:
        raise ApiError("GET /v3/auth/projects: HTTP 403", http_status=403)

    located = locate([P_NORTH, P_EAST], explicit={P_NORTH: NORTH}, own=None, ask_iam=ask, no_iam="")
    assert dict(located.regions) == {P_NORTH: NORTH}
    assert dict(located.unknown) == {
        P_EAST: "IAM could not be asked which region it is in: GET /v3/auth/projects: HTTP 403"
    }


def test_locate_refuses_a_project_in_a_region_the_credentials_cannot_reach() -> None:
    _, ask = iam_listing({P_EAST: EAST, P_NORTH: NORTH})
    located = locate(
        [P_NORTH, P_EAST],
        explicit={},
        own=None,
        ask_iam=ask,
        no_iam="",
        reachable=frozenset({NORTH}),
        unreachable="in region {region}, out of reach",
    )
    assert dict(located.regions) == {P_NORTH: NORTH}
    assert dict(located.unknown) == {P_EAST: f"in region {EAST}, out of reach"}
    by_default = locate(
        [P_EAST], explicit={P_EAST: EAST}, own=None, ask_iam=None, no_iam="", reachable=frozenset()
    )
    assert dict(by_default.unknown) == {
        P_EAST: f"in region {EAST}, which these credentials cannot reach"
    }


class Recording:
    """A transport that records what it was asked to send, and may hold each send."""

    def __init__(self, base_url: str, hold: threading.Event | None = None) -> None:
        self.base_url = base_url
        self.sent: list[tuple[Any, ...]] = []
        self.hold = hold
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0

    def send(
        self,
        method: str,
        path: str,
        *,
        project_id: str | None,
        params: Any = None,
        json_body: Any = None,
        deadline: float | None = None,
    ) -> Any:
        with self.lock:
            self.sent.append((method, path, project_id, params, json_body, deadline))
            self.inside += 1
            self.most = max(self.most, self.inside)
        if self.hold is not None:
            self.hold.wait(5)
        with self.lock:
            self.inside -= 1
        return ("answer from", self.base_url)


def test_a_request_goes_to_its_projects_region_with_everything_it_carries() -> None:
    north, east = Recording("https://north.example"), Recording("https://east.example")
    regional = RegionalTransport(
        {NORTH: north, EAST: east},  # type: ignore[dict-item]
        {P_NORTH: NORTH, P_EAST: EAST},
        limit=1,
    )
    answer = regional.send(
        "POST", "/v1/x", project_id=P_EAST, params={"a": "b"}, json_body={"k": 1}, deadline=9.5
    )
    assert answer == ("answer from", "https://east.example")  # type: ignore[comparison-overlap]
    assert east.sent == [("POST", "/v1/x", P_EAST, {"a": "b"}, {"k": 1}, 9.5)]
    assert north.sent == []
    regional.send("GET", "/v1/y", project_id=P_NORTH)
    assert north.sent == [("GET", "/v1/y", P_NORTH, None, None, None)]
    assert regional.base_url == "https://north.example"
    assert regional.base_urls == ("https://north.example", "https://east.example")


@pytest.mark.parametrize("project", [P_UNLISTED, None, P_OTHER])
def test_a_request_for_a_project_without_a_region_is_refused_unsent(project: str | None) -> None:
    north = Recording("https://north.example")
    regional = RegionalTransport(
        {NORTH: north},  # type: ignore[dict-item]
        {P_NORTH: NORTH, P_OTHER: EAST},  # P_OTHER's region has no transport
        limit=2,
    )
    with pytest.raises(ApiError) as caught:
        regional.send("DELETE", "/v1/z", project_id=project)
    error = caught.value
    assert str(error) == "DELETE /v1/z: the project's region is not known; nothing was sent"
    assert (error.error_code, error.error_msg, error.attempts) == (
        "region_unknown",
        "the project's region is not known; nothing was sent",
        0,
    )
    assert north.sent == []


def test_one_endpoint_for_everything_takes_every_project() -> None:
    only = Recording("https://one.example")
    regional = RegionalTransport({"": only}, {}, limit=1, default="")  # type: ignore[dict-item]
    regional.send("GET", "/v1/a", project_id=P_UNLISTED)
    regional.send("GET", "/v1/b", project_id=None)
    assert [s[:3] for s in only.sent] == [("GET", "/v1/a", P_UNLISTED), ("GET", "/v1/b", None)]


def test_a_request_without_a_project_goes_by_the_route_for_none() -> None:
    north, east = Recording("https://north.example"), Recording("https://east.example")
    regional = RegionalTransport(
        {NORTH: north, EAST: east},  # type: ignore[dict-item]
        {"": EAST, P_NORTH: NORTH},
        limit=1,
    )
    regional.send("GET", "/v3/auth/projects", project_id=None)
    assert ([s[:3] for s in east.sent], north.sent) == ([("GET", "/v3/auth/projects", None)], [])


def test_a_regional_transport_needs_a_transport() -> None:
    with pytest.raises(ValueError, match=r"^at least one transport$"):
        RegionalTransport({}, {}, limit=1)


@pytest.mark.parametrize(("limit", "most"), [(2, 2), (1, 1), (0, 1)])
def test_at_most_limit_requests_are_in_flight_per_region_and_regions_do_not_wait(
    limit: int, most: int
) -> None:
    release = threading.Event()
    north = Recording("https://north.example", hold=release)
    east = Recording("https://east.example")
    regional = RegionalTransport(
        {NORTH: north, EAST: east},  # type: ignore[dict-item]
        {P_NORTH: NORTH, P_EAST: EAST},
        limit=limit,
    )
    senders = [
        threading.Thread(
            target=regional.send, args=("GET", f"/v1/{n}"), kwargs={"project_id": P_NORTH}
        )
        for n in range(3)
    ]
    for sender in senders:
        sender.start()
    while len(north.sent) < most:
        time.sleep(0.001)
    # The north region is full; the east one is not held up by it.
    regional.send("GET", "/v1/east", project_id=P_EAST)
    assert len(east.sent) == 1
    time.sleep(0.05)  # room for a sender past the limit to get in, were it let
    assert len(north.sent) == most
    release.set()
    for sender in senders:
        sender.join(5)
    assert (len(north.sent), north.most) == (3, most)


@pytest.mark.parametrize("count", [2, 33])
def test_every_region_is_worked_at_once_however_many_there_are(count: int) -> None:
    # One worker per region (concurrency 1), and more regions than a thread pool's default size
    # (at most 32) too: each region still has its worker, so all the deletions are in flight at
    # once, or the barrier (which needs them all) breaks and they fail.
    from modelarts_cleanup.cleanup.execution import execute
    from modelarts_cleanup.cleanup.planning import Policy, make_plan
    from modelarts_cleanup.cleanup.report import JsonLog
    from modelarts_cleanup.cloud.client import DeleteResult
    from modelarts_cleanup.events.payload import Target

    projects = [f"{n:032x}" for n in range(1, count + 1)]
    barrier = threading.Barrier(len(projects), timeout=5)

    class Client:
        def delete_instance(
            self, project_id: str, instance_id: str, *, deadline: float | None = None
        ) -> DeleteResult:
            barrier.wait()
            return DeleteResult("deleted", 200, None, 1, "DELETING")

    instance = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
    plan = make_plan(
        [Target(project_id=p, instance_id=instance) for p in projects], Policy(), dry_run=False
    )
    regions = {p: f"region-{n}" for n, p in enumerate(projects)}
    results = execute(
        plan,
        Client(),  # type: ignore[arg-type]
        concurrency=1,
        deadline=None,
        log=JsonLog(io.StringIO()),
        region_of=regions.get,
    )
    assert [(r.outcome.value, r.region) for r in results] == [
        ("deleted", regions[p]) for p in projects
    ]


# -- a host that does not resolve names the settings that made it --------------------------


def _unresolved(host: str) -> requests.ConnectionError:
    return requests.ConnectionError(
        NameResolutionError(host, None, socket.gaierror(-2, "Name or service not known"))
    )


INSTANCE = "6fa459ea-ee8a-3ca4-894e-db77e160355e"


def _unresolved_run(mocked: responses.RequestsMock, **settings: str) -> dict[str, Any]:
    event = {"targets": [{"project_id": P_NORTH, "instance_id": INSTANCE}]}
    environ = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "MODELARTS_CLEANUP_MAX_ATTEMPTS": "1",
        "MODELARTS_CLEANUP_PROTECT_TAGS": "[]",
        "MODELARTS_CLEANUP_CONFIRM_SECONDS": "0",
        **settings,
    }
    return run_function(
        event, None, environ=environ, log_stream=io.StringIO(), iam_cache=ProjectRegionCache()
    )


def test_a_misspelt_region_says_which_settings_made_the_host(
    mocked: responses.RequestsMock,
) -> None:
    host = "modelarts.cn-nort-4.myhuaweicloud.com"
    mocked.delete(re.compile(f"https://{re.escape(host)}/.*"), body=_unresolved(host))
    regions = json.dumps({P_NORTH: "cn-nort-4"})
    report = _unresolved_run(
        mocked, MODELARTS_CLEANUP_REGION=NORTH, MODELARTS_CLEANUP_PROJECT_REGIONS=regions
    )
    (result,) = report["results"]
    assert (result["outcome"], result["error_code"]) == ("failed", "ConnectionError")
    assert result["error_msg"] == (
        f"{host} does not resolve (no such host): check MODELARTS_CLEANUP_REGION, "
        "MODELARTS_CLEANUP_PROJECT_REGIONS or MODELARTS_CLEANUP_ENDPOINTS"
    )


def test_an_iam_endpoint_that_does_not_resolve_is_named_in_the_refusal(
    mocked: responses.RequestsMock,
) -> None:
    host = "iam.example-cloud.test"
    mocked.get(re.compile(f"https://{re.escape(host)}/.*"), body=_unresolved(host))
    report = _unresolved_run(
        mocked,
        MODELARTS_CLEANUP_REGION=NORTH,
        MODELARTS_CLEANUP_IAM_ENDPOINT=f"https://{host}",
    )
    (result,) = report["results"]
    assert (result["outcome"], result["reason"]) == ("refused", "region_unknown")
    assert (
        "does not resolve (no such host): check MODELARTS_CLEANUP_IAM_ENDPOINT"
        in (result["error_msg"])
    )
