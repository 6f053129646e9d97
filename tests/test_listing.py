"""Listing instances: complete pagination in both API generations, checks, limits, deadline."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
import responses

from modelarts_cleanup.answers import MALFORMED_RESPONSE
from modelarts_cleanup.client import ModelArtsClient
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.instances import ListedInstance
from modelarts_cleanup.listing import INCONSISTENT_LISTING, LISTING_TOO_LARGE, MAX_LIST_PAGES
from modelarts_cleanup.session import new_session
from modelarts_cleanup.signer import SdkHmacSha256Auth
from modelarts_cleanup.testing import DEVENVIRON, FakeModelArts, Fault
from modelarts_cleanup.transport import RetryPolicy, Timeouts, Transport
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
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
    assert all(q["limit"] == "50" and set(q) == {"limit", "offset", "feature"} for q in api.queries)
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
    assert api.queries == [{"de_type": "Notebook", "limit": "0"}]
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
    for n in (3, 4, 5):  # the third page, and both of its retries
        api.replies[n] = error_reply(503, "ModelArts.6200", "internal error")

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, retry=RetryPolicy(max_attempts=3)).list_instances(PROJECT)

    err = caught.value
    assert (err.http_status, err.error_code, err.attempts, err.retryable) == (
        503,
        "ModelArts.6200",
        3,
        True,
    )
    assert offsets(api.queries, "NOTEBOOK") == [0, 50, 100, 100, 100]
    assert not any(q["feature"] == "DEFAULT" for q in api.queries)


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
    api.replies[2] = error_reply(429, "ModelArts.6101", "The system is busy.")

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
    for url in (NOTEBOOKS_URL, INSTANCES_URL):
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


def test_records_repeated_across_pages_are_listed_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [notebook(n) for n in range(60)]
    api = NotebookApi({"NOTEBOOK": records}).install(mocked)

    def create_between_pages(n: int) -> None:
        if n == 2:  # newest first: a new instance pushes record 49 onto the second page
            api.by_feature["NOTEBOOK"].insert(0, notebook(999))

    api.before = create_between_pages

    listed = mocked_client(fake_time).list_instances(PROJECT)

    # The newcomer sits before the offset already read: the next run lists it.
    assert ids(listed) == [r["id"] for r in records]
    assert sum(page.count(records[49]["id"]) for page in api.served) == 2
    assert offsets(api.queries, "NOTEBOOK") == [0, 50]


def test_an_instance_shown_under_both_features_is_listed_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    shared = notebook(7)
    NotebookApi({"NOTEBOOK": [notebook(1), shared], "DEFAULT": [shared]}).install(mocked)

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert ids(listed) == [notebook(1)["id"], shared["id"]]


def test_a_total_shrunk_by_deletions_between_pages_is_accepted(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [notebook(n) for n in range(120)]
    api = NotebookApi({"NOTEBOOK": records}).install(mocked)

    def delete_between_pages(n: int) -> None:
        if n == 2:
            del api.by_feature["NOTEBOOK"][:20]

    api.before = delete_between_pages

    listed = mocked_client(fake_time).list_instances(PROJECT)

    # Offsets shift under deletions: records 50-69 moved onto the first page's range and are
    # not seen this time; what was seen is complete for the total the last page announced.
    assert ids(listed) == [r["id"] for r in records[:50] + records[70:]]


def test_more_records_than_the_total_is_an_inconsistent_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(60)]}).install(mocked)
    page_two = {"data": [notebook(100 + n) for n in range(20)], "total": 60}
    api.replies[2] = (200, {"X-Request-Id": "req-2"}, json.dumps(page_two))

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    err = caught.value
    assert (err.error_code, err.retryable, err.request_id) == (INCONSISTENT_LISTING, True, "req-2")
    assert "70 records seen but the total is now 60" in str(err)


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_an_empty_page_before_the_total_is_an_inconsistent_listing(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(120)]}).install(mocked)
    notebooks.replies[2] = (200, {}, json.dumps({"data": [], "total": 120}))
    old = DevenvironApi([de_instance(n) for n in range(10)]).install(mocked)
    old.total = 25  # announces more than it will ever show

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.error_code, caught.value.retryable) == (INCONSISTENT_LISTING, True)
    assert "empty page" in str(caught.value)


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
    api.replies[2] = (200, {"X-Request-Id": "req-bad"}, body)

    with pytest.raises(ApiError) as caught:
        mocked_client(fake_time).list_instances(PROJECT)

    err = caught.value
    assert (err.error_code, err.http_status, err.request_id) == (MALFORMED_RESPONSE, 200, "req-bad")
    assert problem in str(err)
    assert len(api.queries) == 2


@pytest.mark.parametrize("body", ["{not json", '["data"]', "<html>proxy</html>"])
def test_a_page_that_is_not_json_is_asked_for_again(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: str
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(80)]}).install(mocked)
    api.replies[2] = (200, {"X-Request-Id": "req-bad"}, body)

    listed = mocked_client(fake_time).list_instances(PROJECT)

    assert len(listed) == 80
    assert [q["offset"] for q in api.queries[:3]] == ["0", "50", "50"]


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
    assert len(notebooks.queries) + len(old.queries) == MAX_LIST_PAGES


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

    # The second page arrives 5 s after the deadline: it is not used, and no third is asked for.
    assert caught.value.error_code == "DeadlineExceeded"
    assert "deadline" in str(caught.value)
    assert offsets(api.queries, "NOTEBOOK") == [0, 50]


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
    assert [(q["feature"], q["offset"], q["limit"]) for q in map(query_of, served)] == [
        ("NOTEBOOK", "0", "50"),
        ("NOTEBOOK", "50", "50"),
        ("NOTEBOOK", "100", "50"),
        ("DEFAULT", "0", "50"),
    ]
    assert all(header(r.headers, "X-Project-Id") == PROJECT for r in served)


def test_end_to_end_old_api_listing_reads_string_times(fake: FakeModelArts) -> None:
    wanted = {fake.add_instance(PROJECT, api=DEVENVIRON, created_ms=T0 + n) for n in range(30)}
    fake.add_instance(PROJECT)  # a notebook-API instance is not listed here

    listed = signed_client(fake, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert {i.instance_id for i in listed} == wanted
    assert {i.created_ms for i in listed} == {T0 + n for n in range(30)}
    assert [query_of(r) for r in fake.requests] == [{"de_type": "Notebook", "limit": "0"}]


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
    assert len(fake.requests) == 1
    assert SK not in str(caught.value)


def query_of(request: Any) -> dict[str, str]:
    return sent_query("?" + request.query)


def header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
