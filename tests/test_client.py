"""The client's calls in each API generation: paths, methods, headers, bodies, IDs."""

from __future__ import annotations

import json

import pytest
import responses

from modelarts_cleanup import __version__
from modelarts_cleanup.cloud.client import DeleteResult
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
    DE_INSTANCE,
    DEVENVIRON_URL,
    ENDPOINT,
    INSTANCE,
    NOTEBOOK_URL,
    PROJECT,
    SECRET,
    T0,
    error_body,
    mocked_client,
)
from tests.support import FakeTime

# -- delete --------------------------------------------------------------------------------


def test_notebook_delete_is_deleted_and_keeps_the_returned_status(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(
        NOTEBOOK_URL,
        json={"id": INSTANCE, "status": "DELETING", "name": "nb"},
        headers={"X-Request-Id": "req-1"},
    )
    result = mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    assert result == DeleteResult(
        outcome="deleted", http_status=200, request_id="req-1", attempts=1, status="DELETING"
    )
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []


def test_devenviron_delete_uses_the_demanager_path(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(DEVENVIRON_URL, json={"instance_id": DE_INSTANCE})
    result = mocked_client(fake_time, api=ApiGeneration.DEVENVIRON).delete_instance(
        PROJECT, DE_INSTANCE
    )
    assert result.outcome == "deleted"
    assert result.status is None
    assert mocked.calls[0].request.method == "DELETE"
    assert mocked.calls[0].request.url == DEVENVIRON_URL


def test_every_request_carries_project_id_and_no_content_type_without_a_body(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(NOTEBOOK_URL, json={})
    mocked_client(fake_time).delete_instance(PROJECT, INSTANCE)
    request = mocked.calls[0].request
    assert request.headers["X-Project-Id"] == PROJECT
    assert "Content-Type" not in request.headers
    assert request.headers["User-Agent"] == f"modelarts-cleanup/{__version__}"
    assert request.headers["X-Auth-Token"] == SECRET  # the session's auth ran
    assert request.req_kwargs["timeout"] == (5.0, 30.0)
    assert request.req_kwargs["verify"] not in (False, None)  # True or a CA bundle path


# -- read ----------------------------------------------------------------------------------


def test_get_instance_returns_the_instance(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(NOTEBOOK_URL, json={"id": INSTANCE, "status": "STOPPED"})
    assert mocked_client(fake_time).get_instance(PROJECT, INSTANCE) == {
        "id": INSTANCE,
        "status": "STOPPED",
    }
    assert mocked.calls[0].request.headers["X-Project-Id"] == PROJECT


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, error_body("ModelArts.6309")), (404, error_body("ModelArts.6404")), (404, "")],
)
def test_get_instance_returns_none_when_absent(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, body: str
) -> None:
    mocked.get(DEVENVIRON_URL, status=status, body=body)
    client = mocked_client(fake_time, api=ApiGeneration.DEVENVIRON)
    assert client.get_instance(PROJECT, DE_INSTANCE) is None


def test_get_instance_with_an_unusable_body_raises_malformed_response(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(NOTEBOOK_URL, body="{truncated", headers={"X-Request-Id": "req-m"})
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).get_instance(PROJECT, INSTANCE)
    assert caught.value.error_code == "MalformedResponse"
    assert caught.value.request_id == "req-m"


# -- one instance read as a listing reads it (the re-check before a selected deletion) -----


NB_ID = "11111111-2222-4333-8444-555555555555"


def test_one_notebook_is_read_like_a_listed_one(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = {
        "id": NB_ID,
        "name": "tmp-1",
        "status": "STOPPED",
        "lease": {"create_at": T0, "update_at": T0 + 1},
    }
    mocked.get(f"{ENDPOINT}/v1/{PROJECT}/notebooks/{NB_ID}", json=body)
    listed = mocked_client(fake_time).get_listed_instance(PROJECT, NB_ID)
    assert listed is not None
    assert (listed.name, listed.status, listed.created_ms, listed.updated_ms) == (
        "tmp-1",
        "STOPPED",
        T0,
        T0 + 1,
    )
    assert listed.billing == "postpaid"


def test_one_instance_gone_reads_as_none(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(
        f"{ENDPOINT}/v1/{PROJECT}/notebooks/{NB_ID}",
        status=404,
        json={"error_code": "ModelArts.6404", "error_msg": "gone"},
    )
    assert mocked_client(fake_time).get_listed_instance(PROJECT, NB_ID) is None


def test_an_answer_about_another_instance_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    other = "99999999-2222-4333-8444-555555555555"
    mocked.get(
        f"{ENDPOINT}/v1/{PROJECT}/notebooks/{NB_ID}", json={"id": other, "status": "STOPPED"}
    )
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).get_listed_instance(PROJECT, NB_ID)
    assert caught.value.error_code == "InconsistentListing"


# -- stop ----------------------------------------------------------------------------------


def test_notebook_stop_posts_to_stop_without_a_body(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", json={"status": "STOPPING"})
    mocked_client(fake_time).stop_instance(PROJECT, INSTANCE)
    request = mocked.calls[0].request
    assert not request.body
    assert "Content-Type" not in request.headers
    assert request.headers["X-Project-Id"] == PROJECT


def test_devenviron_stop_posts_the_stop_action(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{DEVENVIRON_URL}/action", json={})
    mocked_client(fake_time, api=ApiGeneration.DEVENVIRON).stop_instance(PROJECT, DE_INSTANCE)
    request = mocked.calls[0].request
    assert json.loads(request.body) == {"action": "stop"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Project-Id"] == PROJECT


def test_stopping_an_absent_instance_is_not_an_error(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", status=400, body=error_body("ModelArts.6404"))
    assert mocked_client(fake_time).stop_instance(PROJECT, INSTANCE) is None
    assert len(mocked.calls) == 1


def test_stop_refused_by_the_api_raises(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(f"{NOTEBOOK_URL}/stop", status=400, body=error_body("ModelArts.6357", "busy"))
    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).stop_instance(PROJECT, INSTANCE)
    assert caught.value.error_code == "ModelArts.6357"


# -- ID validation -------------------------------------------------------------------------


BAD_PROJECT_IDS = [
    "",
    "0123456789ABCDEF0123456789ABCDEF",
    PROJECT[:-1],
    PROJECT + "0",
    PROJECT + "\n",
    "../../../../../../../../v2/admin",
    PROJECT[:-1] + "/",
    PROJECT[:-1] + "%",
    "٠" * 32,  # Arabic-Indic digits are digits to \d, never to us
]


BAD_INSTANCE_IDS = [
    "",
    "..",
    INSTANCE + "/stop",
    INSTANCE + "?x=1",
    INSTANCE + "#",
    " " + INSTANCE,
    INSTANCE + "\n",
    "de-" + INSTANCE,
    INSTANCE.replace("-", ""),
    "%2e%2e",
    INSTANCE[:-1] + ".",
    # The payload accepts lower case only; the client says the same, from the same pattern.
    INSTANCE.upper(),
]


@pytest.mark.parametrize("operation", ["delete_instance", "get_instance", "stop_instance"])
@pytest.mark.parametrize(
    ("project_id", "instance_id"),
    [(p, INSTANCE) for p in BAD_PROJECT_IDS] + [(PROJECT, i) for i in BAD_INSTANCE_IDS],
)
def test_invalid_ids_are_refused_before_any_request(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    operation: str,
    project_id: str,
    instance_id: str,
) -> None:
    client = mocked_client(fake_time)
    with pytest.raises(ValueError, match="must be"):
        getattr(client, operation)(project_id, instance_id)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("instance_id", [INSTANCE, DE_INSTANCE])
def test_uuid_and_de_prefixed_ids_are_accepted(
    mocked: responses.RequestsMock, fake_time: FakeTime, instance_id: str
) -> None:
    mocked.delete(f"{ENDPOINT}/v1/{PROJECT}/notebooks/{instance_id}", json={})
    assert mocked_client(fake_time).delete_instance(PROJECT, instance_id).outcome == "deleted"


# -- API generation ------------------------------------------------------------------------


def test_api_generation_accepts_its_setting_spelling(fake_time: FakeTime) -> None:
    assert ApiGeneration("devenviron") is ApiGeneration.DEVENVIRON
    assert mocked_client(fake_time, api=ApiGeneration("notebook")).api is ApiGeneration.NOTEBOOK
