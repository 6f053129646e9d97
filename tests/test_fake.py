"""The local ModelArts endpoint, exercised over real loopback sockets with plain `requests`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.testing import DEVENVIRON, FakeModelArts, Fault, User
from tests.support import AK, SK, FakeTime, local_endpoint

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
OTHER_PROJECT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.auth = SdkHmacSha256Auth(AK, SK)
        yield s


def notebooks(fake: FakeModelArts, project: str = PROJECT) -> str:
    return f"{fake.url}/v1/{project}/notebooks"


def instances(fake: FakeModelArts, project: str = PROJECT) -> str:
    return f"{fake.url}/v1/{project}/demanager/instances"


def error_of(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait, boundedly, for the endpoint's own threads to get somewhere."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the endpoint never got there"
        time.sleep(0.01)


# -- notebook API ----------------------------------------------------------------------------


def test_notebook_show_returns_the_instance_with_integer_millisecond_times(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, name="nb-1", status="RUNNING", created_ms=1638841805439)

    body = session.get(f"{notebooks(fake)}/{nid}").json()

    assert (body["id"], body["name"], body["status"]) == (nid, "nb-1", "RUNNING")
    # As the SDK's NotebookResp has them: the notebook's times only in `lease`.
    assert "create_at" not in body and "update_at" not in body
    assert body["lease"]["create_at"] == 1638841805439
    assert isinstance(body["lease"]["update_at"], int)
    assert body["image"]["create_at"] < 1638841805439  # the image's own time, not the notebook's
    assert body["feature"] == "NOTEBOOK"
    assert body["billing_items"] == ["ALL"]


def test_notebook_delete_answers_the_object_as_deleting_and_removes_it(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, status="STOPPED")

    response = session.delete(f"{notebooks(fake)}/{nid}")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (nid, "DELETING")
    assert fake.instance(PROJECT, nid) is None
    assert fake.instance_ids() == set()


def test_notebook_stop_moves_instance_to_stopping_then_stopped(session: requests.Session) -> None:
    clock = FakeTime()
    with local_endpoint(stop_seconds=10, clock=clock) as fake:
        nid = fake.add_instance(PROJECT, status="RUNNING")

        stopped = session.post(f"{notebooks(fake)}/{nid}/stop")
        assert (stopped.status_code, stopped.json()["status"]) == (200, "STOPPING")
        clock.advance(9.9)
        assert session.get(f"{notebooks(fake)}/{nid}").json()["status"] == "STOPPING"
        clock.advance(0.1)
        assert session.get(f"{notebooks(fake)}/{nid}").json()["status"] == "STOPPED"


def test_notebook_start_moves_a_stopped_instance_to_running(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, status="STOPPED")

    started = session.post(f"{notebooks(fake)}/{nid}/start")

    assert (started.status_code, started.json()["status"]) == (200, "STARTING")
    assert (fake.instance(PROJECT, nid) or {})["status"] == "RUNNING"
    assert error_of(session.post(f"{notebooks(fake)}/{nid}/start")) == (400, "ModelArts.6305")


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/stop")])
def test_missing_notebook_answers_404_modelarts_6404(
    fake: FakeModelArts, session: requests.Session, method: str, suffix: str
) -> None:
    response = session.request(method, f"{notebooks(fake)}/{uuid.uuid4()}{suffix}")

    assert error_of(response) == (404, "ModelArts.6404")
    assert response.json()["error_msg"]


# -- devenviron API --------------------------------------------------------------------------


def test_devenviron_show_returns_string_millisecond_timestamps(
    fake: FakeModelArts, session: requests.Session
) -> None:
    iid = fake.add_instance(
        PROJECT, "DE-7d558ef8-c73d-11ea-964c-0255ac100033", api=DEVENVIRON, created_ms=1594887749962
    )

    body = session.get(f"{instances(fake)}/{iid}").json()

    assert body["id"] == iid
    assert body["creation_timestamp"] == "1594887749962"
    assert body["latest_update_timestamp"] == "1594887749962"
    assert body["profile"]["de_type"] == "Notebook"


def test_devenviron_delete_answers_the_instance_id_and_removes_it(
    fake: FakeModelArts, session: requests.Session
) -> None:
    iid = fake.add_instance(PROJECT, api=DEVENVIRON, status="RUNNING")

    response = session.delete(f"{instances(fake)}/{iid}")

    assert (response.status_code, response.json()) == (200, {"instance_id": iid})
    assert fake.instance(PROJECT, iid) is None


def test_devenviron_stop_action_reports_previous_and_current_status(
    fake: FakeModelArts, session: requests.Session
) -> None:
    iid = fake.add_instance(PROJECT, api=DEVENVIRON, status="RUNNING")

    response = session.post(f"{instances(fake)}/{iid}/action", json={"action": "stop"})

    assert response.json() == {"current_status": "STOPPING", "previous_state": "RUNNING"}
    # stop_seconds defaults to 0: the next look finds it stopped.
    assert session.get(f"{instances(fake)}/{iid}").json()["status"] == "STOPPED"


@pytest.mark.parametrize("body", [b"", b"not json", b'{"action": "reboot"}', b"[1]"])
def test_devenviron_action_without_a_known_action_is_a_parameter_error(
    fake: FakeModelArts, session: requests.Session, body: bytes
) -> None:
    iid = fake.add_instance(PROJECT, api=DEVENVIRON, status="RUNNING")

    response = session.post(f"{instances(fake)}/{iid}/action", data=body)

    assert error_of(response) == (400, "ModelArts.0104")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("GET", "", None), ("DELETE", "", None), ("POST", "/action", {"action": "stop"})],
)
def test_missing_devenviron_instance_answers_400_modelarts_6309(
    fake: FakeModelArts, session: requests.Session, method: str, suffix: str, body: Any
) -> None:
    response = session.request(method, f"{instances(fake)}/{uuid.uuid4()}{suffix}", json=body)

    assert error_of(response) == (400, "ModelArts.6309")
    assert response.json()["error_msg"] == "The instance does not exist."


def test_devenviron_errors_can_use_the_old_error_message_spelling(
    session: requests.Session,
) -> None:
    with local_endpoint(legacy_error_message=True) as fake:
        response = session.get(f"{instances(fake)}/{uuid.uuid4()}")
        notebook_response = session.get(f"{notebooks(fake)}/{uuid.uuid4()}")

    assert response.json() == {
        "error_code": "ModelArts.6309",
        "error_message": "The instance does not exist.",
    }
    assert "error_msg" in notebook_response.json()


def test_each_generation_sees_only_its_own_instances(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT)
    iid = fake.add_instance(PROJECT, api=DEVENVIRON)

    assert error_of(session.get(f"{instances(fake)}/{nid}")) == (400, "ModelArts.6309")
    assert error_of(session.get(f"{notebooks(fake)}/{iid}")) == (404, "ModelArts.6404")
    assert fake.instance_ids(PROJECT) == {(PROJECT, nid), (PROJECT, iid)}


def test_instances_belong_to_their_project(fake: FakeModelArts, session: requests.Session) -> None:
    nid = fake.add_instance(OTHER_PROJECT)

    assert error_of(session.delete(f"{notebooks(fake)}/{nid}")) == (404, "ModelArts.6404")
    assert fake.instance_ids(PROJECT) == set()
    assert fake.instance_ids(OTHER_PROJECT) == {(OTHER_PROJECT, nid)}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", f"/v2/{PROJECT}/notebooks"),
        ("PUT", f"/v1/{PROJECT}/notebooks/abc"),
        ("POST", f"/v1/{PROJECT}/notebooks/abc/reboot"),
        ("DELETE", f"/v1/{PROJECT}/demanager/instances"),
    ],
)
def test_unknown_route_answers_404_apigw_0101(
    fake: FakeModelArts, session: requests.Session, method: str, path: str
) -> None:
    response = session.request(method, fake.url + path)

    assert error_of(response) == (404, "APIGW.0101")
    assert response.json()["request_id"] == response.headers["X-Request-Id"]


# -- listing ---------------------------------------------------------------------------------


def test_notebook_list_pages_by_record_offset_newest_first(
    fake: FakeModelArts, session: requests.Session
) -> None:
    created = {
        fake.add_instance(PROJECT, created_ms=1_000_000 + n): 1_000_000 + n for n in range(25)
    }
    newest_first = sorted(created, key=created.__getitem__, reverse=True)

    pages = [
        session.get(notebooks(fake), params={"limit": 10, "offset": o}).json() for o in (0, 10, 20)
    ]

    assert [p["current"] for p in pages] == [0, 1, 2]
    assert {(p["pages"], p["size"], p["total"]) for p in pages} == {(3, 10, 25)}
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    assert [nb["id"] for p in pages for nb in p["data"]] == newest_first


WS_A, WS_B = "a" * 32, "b" * 32
ALICE = User("a1" * 16, "alice")
BOB = User("b0" * 16, "bob")


def ids_of(page: dict[str, Any]) -> set[str]:
    return {nb["id"] for nb in page["data"]}


def test_notebook_list_without_a_workspace_lists_the_default_workspace_only(
    fake: FakeModelArts, session: requests.Session
) -> None:
    default = fake.add_instance(PROJECT)
    elsewhere = fake.add_instance(PROJECT, workspace_id=WS_A)

    plain = session.get(notebooks(fake), params={"limit": 50}).json()
    asked = session.get(notebooks(fake), params={"limit": 50, "workspace_id": WS_A}).json()
    # The spelling some copies of the docs use is not the SDK's: it does not select anything.
    other_spelling = session.get(notebooks(fake), params={"limit": 50, "workspaceId": WS_A}).json()

    assert ids_of(plain) == {default}
    assert ids_of(asked) == {elsewhere}
    assert ids_of(other_spelling) == {default}


def test_notebook_list_answers_only_the_callers_notebooks_and_list_all_everyones(
    fake: FakeModelArts, session: requests.Session
) -> None:
    mine = fake.add_instance(PROJECT)
    alices = fake.add_instance(PROJECT, owner=ALICE)
    bobs = fake.add_instance(PROJECT, owner=BOB)

    own = session.get(notebooks(fake), params={"limit": 50}).json()
    every = session.get(f"{notebooks(fake)}/all", params={"limit": 50}).json()
    bobs_workspace = fake.add_instance(PROJECT, owner=BOB, workspace_id=WS_B)
    in_b = session.get(f"{notebooks(fake)}/all", params={"limit": 50, "workspace_id": WS_B}).json()

    assert ids_of(own) == {mine}
    assert ids_of(every) == {mine, alices, bobs}
    assert ids_of(in_b) == {bobs_workspace}


def test_listed_notebooks_carry_owner_workspace_pool_and_tags_as_the_sdk_model_has_them(
    fake: FakeModelArts, session: requests.Session
) -> None:
    pooled = fake.add_instance(
        PROJECT,
        owner=ALICE,
        workspace_id=WS_A,
        pool=("pool-1a2b", "dedicated-v100"),
        tags={"team": "vision", "modelarts-cleanup:keep": ""},
    )
    public = fake.add_instance(PROJECT, owner=ALICE, workspace_id=WS_A)

    page = session.get(f"{notebooks(fake)}/all", params={"limit": 50, "workspace_id": WS_A}).json()
    by_id = {nb["id"]: nb for nb in page["data"]}

    assert by_id[pooled]["user"]["id"] == by_id[pooled]["user_id"] == ALICE.id
    assert by_id[pooled]["user"]["name"] == "alice"
    assert by_id[pooled]["workspace_id"] == WS_A
    assert by_id[pooled]["pool"] == {"id": "pool-1a2b", "name": "dedicated-v100"}
    assert by_id[pooled]["tags"] == [
        {"key": "team", "value": "vision"},
        {"key": "modelarts-cleanup:keep", "value": ""},
    ]
    assert "pool" not in by_id[public]  # the public pool: no pool object at all
    assert by_id[public]["tags"] == []


def test_workspace_list_pages_by_page_index_and_includes_the_default(
    fake: FakeModelArts, session: requests.Session
) -> None:
    added = [fake.add_workspace(PROJECT, f"{n:032x}") for n in range(1, 6)]

    everything = session.get(f"{fake.url}/v1/{PROJECT}/workspaces").json()
    pages = [
        session.get(f"{fake.url}/v1/{PROJECT}/workspaces", params={"limit": 2, "offset": n}).json()
        for n in range(4)
    ]

    assert everything["total_count"] == everything["count"] == 6
    assert [w["id"] for w in everything["workspaces"]] == ["0", *added]
    assert everything["workspaces"][0]["name"] == "default"
    assert [p["count"] for p in pages] == [2, 2, 2, 0]
    assert {p["total_count"] for p in pages} == {6}
    assert [w["id"] for p in pages for w in p["workspaces"]] == ["0", *added]


@pytest.mark.parametrize("limit", ["0", "1001", "x"])
def test_workspace_list_refuses_a_page_size_outside_its_range(
    fake: FakeModelArts, session: requests.Session, limit: str
) -> None:
    response = session.get(f"{fake.url}/v1/{PROJECT}/workspaces", params={"limit": limit})
    assert error_of(response) == (400, "ModelArts.0104")


def test_an_instance_in_a_new_workspace_makes_that_workspace_exist(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_instance(PROJECT, workspace_id=WS_B)
    listed = session.get(f"{fake.url}/v1/{PROJECT}/workspaces").json()
    assert [w["id"] for w in listed["workspaces"]] == ["0", WS_B]
    other_project = session.get(f"{fake.url}/v1/{'f' * 32}/workspaces").json()
    assert [w["id"] for w in other_project["workspaces"]] == ["0"]


def test_devenviron_list_shows_the_callers_own_in_the_default_workspace_unless_asked(
    fake: FakeModelArts, session: requests.Session
) -> None:
    mine = fake.add_instance(PROJECT, "DE-" + str(uuid.uuid4()), api=DEVENVIRON)
    theirs = fake.add_instance(PROJECT, "DE-" + str(uuid.uuid4()), api=DEVENVIRON, owner=BOB)
    far = fake.add_instance(
        PROJECT, "DE-" + str(uuid.uuid4()), api=DEVENVIRON, owner=BOB, workspace_id=WS_A
    )

    def listed(**params: str) -> set[str]:
        answer = session.get(instances(fake), params={"de_type": "Notebook", **params}).json()
        return {i["id"] for i in answer["instances"]}

    assert listed() == {mine}
    assert listed(show_self="false") == {mine, theirs}
    assert listed(show_self="false", workspace_id=WS_A) == {far}


def test_a_fault_can_be_aimed_at_one_kind_of_request_or_one_workspace(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("status", status=500, times=None), action="workspace_list")
    fake.add_fault(Fault("status", status=502, times=None), workspace_id=WS_A)

    assert session.get(f"{fake.url}/v1/{PROJECT}/workspaces").status_code == 500
    assert session.get(f"{notebooks(fake)}/all", params={"workspace_id": WS_A}).status_code == 502
    assert session.get(f"{notebooks(fake)}/all", params={"workspace_id": WS_B}).status_code == 200
    assert session.get(f"{notebooks(fake)}/all").status_code == 200


def tag_url(fake: FakeModelArts, instance_id: str, action: str) -> str:
    return f"{notebooks(fake)}/{instance_id}/tags/{action}"


def test_tags_are_created_overwritten_and_deleted_in_the_notebooks_workspace(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, workspace_id=WS_A, tags={"team": "ml"})
    where = {"workspace_id": WS_A}

    created = session.post(
        tag_url(fake, nid, "create"),
        params=where,
        json={"tags": [{"key": "team", "value": "cv"}, {"key": "stage", "value": "dev"}]},
    )
    after_create = fake.instance(PROJECT, nid)
    deleted = session.delete(
        tag_url(fake, nid, "delete"),
        params=where,
        json={"tags": [{"key": "stage"}, {"key": "never-there"}]},
    )
    after_delete = fake.instance(PROJECT, nid)

    assert (created.status_code, created.content) == (204, b"")
    assert after_create is not None and after_create["tags"] == [
        {"key": "team", "value": "cv"},
        {"key": "stage", "value": "dev"},
    ]
    assert deleted.status_code == 204  # a missing tag is no error
    assert after_delete is not None and after_delete["tags"] == [{"key": "team", "value": "cv"}]


def test_a_tag_call_outside_the_notebooks_workspace_does_not_find_it(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, workspace_id=WS_A)
    body = {"tags": [{"key": "k", "value": "v"}]}

    default = session.post(tag_url(fake, nid, "create"), json=body)
    other = session.post(tag_url(fake, nid, "create"), params={"workspace_id": WS_B}, json=body)

    assert error_of(default) == (404, "ModelArts.6404")
    assert error_of(other) == (404, "ModelArts.6404")
    instance = fake.instance(PROJECT, nid)
    assert instance is not None and instance["tags"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"tags": []},
        {"tags": [{"key": "_sys_x", "value": "v"}]},
        {"tags": [{"key": "k"}]},  # creating needs a value
        {"tags": [{"key": "k", "value": "v", "extra": 1}]},
        {"labels": []},
        "not json",
    ],
)
def test_a_tag_request_outside_the_tms_rules_is_a_parameter_error(
    fake: FakeModelArts, session: requests.Session, body: Any
) -> None:
    nid = fake.add_instance(PROJECT)
    response = session.post(
        tag_url(fake, nid, "create"),
        data=body if isinstance(body, str) else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert error_of(response) == (400, "ModelArts.0104")


def test_a_notebook_carries_at_most_twenty_tags(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, tags={f"k{n}": "v" for n in range(20)})
    response = session.post(
        tag_url(fake, nid, "create"), json={"tags": [{"key": "x", "value": "y"}]}
    )
    assert error_of(response) == (400, "ModelArts.0104")


def test_notebook_list_default_page_is_ten(fake: FakeModelArts, session: requests.Session) -> None:
    for _ in range(12):
        fake.add_instance(PROJECT)

    page = session.get(notebooks(fake)).json()

    assert (len(page["data"]), page["size"], page["pages"], page["total"]) == (10, 10, 2, 12)


@pytest.mark.parametrize("limit", ["5", "15", "100", "0", "-10", "ten", ""])
def test_notebook_list_rejects_page_sizes_the_api_does_not_allow(
    fake: FakeModelArts, session: requests.Session, limit: str
) -> None:
    response = session.get(notebooks(fake), params={"limit": limit})

    assert error_of(response) == (400, "ModelArts.0104")


@pytest.mark.parametrize("query", [{"offset": "-1"}, {"offset": "x"}, {"sort_dir": "UP"}])
def test_notebook_list_rejects_bad_offset_and_direction(
    fake: FakeModelArts, session: requests.Session, query: dict[str, str]
) -> None:
    assert error_of(session.get(notebooks(fake), params=query)) == (400, "ModelArts.0104")


def test_notebook_list_shows_billed_instances_unless_free_ones_are_asked_for(
    fake: FakeModelArts, session: requests.Session
) -> None:
    billed = fake.add_instance(PROJECT)
    free = fake.add_instance(PROJECT, feature="DEFAULT", flavor="modelarts.vm.cpu.free")

    default = session.get(notebooks(fake)).json()
    codelab = session.get(notebooks(fake), params={"feature": "DEFAULT"}).json()

    assert [nb["id"] for nb in default["data"]] == [billed]
    assert [nb["id"] for nb in codelab["data"]] == [free]


def test_notebook_list_filters_by_status_and_fuzzy_name(
    fake: FakeModelArts, session: requests.Session
) -> None:
    wanted = fake.add_instance(PROJECT, name="Train-Box-7", status="RUNNING")
    fake.add_instance(PROJECT, name="train-box-8", status="STOPPED")
    fake.add_instance(PROJECT, name="other", status="RUNNING")

    page = session.get(notebooks(fake), params={"status": "RUNNING", "name": "box"}).json()

    assert ([nb["id"] for nb in page["data"]], page["total"]) == ([wanted], 1)


def test_notebook_list_sorts_by_the_requested_key_and_direction(
    fake: FakeModelArts, session: requests.Session
) -> None:
    for name in ("b", "c", "a"):
        fake.add_instance(PROJECT, name=name)

    page = session.get(notebooks(fake), params={"sort_key": "name", "sort_dir": "ASC"}).json()

    assert [nb["name"] for nb in page["data"]] == ["a", "b", "c"]


def test_notebook_list_rejects_an_unsortable_field(
    fake: FakeModelArts, session: requests.Session
) -> None:
    response = session.get(notebooks(fake), params={"sort_key": "name,lease"})

    assert error_of(response) == (400, "ModelArts.6303")


def test_empty_notebook_list_has_no_pages(fake: FakeModelArts, session: requests.Session) -> None:
    assert session.get(notebooks(fake), params={"limit": 50}).json() == {
        "current": 0,
        "data": [],
        "pages": 0,
        "size": 50,
        "total": 0,
    }


@pytest.mark.parametrize(
    "query", [{}, {"de_type": "notebook"}, {"de_type": "Notebook", "limit": "-1"}]
)
def test_devenviron_list_needs_de_type_notebook_exactly(
    fake: FakeModelArts, session: requests.Session, query: dict[str, str]
) -> None:
    assert error_of(session.get(instances(fake), params=query)) == (400, "ModelArts.0104")


def test_devenviron_list_limit_zero_means_all_and_offset_skips_records(
    fake: FakeModelArts, session: requests.Session
) -> None:
    ids = [fake.add_instance(PROJECT, api=DEVENVIRON, name=f"nb-{n:02d}") for n in range(15)]
    fake.add_instance(PROJECT)  # a notebook-API instance is not listed here

    everything = session.get(instances(fake), params={"de_type": "Notebook"}).json()
    window = session.get(
        instances(fake), params={"de_type": "Notebook", "offset": "3", "limit": "4"}
    ).json()

    assert everything["total_count"] == 15
    assert [i["id"] for i in everything["instances"]] == ids
    assert window["total_count"] == 15
    assert [i["id"] for i in window["instances"]] == ids[3:7]


def test_devenviron_list_sorts_by_creation_time_descending(
    fake: FakeModelArts, session: requests.Session
) -> None:
    old = fake.add_instance(PROJECT, api=DEVENVIRON, created_ms=900, name="z")
    new = fake.add_instance(PROJECT, api=DEVENVIRON, created_ms=10_000, name="a")
    query = {"de_type": "Notebook", "sortby": "creation_timestamp", "order": "desc"}

    listed = session.get(instances(fake), params=query).json()["instances"]

    assert [i["id"] for i in listed] == [new, old]


# -- faults ----------------------------------------------------------------------------------


def test_status_fault_answers_its_error_once_then_the_normal_answer(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT)
    fake.add_fault(Fault("status", status=503, error_code="ModelArts.6102", retry_after="7"))

    first = session.delete(f"{notebooks(fake)}/{nid}")
    second = session.delete(f"{notebooks(fake)}/{nid}")

    assert error_of(first) == (503, "ModelArts.6102")
    assert first.headers["Retry-After"] == "7"
    assert fake.instance_ids() == set()  # the fault left the instance alone; the retry deleted it
    assert second.status_code == 200


def test_status_fault_without_a_code_uses_the_usual_one_for_its_status(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("status", status=429, times=None))

    response = session.get(notebooks(fake))

    assert error_of(response) == (429, "ModelArts.6101")
    assert "Retry-After" not in response.headers


def test_fault_armed_forever_never_runs_out(fake: FakeModelArts, session: requests.Session) -> None:
    fake.add_fault(Fault("status", status=500, times=None))

    statuses = [session.get(notebooks(fake)).status_code for _ in range(5)]

    assert statuses == [500] * 5


def test_fault_armed_for_n_requests_hits_exactly_n(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("status", status=502, times=2))

    statuses = [session.get(notebooks(fake)).status_code for _ in range(3)]

    assert statuses == [502, 502, 200]


def test_instance_fault_hits_only_that_instance(
    fake: FakeModelArts, session: requests.Session
) -> None:
    flaky, fine = fake.add_instance(PROJECT), fake.add_instance(PROJECT)
    fake.add_fault(Fault("status", status=500, times=None), instance_id=flaky)

    assert session.get(f"{notebooks(fake)}/{fine}").status_code == 200
    assert session.get(notebooks(fake)).status_code == 200
    assert session.get(f"{notebooks(fake)}/{flaky}").status_code == 500


def test_fault_limited_to_a_method_spares_the_others(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT)
    fake.add_fault(Fault("status", status=500, method="DELETE"))

    assert session.get(f"{notebooks(fake)}/{nid}").status_code == 200
    assert session.delete(f"{notebooks(fake)}/{nid}").status_code == 500
    assert session.delete(f"{notebooks(fake)}/{nid}").status_code == 200


def test_reset_fault_drops_the_connection_unanswered(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT)
    fake.add_fault(Fault("reset"), instance_id=nid)

    with pytest.raises(requests.ConnectionError):
        session.delete(f"{notebooks(fake)}/{nid}")

    assert [(r.method, r.status, r.instance_id) for r in fake.requests] == [("DELETE", None, nid)]
    assert fake.instance_ids() == {(PROJECT, nid)}
    assert session.delete(f"{notebooks(fake)}/{nid}").status_code == 200


def test_slow_fault_outlasts_a_client_read_timeout(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("slow", delay=0.5))

    with pytest.raises(requests.ReadTimeout):
        session.get(notebooks(fake), timeout=(1, 0.1))


def test_slow_fault_sleeps_its_delay_then_answers_normally(session: requests.Session) -> None:
    time_ = FakeTime()
    with local_endpoint(sleep=time_.sleep) as fake:
        nid = fake.add_instance(PROJECT)
        fake.add_fault(Fault("slow", delay=42.0))

        response = session.delete(f"{notebooks(fake)}/{nid}")

    assert time_.sleeps == [42.0]
    assert (response.status_code, response.json()["status"]) == (200, "DELETING")


def test_malformed_fault_sends_a_non_json_body_labelled_json(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("malformed", status=500))

    response = session.get(notebooks(fake))

    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(response.content)


def test_stall_fault_carries_the_request_out_and_holds_the_body_back(
    session: requests.Session,
) -> None:
    gate = threading.Event()
    with local_endpoint(sleep=gate.wait) as fake:
        nid = fake.add_instance(PROJECT)
        fake.add_fault(Fault("stall", delay=30.0), instance_id=nid)

        response = session.delete(f"{notebooks(fake)}/{nid}", stream=True, timeout=(1, 0.2))

        # The headers are here and the delete is done; the body is not coming in time.
        assert response.status_code == 200
        assert fake.instance_ids() == set()
        assert [(r.method, r.status) for r in fake.requests] == [("DELETE", 200)]
        with pytest.raises(requests.ConnectionError, match="timed out"):
            _ = response.content
        gate.set()


def on_fake_time(fault: Fault, method: str) -> tuple[requests.Response, FakeTime, str]:
    """One request about a new instance, to an endpoint that waits on a fake clock."""
    time_ = FakeTime()
    with local_endpoint(sleep=time_.sleep) as fake, requests.Session() as session:
        session.auth = SdkHmacSha256Auth(AK, SK)
        nid = fake.add_instance(PROJECT)
        fake.add_fault(fault)
        response = session.request(method, f"{notebooks(fake)}/{nid}")
    return response, time_, nid


def test_stall_fault_sends_the_whole_body_after_its_delay() -> None:
    response, time_, _ = on_fake_time(Fault("stall", delay=7.0), "DELETE")

    assert time_.sleeps == [7.0]
    assert (response.status_code, response.json()["status"]) == (200, "DELETING")


def test_slow_body_fault_sends_the_body_a_byte_at_a_time_over_its_delay() -> None:
    response, time_, nid = on_fake_time(Fault("slow_body", delay=2.0), "GET")

    assert response.json()["id"] == nid
    assert len(time_.sleeps) == len(response.content)
    assert sum(time_.sleeps) == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["slow_body", "stall"])
def test_held_back_bodies_have_no_answer_of_their_own_to_replace(kind: str) -> None:
    with pytest.raises(ValueError, match="no answer of its own"):
        Fault(kind, carried_out=True)  # type: ignore[arg-type]


def test_waiting_until_idle_waits_for_requests_still_in_hand(session: requests.Session) -> None:
    gate = threading.Event()
    with local_endpoint(latency=30.0, sleep=gate.wait) as fake:
        nid = fake.add_instance(PROJECT)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(session.delete, f"{notebooks(fake)}/{nid}", timeout=10)
            wait_for(lambda: not fake.wait_until_idle(timeout=0))
            assert fake.wait_until_idle(timeout=0.05) is False
            assert fake.instance_ids() == {(PROJECT, nid)}  # still held, not yet carried out

            gate.set()

            assert fake.wait_until_idle(timeout=10) is True
            assert fake.instance_ids() == set()
            assert pending.result().status_code == 200


@pytest.mark.parametrize("status", [200, 204, 503])
def test_empty_fault_sends_an_empty_body(
    fake: FakeModelArts, session: requests.Session, status: int
) -> None:
    fake.add_fault(Fault("empty", status=status))

    response = session.get(notebooks(fake))

    assert (response.status_code, response.content) == (status, b"")
    assert response.headers["Content-Length"] == "0"


def test_html_fault_sends_a_gateway_error_page(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("html", status=502, retry_after="3"))

    response = session.get(notebooks(fake))

    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert response.headers["Retry-After"] == "3"
    assert "<title>502 Bad Gateway</title>" in response.text


def test_latency_is_applied_to_every_request(session: requests.Session) -> None:
    time_ = FakeTime()
    with local_endpoint(latency=0.25, sleep=time_.sleep) as fake:
        session.get(notebooks(fake))
        session.get(f"{fake.url}/nowhere")

    assert time_.sleeps == [0.25, 0.25]


def test_rate_limit_answers_429_with_retry_after_until_the_bucket_refills(
    session: requests.Session,
) -> None:
    clock = FakeTime()
    with local_endpoint(clock=clock, rate_limit=2.0) as fake:
        burst = [session.get(notebooks(fake)) for _ in range(3)]
        clock.advance(0.5)
        after_refill = session.get(notebooks(fake))

    assert [r.status_code for r in burst] == [200, 200, 429]
    assert burst[2].json()["error_code"] == "ModelArts.6101"
    assert burst[2].headers["Retry-After"] == "1"
    assert after_refill.status_code == 200


def test_rate_limit_can_be_switched_on_after_start(
    fake: FakeModelArts, session: requests.Session
) -> None:
    assert session.get(notebooks(fake)).status_code == 200
    fake.rate_limit = 0.001

    statuses = [session.get(notebooks(fake)).status_code for _ in range(2)]

    assert statuses == [200, 429]


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 99},
        {"kind": "status", "times": 0},
        {"kind": "slow", "delay": -1.0},
    ],
)
def test_fault_refuses_settings_that_make_no_sense(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fault"):
        Fault(**arguments)


# -- authentication --------------------------------------------------------------------------


def test_request_without_credentials_is_rejected_as_apigw_0301(fake: FakeModelArts) -> None:
    response = requests.get(notebooks(fake), timeout=5)

    assert error_of(response) == (401, "APIGW.0301")
    assert uuid.UUID(response.headers["X-Request-Id"])


@pytest.mark.parametrize(("ak", "sk"), [(AK, "wrong-sk"), ("other-ak", SK)])
def test_signature_by_another_key_pair_is_rejected(fake: FakeModelArts, ak: str, sk: str) -> None:
    response = requests.get(notebooks(fake), auth=SdkHmacSha256Auth(ak, sk), timeout=5)

    assert error_of(response) == (401, "APIGW.0301")


def test_signature_older_than_fifteen_minutes_is_rejected(fake: FakeModelArts) -> None:
    def stale() -> datetime:
        return datetime.now(timezone.utc) - timedelta(minutes=16)

    auth = SdkHmacSha256Auth(AK, SK, clock=stale)

    response = requests.get(notebooks(fake), auth=auth, timeout=5)

    assert error_of(response) == (401, "APIGW.0301")
    assert "15 minutes" in response.json()["error_msg"]


def test_valid_iam_token_is_accepted_without_a_signature(fake: FakeModelArts) -> None:
    response = requests.get(notebooks(fake), headers={"X-Auth-Token": "fake-iam-token"}, timeout=5)

    assert response.status_code == 200


@pytest.mark.parametrize(("code", "expected"), [(None, "APIGW.0307"), ("ModelArts.0203", None)])
def test_unknown_iam_token_is_rejected_with_the_configured_code(
    code: str | None, expected: str | None
) -> None:
    fake = FakeModelArts() if code is None else FakeModelArts(token_error_code=code)
    with fake:
        response = requests.get(notebooks(fake), headers={"X-Auth-Token": "stolen"}, timeout=5)

    assert error_of(response) == (401, expected or code)


@pytest.mark.parametrize(
    ("sent", "status"), [(None, 401), ("wrong-token", 401), ("sts-token", 200)]
)
def test_security_token_must_match_when_one_is_configured(sent: str | None, status: int) -> None:
    with local_endpoint(security_token="sts-token") as fake:
        response = requests.get(notebooks(fake), auth=SdkHmacSha256Auth(AK, SK, sent), timeout=5)

    assert response.status_code == status


def test_project_header_naming_another_project_is_forbidden(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT)

    response = session.delete(f"{notebooks(fake)}/{nid}", headers={"X-Project-Id": OTHER_PROJECT})

    assert error_of(response) == (403, "ModelArts.0210")
    assert fake.instance_ids() == {(PROJECT, nid)}
    matching = session.delete(f"{notebooks(fake)}/{nid}", headers={"X-Project-Id": PROJECT})
    assert matching.status_code == 200


# -- stop before delete ----------------------------------------------------------------------


def test_notebook_must_be_stopped_before_delete_when_the_service_insists(
    session: requests.Session,
) -> None:
    clock = FakeTime()
    with local_endpoint(stop_before_delete=True, stop_seconds=30, clock=clock) as fake:
        nid = fake.add_instance(PROJECT, status="RUNNING")
        url = f"{notebooks(fake)}/{nid}"

        refused = session.delete(url)
        stop = session.post(f"{url}/stop")
        stop_again = session.post(f"{url}/stop")
        while_stopping = session.delete(url)
        clock.advance(30)
        shown = session.get(url).json()
        deleted = session.delete(url)
        gone = session.get(url)

    assert error_of(refused) == (400, "ModelArts.6304")
    assert refused.json()["error_msg"] == "Please stop the instance before deleting."
    assert stop.json()["status"] == "STOPPING"
    assert error_of(stop_again) == (400, "ModelArts.6308")
    assert error_of(while_stopping) == (400, "ModelArts.6304")
    assert shown["status"] == "STOPPED"
    assert (deleted.status_code, deleted.json()["status"]) == (200, "DELETING")
    assert error_of(gone) == (404, "ModelArts.6404")


def test_devenviron_instance_must_be_stopped_before_delete_when_the_service_insists(
    session: requests.Session,
) -> None:
    clock = FakeTime()
    with local_endpoint(stop_before_delete=True, stop_seconds=5, clock=clock) as fake:
        iid = fake.add_instance(PROJECT, api=DEVENVIRON, status="STARTING")
        url = f"{instances(fake)}/{iid}"

        refused = session.delete(url)
        clock.advance(5)  # finishes starting
        stop = session.post(f"{url}/action", json={"action": "stop"})
        clock.advance(5)
        stopped_twice = session.post(f"{url}/action", json={"action": "stop"})
        deleted = session.delete(url)

    assert error_of(refused) == (400, "ModelArts.6304")
    assert stop.json() == {"current_status": "STOPPING", "previous_state": "RUNNING"}
    assert error_of(stopped_twice) == (400, "ModelArts.6307")
    assert deleted.json() == {"instance_id": iid}


def test_running_instance_is_deleted_outright_unless_a_stop_is_required(
    fake: FakeModelArts, session: requests.Session
) -> None:
    nid = fake.add_instance(PROJECT, status="RUNNING")

    assert session.delete(f"{notebooks(fake)}/{nid}").status_code == 200


def test_instance_seeded_as_stopping_stops_after_stop_seconds() -> None:
    clock = FakeTime()
    with local_endpoint(stop_seconds=3, clock=clock) as fake:
        nid = fake.add_instance(PROJECT, status="STOPPING")
        before = (fake.instance(PROJECT, nid) or {})["status"]
        clock.advance(3)
        after = (fake.instance(PROJECT, nid) or {})["status"]

    assert (before, after) == ("STOPPING", "STOPPED")


# -- recording -------------------------------------------------------------------------------


def test_every_request_is_recorded_with_what_the_endpoint_saw(
    fake: FakeModelArts, session: requests.Session
) -> None:
    iid = fake.add_instance(PROJECT, api=DEVENVIRON, status="RUNNING")

    session.get(instances(fake), params={"de_type": "Notebook"})
    session.post(f"{instances(fake)}/{iid}/action", json={"action": "stop"})
    session.get(f"{fake.url}/nowhere")

    recorded = fake.requests
    assert [(r.method, r.path, r.status, r.instance_id) for r in recorded] == [
        ("GET", f"/v1/{PROJECT}/demanager/instances", 200, None),
        ("POST", f"/v1/{PROJECT}/demanager/instances/{iid}/action", 200, iid),
        ("GET", "/nowhere", 404, None),
    ]
    assert recorded[0].query == "de_type=Notebook"
    assert json.loads(recorded[1].body) == {"action": "stop"}
    assert recorded[1].headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK},")


def test_secret_headers_are_redacted_in_the_record() -> None:
    with local_endpoint(security_token="sts-secret-value") as fake:
        requests.get(notebooks(fake), headers={"X-Auth-Token": "fake-iam-token"}, timeout=5)
        requests.get(notebooks(fake), auth=SdkHmacSha256Auth(AK, SK, "sts-secret-value"), timeout=5)
        recorded = fake.requests

    assert recorded[0].headers["X-Auth-Token"] == "***"
    assert recorded[1].headers["X-Security-Token"] == "***"
    assert "fake-iam-token" not in repr(recorded)
    assert "sts-secret-value" not in repr(recorded)


def test_clear_requests_forgets_what_was_recorded(
    fake: FakeModelArts, session: requests.Session
) -> None:
    session.get(notebooks(fake))
    fake.clear_requests()
    session.get(notebooks(fake))

    assert len(fake.requests) == 1


def test_every_answer_carries_its_own_request_id(
    fake: FakeModelArts, session: requests.Session
) -> None:
    fake.add_fault(Fault("html"))
    responses = [
        session.get(notebooks(fake)),  # the fault
        session.get(notebooks(fake)),
        session.get(f"{fake.url}/nowhere"),
        requests.get(notebooks(fake), timeout=5),  # unauthenticated
    ]

    ids = [r.headers["X-Request-Id"] for r in responses]
    assert all(uuid.UUID(i) for i in ids)
    assert len(set(ids)) == len(ids)


# -- concurrency and lifecycle ---------------------------------------------------------------


def test_concurrent_deletes_are_all_served_and_recorded(fake: FakeModelArts) -> None:
    ids = [fake.add_instance(PROJECT, status="STOPPED") for _ in range(32)]

    def delete(nid: str) -> int:
        with requests.Session() as s:
            s.auth = SdkHmacSha256Auth(AK, SK)
            return s.delete(f"{notebooks(fake)}/{nid}", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(delete, ids))

    assert statuses == [200] * 32
    assert fake.instance_ids() == set()
    assert sorted(r.instance_id or "" for r in fake.requests) == sorted(ids)


def test_answers_are_http_1_1_with_content_length(
    fake: FakeModelArts, session: requests.Session
) -> None:
    response = session.get(notebooks(fake))

    assert response.raw.version == 11
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_stop_closes_open_keep_alive_connections(session: requests.Session) -> None:
    fake = local_endpoint().start()
    url = notebooks(fake)
    assert session.get(url).status_code == 200

    fake.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=5)


def test_url_is_only_known_once_started() -> None:
    fake = FakeModelArts()

    with pytest.raises(RuntimeError, match="start"):
        _ = fake.url


def test_add_instance_refuses_duplicates_and_unknown_generations(fake: FakeModelArts) -> None:
    nid = fake.add_instance(PROJECT)

    with pytest.raises(ValueError, match="already exists"):
        fake.add_instance(PROJECT, nid)
    with pytest.raises(ValueError, match="api must be"):
        fake.add_instance(PROJECT, api="v3")


def test_add_instance_extra_fields_override_the_body(fake: FakeModelArts) -> None:
    nid = fake.add_instance(PROJECT, billing_items=["STORAGE"], flavor="modelarts.vm.gpu.t4")

    body = fake.instance(PROJECT, nid)

    assert body is not None
    assert (body["billing_items"], body["flavor"]) == (["STORAGE"], "modelarts.vm.gpu.t4")


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_limit_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        FakeModelArts(rate_limit=rate)


def test_a_seeded_fleet_is_varied_realistic_and_reproducible() -> None:
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    with (
        FakeModelArts(wall_clock=lambda: now) as first,
        FakeModelArts(wall_clock=lambda: now) as second,
    ):
        fleet = first.seed_fleet(PROJECT, 200, seed=3)
        assert [i["id"] for i in second.seed_fleet(PROJECT, 200, seed=3)] == [
            i["id"] for i in fleet
        ]
        old = first.seed_fleet(PROJECT, 5, api="devenviron", seed=4)
    now_ms = int(now.timestamp() * 1000)
    assert len({i["id"] for i in fleet}) == 200
    assert {"STOPPED", "RUNNING", "ERROR"} <= {i["status"] for i in fleet}
    assert {i["name"].split("0")[0] for i in fleet} == {"tmp-", "tmp-keep-", "course-", "prod-"}
    assert all(
        now_ms - 90 * 86_400_000 <= i["lease"]["create_at"] <= i["lease"]["update_at"] <= now_ms
        for i in fleet
    )
    assert 0 < sum(i["feature"] == "DEFAULT" for i in fleet) < 60
    assert all(i["id"].startswith("DE-") and isinstance(i["creation_timestamp"], str) for i in old)


# -- IAM: what the caller's policies allow ------------------------------------------------------


def test_an_action_the_callers_policies_do_not_allow_answers_403_modelarts_0108(
    session: requests.Session,
) -> None:
    with local_endpoint(permissions={"modelarts:notebook:get"}) as fake:
        nid = fake.add_instance(PROJECT)
        shown = session.get(f"{notebooks(fake)}/{nid}")
        refused = session.delete(f"{notebooks(fake)}/{nid}")
        listed = session.get(notebooks(fake))

        assert shown.status_code == 200
        for answer in (refused, listed):
            assert answer.status_code == 403
            assert answer.json()["error_code"] == "ModelArts.0108"
        assert fake.instance(PROJECT, nid) is not None  # refused: nothing changed

        # Granting it takes effect for the next request.
        fake.permissions = {"modelarts:notebook:get", "modelarts:notebook:delete"}
        assert session.delete(f"{notebooks(fake)}/{nid}").status_code == 200


def test_every_route_needs_the_action_of_the_modelarts_permissions_reference(
    session: requests.Session,
) -> None:
    """A caller allowed nothing is refused everywhere, and the log tells which action each
    request needed."""
    with local_endpoint(permissions=()) as fake:
        nid = fake.add_instance(PROJECT)
        did = fake.add_instance(PROJECT, api=DEVENVIRON)
        base = f"{fake.url}/v1/{PROJECT}"
        calls = [
            ("GET", f"{base}/notebooks", "modelarts:notebook:list"),
            ("GET", f"{base}/notebooks/all", "modelarts:notebook:listAllNotebooks"),
            ("GET", f"{base}/workspaces", "modelarts:workspace:list"),
            ("GET", f"{base}/notebooks/{nid}", "modelarts:notebook:get"),
            ("DELETE", f"{base}/notebooks/{nid}", "modelarts:notebook:delete"),
            ("POST", f"{base}/notebooks/{nid}/stop", "modelarts:notebook:stop"),
            ("POST", f"{base}/notebooks/{nid}/start", "modelarts:notebook:start"),
            ("POST", f"{base}/notebooks/{nid}/tags/create", "modelarts:notebook:createTag"),
            ("DELETE", f"{base}/notebooks/{nid}/tags/delete", "modelarts:notebook:deleteTag"),
            ("GET", f"{base}/demanager/instances", "modelarts:notebook:list"),
            ("GET", f"{base}/demanager/instances/{did}", "modelarts:notebook:get"),
            ("DELETE", f"{base}/demanager/instances/{did}", "modelarts:notebook:delete"),
            ("POST", f"{base}/demanager/instances/{did}/action", "modelarts:notebook:action"),
        ]
        for method, url, _ in calls:
            answer = session.request(method, url, json={})
            assert answer.status_code == 403, (method, url)
        assert [r.iam_action for r in fake.requests] == [action for _, _, action in calls]
        assert fake.iam_actions() == {action for _, _, action in calls}


# What the service answers while a deletion lasts, fails, or a workspace goes away


def test_an_accepted_deletion_lasts_delete_seconds_and_a_second_delete_meets_it(
    session: requests.Session,
) -> None:
    clock = FakeTime()
    with local_endpoint(delete_seconds=10, clock=clock) as fake:
        nid = fake.add_instance(PROJECT)
        url = f"{notebooks(fake)}/{nid}"
        first = session.delete(url)
        again = session.delete(url)
        shown = session.get(url).json()
        listed = session.get(notebooks(fake), params={"limit": 50}).json()
        clock.advance(10)
        gone = session.get(url)
        listed_after = session.get(notebooks(fake), params={"limit": 50}).json()
    assert (first.status_code, first.json()["status"]) == (200, "DELETING")
    assert error_of(again) == (400, "ModelArts.6357")
    assert shown["status"] == "DELETING"
    assert [(n["id"], n["status"]) for n in listed["data"]] == [(nid, "DELETING")]
    assert error_of(gone) == (404, "ModelArts.6404")
    assert listed_after["total"] == 0


def test_a_deletion_that_fails_ends_delete_failed_and_stays(session: requests.Session) -> None:
    clock = FakeTime()
    with local_endpoint(delete_seconds=5, clock=clock) as fake:
        nid = fake.add_instance(PROJECT)
        fake.add_fault(Fault("failed_delete"), instance_id=nid)
        url = f"{notebooks(fake)}/{nid}"
        accepted = session.delete(url)
        during = session.get(url).json()["status"]
        clock.advance(5)
        after = session.get(url).json()["status"]
    assert (accepted.status_code, accepted.json()["status"]) == (200, "DELETING")
    assert (during, after) == ("DELETING", "DELETE_FAILED")


def test_a_workspace_being_deleted_is_listed_but_its_notebooks_are_not(
    session: requests.Session,
) -> None:
    workspace = "ab" * 16
    with local_endpoint() as fake:
        fake.add_workspace(PROJECT, workspace)
        fake.add_instance(PROJECT, workspace_id=workspace)
        fake.delete_workspace(PROJECT, workspace)
        spaces = session.get(f"{fake.url}/v1/{PROJECT}/workspaces").json()["workspaces"]
        listing = session.get(notebooks(fake), params={"workspace_id": workspace})
        old_listing = session.get(
            instances(fake), params={"de_type": "Notebook", "workspace_id": workspace}
        )
    assert {w["id"]: w["status"] for w in spaces} == {"0": "NORMAL", workspace: "DELETING"}
    assert error_of(listing) == (400, "ModelArts.0102")
    assert error_of(old_listing) == (400, "ModelArts.0102")


def test_the_old_api_shows_pool_and_user(session: requests.Session) -> None:
    alice = User("a11ce000a11ce000a11ce000a11ce000", "alice")
    with local_endpoint() as fake:
        dedicated = fake.add_instance(PROJECT, api=DEVENVIRON, owner=alice, pool=("p-1", "v100"))
        public = fake.add_instance(PROJECT, api=DEVENVIRON, owner=alice)
        shown = {i: session.get(f"{instances(fake)}/{i}").json() for i in (dedicated, public)}
    assert shown[dedicated]["pool"] == {
        "id": "p-1",
        "name": "v100",
        "type": "USER_DEFINED",
        "owner": {"project_id": PROJECT},
    }
    assert "pool" not in shown[public]
    assert shown[public]["user"] == {"id": alice.id, "name": "alice"}


def test_fields_shown_only_to_a_read_of_one_instance(session: requests.Session) -> None:
    with local_endpoint() as fake:
        nid = fake.add_instance(PROJECT, shown={"create_at": 1, "update_at": 2})
        one = session.get(f"{notebooks(fake)}/{nid}").json()
        (listed,) = session.get(notebooks(fake)).json()["data"]
    assert (one["create_at"], one["update_at"]) == (1, 2)
    assert "create_at" not in listed and "update_at" not in listed
    assert one["lease"] == listed["lease"]
