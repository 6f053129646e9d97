"""Listing instances: complete pagination in both API generations, checks, limits, deadline."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import responses

from modelarts_cleanup.cloud.answers import MALFORMED_RESPONSE
from modelarts_cleanup.cloud.client import ModelArtsClient
from modelarts_cleanup.cloud.instances import ListedInstance
from modelarts_cleanup.cloud.listing import (
    INCONSISTENT_LISTING,
    LISTING_TOO_LARGE,
    MAX_LIST_PAGES,
    FleetLister,
    Scope,
)
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.cloud.transport import RetryPolicy, Timeouts, Transport
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.testing import DEVENVIRON, FakeModelArts, Fault
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
    ALL_NOTEBOOKS_URL,
    ENDPOINT,
    INSTANCES_URL,
    NOTEBOOKS_URL,
    PROJECT,
    T0,
    DevenvironApi,
    NotebookApi,
    de_instance,
    error_reply,
    mocked_client,
    notebook,
    sent_query,
)
from tests.support import AK, SK, FakeTime, no_sleep


def ids(listed: list[ListedInstance]) -> list[str]:
    return [i.instance_id for i in listed]


def offsets(queries: list[dict[str, str]], feature: str) -> list[int]:
    return [int(q["offset"]) for q in queries if q["feature"] == feature]


# -- complete pagination -------------------------------------------------------------------


def test_notebook_listing_pages_through_every_record_of_both_features(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    billed = [notebook(n) for n in range(230)]
    free = [notebook(1000 + n, feature="DEFAULT") for n in range(3)]
    api = NotebookApi({"NOTEBOOK": billed, "DEFAULT": free}).install(mocked)

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert ids(listed) == [b["id"] for b in billed + free]
    assert offsets(api.queries, "NOTEBOOK") == [0, 50, 100, 150, 200]
    assert offsets(api.queries, "DEFAULT") == [0]
    assert all(
        q["limit"] == "50" and set(q) == {"limit", "offset", "feature", "workspace_id"}
        for q in api.queries
    )
    assert {q["workspace_id"] for q in api.queries} == {"0"}
    assert [i.feature for i in listed[-4:]] == ["NOTEBOOK", "DEFAULT", "DEFAULT", "DEFAULT"]


def test_every_listing_request_names_the_project_in_x_project_id(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(120)]}).install(mocked)

    mocked_client(fake_time).list_instances(PROJECT)

    assert api.project_headers == [PROJECT] * 4  # three NOTEBOOK pages, one DEFAULT


def test_devenviron_listing_asks_for_every_notebook_at_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [de_instance(n) for n in range(75)]
    api = DevenvironApi(records).install(mocked)

    listed = mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert ids(listed) == [r["id"] for r in records]
    assert api.queries == [
        {"de_type": "Notebook", "limit": "0", "workspace_id": "0", "show_self": "false"}
    ]
    assert mocked.calls[0].request.headers["X-Project-Id"] == PROJECT


def test_devenviron_listing_pages_on_when_an_answer_holds_fewer_than_the_total(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [de_instance(n) for n in range(40)]
    api = DevenvironApi(records, per_answer=7).install(mocked)

    listed = mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert ids(listed) == [r["id"] for r in records]
    assert [q.get("offset") for q in api.queries] == [None, "7", "14", "21", "28", "35"]
    assert {(q["de_type"], q["limit"]) for q in api.queries} == {("Notebook", "0")}


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_an_empty_project_lists_nothing(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi().install(mocked)
    old = DevenvironApi([]).install(mocked)

    assert mocked_client(fake_time, api).list_instances(PROJECT) == []
    if api is ApiGeneration.NOTEBOOK:
        assert [q["feature"] for q in notebooks.queries] == ["NOTEBOOK", "DEFAULT"]
    else:
        assert len(old.queries) == 1


# -- failures ------------------------------------------------------------------------------


def test_a_page_failing_after_every_retry_fails_the_whole_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(200)]}).install(mocked)
    # The third page, and both of its retries.
    api.page_replies[("NOTEBOOK", 100)] = [error_reply(503, "ModelArts.6200", "internal")] * 3

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=3)).list_instances(PROJECT)

    err = caught.value
    assert (err.http_status, err.error_code, err.attempts, err.retryable) == (
        503,
        "ModelArts.6200",
        3,
        True,
    )
    assert offsets(api.queries, "NOTEBOOK")[:5] == [0, 50, 100, 100, 100]
    assert offsets(api.queries, "DEFAULT") == [0]


def test_an_authentication_failure_mid_listing_is_not_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = DevenvironApi([de_instance(n) for n in range(30)], per_answer=10).install(mocked)
    api.replies[2] = error_reply(401, "APIGW.0301", "Incorrect IAM authentication information")

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert (caught.value.http_status, caught.value.error_code) == (401, "APIGW.0301")
    assert (caught.value.attempts, caught.value.retryable) == (1, False)
    assert len(api.queries) == 2
    assert fake_time.sleeps == []


def test_a_transient_page_error_is_retried_and_the_listing_completes(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [notebook(n) for n in range(120)]
    api = NotebookApi({"NOTEBOOK": records}).install(mocked)
    api.page_replies[("NOTEBOOK", 50)] = [error_reply(429, "ModelArts.6101", "The system is busy.")]

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert ids(listed) == [r["id"] for r in records]
    assert offsets(api.queries, "NOTEBOOK") == [0, 50, 50, 100]
    assert fake_time.sleeps == [0.25]  # jitter 0.5 x base delay 0.5


@pytest.mark.parametrize("api", list(ApiGeneration))
@pytest.mark.parametrize(
    ("status", "code"), [(404, "ModelArts.6404"), (400, "ModelArts.6309"), (404, None)]
)
def test_a_listing_that_does_not_exist_is_an_error_not_an_empty_project(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    api: ApiGeneration,
    status: int,
    code: str | None,
) -> None:
    body = "" if code is None else json.dumps({"error_code": code, "error_msg": "not found"})
    for url in (ALL_NOTEBOOKS_URL, INSTANCES_URL):
        mocked.get(re.compile(re.escape(url) + r"\?"), status=status, body=body)

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.http_status, caught.value.error_code) == (status, code)
    assert caught.value.retryable is False
    assert "listing itself was not found" in str(caught.value)


def test_an_invalid_project_id_is_refused_before_any_request(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi().install(mocked)

    with pytest.raises(ValueError, match="project_id"):
        mocked_client(fake_time).list_instances("../" + PROJECT[3:])

    assert api.queries == []


# -- consistency ---------------------------------------------------------------------------


def test_a_record_on_two_pages_fails_the_listing_closed(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [notebook(n) for n in range(60)]
    api = NotebookApi({"NOTEBOOK": records}).install(mocked)

    def create_and_delete_between_pages(n: int) -> None:
        if n == 3:  # newest first: record 49 is pushed onto the second page, the oldest is gone
            api.by_feature["NOTEBOOK"].insert(0, notebook(999))
            api.by_feature["NOTEBOOK"].pop()

    api.before = create_and_delete_between_pages

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    # The totals agree, but the pages do not: the fleet changed while it was listed.
    assert (caught.value.error_code, caught.value.retryable) == (INCONSISTENT_LISTING, True)
    assert "on two pages" in str(caught.value)


def test_an_instance_shown_under_both_features_is_listed_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    shared = notebook(7)
    NotebookApi({"NOTEBOOK": [notebook(1), shared], "DEFAULT": [shared]}).install(mocked)

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert ids(listed) == [notebook(1)["id"], shared["id"]]


def test_a_total_that_changes_between_pages_fails_the_listing_closed(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [notebook(n) for n in range(120)]
    api = NotebookApi({"NOTEBOOK": records}).install(mocked)

    def delete_between_pages(n: int) -> None:
        if n == 3:
            del api.by_feature["NOTEBOOK"][:20]

    api.before = delete_between_pages

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    # Offsets shift under deletions: some records would go unseen. The next run lists again.
    assert caught.value.error_code == INCONSISTENT_LISTING
    assert "the total changed between pages" in str(caught.value)


def test_more_records_than_the_total_is_an_inconsistent_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(60)]}).install(mocked)
    page_two = {"data": [notebook(100 + n) for n in range(20)], "total": 60}
    api.page_replies[("NOTEBOOK", 50)] = [(200, {"X-Request-Id": "req-2"}, json.dumps(page_two))]

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    err = caught.value
    assert (err.error_code, err.retryable) == (INCONSISTENT_LISTING, True)
    assert "70 records on the pages, but the total is 60" in str(err)


def test_a_short_page_before_the_last_is_an_inconsistent_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(120)]}).install(mocked)
    short = {"data": [notebook(50 + n) for n in range(30)], "total": 120}
    api.page_replies[("NOTEBOOK", 50)] = [(200, {}, json.dumps(short))]
    last = {"data": [notebook(100 + n) for n in range(40)], "total": 120}
    api.page_replies[("NOTEBOOK", 100)] = [(200, {}, json.dumps(last))]

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    assert caught.value.error_code == INCONSISTENT_LISTING
    assert "not full" in str(caught.value)


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_an_empty_page_before_the_total_is_an_inconsistent_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(120)]}).install(mocked)
    notebooks.page_replies[("NOTEBOOK", 50)] = [(200, {}, json.dumps({"data": [], "total": 120}))]
    old = DevenvironApi([de_instance(n) for n in range(10)]).install(mocked)
    old.total = 25  # announces more than it will ever show

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.error_code, caught.value.retryable) == (INCONSISTENT_LISTING, True)
    assert "records on the pages, but the total is" in str(caught.value)


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_instances_of_another_workspace_mean_the_workspace_was_ignored(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    NotebookApi({"NOTEBOOK": [notebook(1, workspace_id="0")]}).install(mocked)
    DevenvironApi([de_instance(1, workspace={"id": "0"})]).install(mocked)

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, api).list_instances(PROJECT, workspace_id="a" * 32)

    assert caught.value.error_code == INCONSISTENT_LISTING
    assert "the workspace was not applied" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"total": 1}', "`data` is missing"),
        ('{"data": {"id": "x"}, "total": 1}', "`data` is missing or not an array"),
        ('{"data": []}', "`total` is missing"),
        ('{"data": [], "total": "0"}', "`total` is missing or not a non-negative integer"),
        ('{"data": [], "total": true}', "`total` is missing or not a non-negative integer"),
        ('{"data": [], "total": -1}', "`total` is missing or not a non-negative integer"),
        ('{"data": ["x"], "total": 1}', "not an object"),
        ('{"data": [{"name": "nb"}], "total": 1}', "an instance has no `id`"),
        ('{"data": [{"id": " "}], "total": 1}', "an instance has no `id`"),
        ('{"data": [{"id": 7}], "total": 1}', "an instance has no `id`"),
    ],
)
def test_a_page_not_of_the_documented_shape_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str, problem: str
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(80)]}).install(mocked)
    api.page_replies[("NOTEBOOK", 50)] = [(200, {"X-Request-Id": "req-bad"}, body)]

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    err = caught.value
    assert (err.error_code, err.http_status, err.request_id) == (MALFORMED_RESPONSE, 200, "req-bad")
    assert problem in str(err)
    assert offsets(api.queries, "NOTEBOOK") == [0, 50]


@pytest.mark.parametrize("body", ["{not json", '["data"]', "<html>proxy</html>"])
def test_a_page_that_is_not_json_is_asked_for_again(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(80)]}).install(mocked)
    api.page_replies[("NOTEBOOK", 50)] = [(200, {"X-Request-Id": "req-bad"}, body)]

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert len(listed) == 80
    assert offsets(api.queries, "NOTEBOOK") == [0, 50, 50]


def test_an_old_api_page_without_total_count_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(re.compile(re.escape(INSTANCES_URL) + r"\?"), json={"instances": []})

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert caught.value.error_code == MALFORMED_RESPONSE
    assert "`total_count`" in str(caught.value)


# -- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_a_listing_longer_than_the_page_bound_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(50 * MAX_LIST_PAGES + 1)]})
    notebooks.install(mocked)
    old = DevenvironApi([de_instance(n) for n in range(MAX_LIST_PAGES + 1)], per_answer=1)
    old.install(mocked)

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.error_code, caught.value.retryable) == (LISTING_TOO_LARGE, False)
    if api is ApiGeneration.NOTEBOOK:  # the first pages tell the total: nothing more is asked
        assert [q["feature"] for q in notebooks.queries] == ["NOTEBOOK", "DEFAULT"]
    else:  # the old API announces no page size: it pages on up to the bound
        assert len(old.queries) == MAX_LIST_PAGES


def test_the_page_bound_counts_both_features_together(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    billed = [notebook(n) for n in range(50 * (MAX_LIST_PAGES - 1))]
    free = [notebook(100_000 + n, feature="DEFAULT") for n in range(51)]  # two more pages
    api = NotebookApi({"NOTEBOOK": billed, "DEFAULT": free}).install(mocked)

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    assert caught.value.error_code == LISTING_TOO_LARGE
    assert offsets(api.queries, "DEFAULT") == [0]
    assert offsets(api.queries, "NOTEBOOK") == [0]  # no second page of either was asked for


# -- deadline ------------------------------------------------------------------------------


def test_the_deadline_is_honoured_between_pages(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(200)]}).install(mocked)

    def each_page_takes_ten_seconds(n: int) -> None:
        fake_time.now += 10.0

    api.before = each_page_takes_ten_seconds

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT, deadline=fake_time.now + 15.0)

    # The second page (the free feature's first) arrives 5 s after the deadline: it is not
    # used, and no further page is sent.
    assert caught.value.error_code == "DeadlineExceeded"
    assert "deadline" in str(caught.value)
    assert [(q["feature"], q["offset"]) for q in api.queries] == [
        ("NOTEBOOK", "0"),
        ("DEFAULT", "0"),
    ]


def test_each_page_gets_only_the_time_left_before_the_deadline(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(60)]}).install(mocked)

    def each_page_takes_three_seconds(n: int) -> None:
        fake_time.now += 3.0

    api.before = each_page_takes_three_seconds

    mocked_client(fake_time).list_instances(PROJECT, deadline=fake_time.now + 10.0)

    timeouts = [call.request.req_kwargs["timeout"] for call in mocked.calls]
    assert timeouts == [(5.0, 10.0), (5.0, 7.0), (4.0, 4.0)]


# -- end to end against the local endpoint -------------------------------------------------


def signed_client(fake: FakeModelArts, api: ApiGeneration, secret: str = SK) -> ModelArtsClient:
    return ModelArtsClient(
        Transport(
            session=new_session(2, auth=SdkHmacSha256Auth(AK, secret)),
            endpoint=fake.url,
            retry=RetryPolicy(max_attempts=3),
            timeouts=Timeouts(connect=5.0, read=10.0),
            sleep=no_sleep,
        ),
        api=api,
    )


def test_end_to_end_notebook_listing_is_complete_and_signed(fake: FakeModelArts) -> None:
    billed = {fake.add_instance(PROJECT, created_ms=T0 + n) for n in range(120)}
    free = fake.add_instance(PROJECT, feature="DEFAULT", created_ms=T0)
    fake.add_instance("f" * 32)  # another project's
    fake.add_instance(PROJECT, api=DEVENVIRON)  # the old API's

    listed = signed_client(fake, ApiGeneration.NOTEBOOK).list_instances(PROJECT)

    assert {i.instance_id for i in listed} == billed | {free}
    assert len(listed) == 121
    by_id = {i.instance_id: i for i in listed}
    assert by_id[free].feature == "DEFAULT"
    assert {by_id[i].created_ms for i in billed} == {T0 + n for n in range(120)}
    served = fake.requests
    assert [r.status for r in served] == [200] * 4
    # Both features' first pages, then (the totals known) the rest: every user's notebooks.
    assert [r.path for r in served] == [f"/v1/{PROJECT}/notebooks/all"] * 4
    assert [(q["feature"], q["offset"], q["limit"]) for q in map(query_of, served)] == [
        ("NOTEBOOK", "0", "50"),
        ("DEFAULT", "0", "50"),
        ("NOTEBOOK", "50", "50"),
        ("NOTEBOOK", "100", "50"),
    ]
    assert {query_of(r)["workspace_id"] for r in served} == {"0"}
    assert all(header(r.headers, "X-Project-Id") == PROJECT for r in served)


def test_end_to_end_old_api_listing_reads_string_times(fake: FakeModelArts) -> None:
    wanted = {fake.add_instance(PROJECT, api=DEVENVIRON, created_ms=T0 + n) for n in range(30)}
    fake.add_instance(PROJECT)  # a notebook-API instance is not listed here

    listed = signed_client(fake, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert {i.instance_id for i in listed} == wanted
    assert {i.created_ms for i in listed} == {T0 + n for n in range(30)}
    assert [query_of(r) for r in fake.requests] == [
        {"de_type": "Notebook", "limit": "0", "workspace_id": "0", "show_self": "false"}
    ]


def test_end_to_end_a_transient_fault_is_retried(fake: FakeModelArts) -> None:
    wanted = {fake.add_instance(PROJECT) for _ in range(60)}
    fake.add_fault(Fault("status", status=503, times=2))

    listed = signed_client(fake, ApiGeneration.NOTEBOOK).list_instances(PROJECT)

    assert {i.instance_id for i in listed} == wanted
    assert [r.status for r in fake.requests] == [503, 503, 200, 200, 200]


def test_end_to_end_a_rejected_signature_fails_the_listing(fake: FakeModelArts) -> None:
    fake.add_instance(PROJECT)

    with pytest.raises(ApiError) as caught:
        signed_client(fake, ApiGeneration.NOTEBOOK, secret="wrong-secret").list_instances(PROJECT)

    assert (caught.value.http_status, caught.value.error_code) == (401, "APIGW.0301")
    assert caught.value.retryable is False
    # Never retried: at most the two first pages that were already on their way.
    assert 1 <= len(fake.requests) <= 2
    assert {r.status for r in fake.requests} == {401}
    assert SK not in str(caught.value)


def query_of(request: Any) -> dict[str, str]:
    return sent_query("?" + request.query)


def header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# -- scope and workspaces ------------------------------------------------------------------


def test_own_scope_lists_the_callers_notebooks_with_list_notebooks(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    own = NotebookApi({"NOTEBOOK": [notebook(1)]}).install(mocked, NOTEBOOKS_URL)
    every = NotebookApi({"NOTEBOOK": [notebook(1), notebook(2)]}).install(mocked)

    listed = mocked_client(fake_time).list_instances(PROJECT, scope="own")

    assert ids(listed) == [notebook(1)["id"]]
    assert (len(own.queries), len(every.queries)) == (2, 0)


@pytest.mark.parametrize(("scope", "show_self"), [("all", "false"), ("own", "true")])
def test_the_old_api_shows_everyones_instances_only_in_the_all_scope(
    mocked: responses.RequestsMock, fake_time: FakeTime, scope: Scope, show_self: str
) -> None:
    api = DevenvironApi([de_instance(1)]).install(mocked)
    mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT, scope=scope)
    assert api.queries[0]["show_self"] == show_self


WORKSPACES_URL = f"{ENDPOINT}/v1/{PROJECT}/workspaces"


def workspaces_page(ids: list[str], total: int, count: int | None = None) -> dict[str, Any]:
    listed = [{"id": i, "name": f"ws-{i[:4]}", "status": "NORMAL"} for i in ids]
    return {
        "total_count": total,
        "count": len(ids) if count is None else count,
        "workspaces": listed,
    }


def lister(fake_time: FakeTime, concurrency: int = 4) -> FleetLister:
    return mocked_client(fake_time).fleet(scope="all", concurrency=concurrency, deadline=None)


def test_every_page_of_workspaces_is_listed_by_page_index(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    first = [f"{n:032x}" for n in range(1000)]
    second = [f"{n:032x}" for n in range(1000, 1003)]
    mocked.get(
        WORKSPACES_URL + "?limit=1000&offset=0", json=workspaces_page(["0", *first[1:]], 1003)
    )
    mocked.get(WORKSPACES_URL + "?limit=1000&offset=1", json=workspaces_page(second, 1003))

    found = lister(fake_time).workspaces([PROJECT])

    assert found[PROJECT] == ["0", *first[1:], *second]


def test_the_default_workspace_is_listed_even_when_the_answer_leaves_it_out(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(WORKSPACES_URL + "?limit=1000&offset=0", json=workspaces_page(["a" * 32], 1))
    assert lister(fake_time).workspaces([PROJECT])[PROJECT] == ["0", "a" * 32]


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        (workspaces_page(["0", "a" * 32], 2, count=3), "`count`"),
        (workspaces_page(["0", "0"], 2), "inconsistent"),
        (workspaces_page(["0"], 3), "inconsistent"),  # then an empty page: fewer than announced
        (workspaces_page(["0", "../x"], 2), "no usable `id`"),
        ({"total_count": 1, "count": 1}, "`workspaces`"),
    ],
)
def test_workspace_pages_that_do_not_add_up_fail_the_project_closed(
    mocked: responses.RequestsMock, fake_time: FakeTime, page: dict[str, Any], problem: str
) -> None:
    mocked.get(WORKSPACES_URL + "?limit=1000&offset=0", json=page)
    mocked.get(WORKSPACES_URL + "?limit=1000&offset=1", json=workspaces_page([], 3))

    found = lister(fake_time).workspaces([PROJECT])[PROJECT]

    assert isinstance(found, ApiError)
    assert problem in str(found)


def test_each_workspace_is_listed_on_its_own_and_one_failing_spares_the_others(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    good = NotebookApi({"NOTEBOOK": [notebook(n, workspace_id="a" * 32) for n in range(3)]})

    def by_workspace(request: Any) -> Any:
        if sent_query(request.url)["workspace_id"] == "b" * 32:
            return error_reply(403, "ModelArts.0108", "not allowed in this workspace")
        return good(request)

    mocked.add_callback(
        responses.GET, re.compile(re.escape(ALL_NOTEBOOKS_URL) + r"\?"), by_workspace
    )

    listings = lister(fake_time).instances([(PROJECT, "a" * 32), (PROJECT, "b" * 32)])

    assert [(x.workspace_id, len(x.instances)) for x in listings] == [("a" * 32, 3), ("b" * 32, 0)]
    assert listings[0].error is None
    assert listings[1].error is not None and listings[1].error.error_code == "ModelArts.0108"


def test_no_more_requests_are_in_flight_than_the_concurrency(fake: FakeModelArts) -> None:
    gate = threading.Lock()
    in_flight, most = [0], [0]

    def count(_: float) -> None:  # the endpoint's latency, slept in each handler thread
        with gate:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.02)
        with gate:
            in_flight[0] -= 1

    slow = FakeModelArts(access_key=AK, secret_key=SK, latency=0.001, sleep=count)
    with slow:
        for w in range(6):
            for n in range(60):
                slow.add_instance(PROJECT, workspace_id=f"{w + 1:032x}", created_ms=T0 + n)
        client = signed_client(slow, ApiGeneration.NOTEBOOK)
        pairs = [(PROJECT, f"{w + 1:032x}") for w in range(6)]
        listings = client.fleet(scope="all", concurrency=3, deadline=None).instances(pairs)

    assert [len(x.instances) for x in listings] == [60] * 6
    assert 2 <= most[0] <= 3
