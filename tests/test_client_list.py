"""Listing instances: complete pagination in both API generations, checks, billing, timestamps."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from modelarts_cleanup.answers import MALFORMED_RESPONSE
from modelarts_cleanup.client import ModelArtsClient
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.instances import ListedInstance, parse_billing
from modelarts_cleanup.listing import INCONSISTENT_LISTING, LISTING_TOO_LARGE, MAX_LIST_PAGES
from modelarts_cleanup.session import new_session
from modelarts_cleanup.signer import SdkHmacSha256Auth
from modelarts_cleanup.testing import DEVENVIRON, FakeModelArts, Fault
from modelarts_cleanup.transport import RetryPolicy, Timeouts
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.clocks import FakeTime

ENDPOINT = "https://modelarts.example.invalid"
PROJECT = "0123456789abcdef0123456789abcdef"
NOTEBOOKS_URL = f"{ENDPOINT}/v1/{PROJECT}/notebooks"
INSTANCES_URL = f"{ENDPOINT}/v1/{PROJECT}/demanager/instances"
# 2023-11-14T22:13:20Z in epoch milliseconds: a plausible creation time.
T0 = 1_700_000_000_000
AK, SK = "LISTACCESSKEY", "list-secret-key-never-shown"

Instance = dict[str, Any]
Reply = tuple[int, dict[str, str], str]


class StaticAuth(requests.auth.AuthBase):
    """Stands in for the signer in the mocked tests."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = "mock-token"
        return r


def make_client(
    fake_time: FakeTime, api: ApiGeneration = ApiGeneration.NOTEBOOK
) -> ModelArtsClient:
    return ModelArtsClient(
        session=new_session(2, auth=StaticAuth()),
        endpoint=ENDPOINT,
        api=api,
        retry=RetryPolicy(max_attempts=3),
        timeouts=Timeouts(),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        jitter=lambda: 0.5,
        wall_clock=lambda: 0.0,
    )


def sent_query(url: str) -> dict[str, str]:
    """The query of a sent URL as a dict (the signer reorders it; order does not matter)."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert len({k for k, _ in pairs}) == len(pairs), f"repeated parameter in {url}"
    return dict(pairs)


def notebook(n: int, **extra: Any) -> Instance:
    """A notebook as ListNotebooks shows one, with a distinct id per `n`."""
    body: Instance = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"nb-{n}",
        "status": "STOPPED",
        "feature": "NOTEBOOK",
        "create_at": T0 + n,
        "update_at": T0 + n + 1,
        "lease": {"create_at": T0 + n, "update_at": T0 + n + 1, "enable": True},
        "billing_items": ["ALL"],
    }
    body.update(extra)
    return body


def de_instance(n: int, **extra: Any) -> Instance:
    """An old-API development environment instance, timestamps as strings."""
    body: Instance = {
        "id": f"DE-00000000-0000-4000-8000-{n:012d}",
        "name": f"de-{n}",
        "status": "STOPPED",
        "creation_timestamp": str(T0 + n),
        "latest_update_timestamp": str(T0 + n + 1),
    }
    body.update(extra)
    return body


def error_reply(status: int, code: str, msg: str = "some message") -> Reply:
    return status, {}, json.dumps({"error_code": code, "error_msg": msg})


class NotebookApi:
    """Answers ListNotebooks like the service: per feature, `limit` records from `offset`.

    `replies` answers the n-th request (1-based) with something else; `before` runs before each
    request is answered (to change the collection or the clock between pages).
    """

    def __init__(self, by_feature: Mapping[str, list[Instance]] | None = None) -> None:
        self.by_feature = {k: list(v) for k, v in (by_feature or {}).items()}
        self.replies: dict[int, Reply] = {}
        self.before: Callable[[int], None] = lambda n: None
        self.queries: list[dict[str, str]] = []
        self.project_headers: list[str | None] = []
        self.served: list[list[str]] = []  # the ids each normal page held

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        self.queries.append(sent_query(request.url or ""))
        self.project_headers.append(request.headers.get("X-Project-Id"))
        n = len(self.queries)
        self.before(n)
        if n in self.replies:
            return self.replies[n]
        query = self.queries[-1]
        limit, offset = int(query["limit"]), int(query["offset"])
        records = self.by_feature.get(query["feature"], [])
        data = records[offset : offset + limit]
        self.served.append([r["id"] for r in data])
        page = {
            "current": offset // limit,
            "data": data,
            "pages": math.ceil(len(records) / limit),
            "size": limit,
            "total": len(records),
        }
        return 200, {"X-Request-Id": f"req-{n}"}, json.dumps(page)

    def install(self, mocked: responses.RequestsMock) -> NotebookApi:
        mocked.add_callback(responses.GET, re.compile(re.escape(NOTEBOOKS_URL) + r"\?"), self)
        return self


class DevenvironApi:
    """Answers the old list API; `per_answer` caps an answer below `limit=0`'s "everything"."""

    def __init__(self, records: list[Instance], per_answer: int | None = None) -> None:
        self.records = list(records)
        self.per_answer = per_answer
        self.replies: dict[int, Reply] = {}
        self.total: int | None = None  # announce this instead of the true count
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        self.queries.append(sent_query(request.url or ""))
        n = len(self.queries)
        if n in self.replies:
            return self.replies[n]
        offset = int(self.queries[-1].get("offset", "0"))
        end = None if self.per_answer is None else offset + self.per_answer
        body = {
            "total_count": len(self.records) if self.total is None else self.total,
            "instances": self.records[offset:end],
        }
        return 200, {}, json.dumps(body)

    def install(self, mocked: responses.RequestsMock) -> DevenvironApi:
        mocked.add_callback(responses.GET, re.compile(re.escape(INSTANCES_URL) + r"\?"), self)
        return self


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

    listed = make_client(fake_time).list_instances(PROJECT)

    assert ids(listed) == [b["id"] for b in billed + free]
    assert offsets(api.queries, "NOTEBOOK") == [0, 50, 100, 150, 200]
    assert offsets(api.queries, "DEFAULT") == [0]
    assert all(q["limit"] == "50" and set(q) == {"limit", "offset", "feature"} for q in api.queries)
    assert [i.feature for i in listed[-4:]] == ["NOTEBOOK", "DEFAULT", "DEFAULT", "DEFAULT"]


def test_every_listing_request_names_the_project_in_x_project_id(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(120)]}).install(mocked)

    make_client(fake_time).list_instances(PROJECT)

    assert api.project_headers == [PROJECT] * 4  # three NOTEBOOK pages, one DEFAULT


def test_devenviron_listing_asks_for_every_notebook_at_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [de_instance(n) for n in range(75)]
    api = DevenvironApi(records).install(mocked)

    listed = make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert ids(listed) == [r["id"] for r in records]
    assert api.queries == [{"de_type": "Notebook", "limit": "0"}]
    assert mocked.calls[0].request.headers["X-Project-Id"] == PROJECT


def test_devenviron_listing_pages_on_when_an_answer_holds_fewer_than_the_total(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    records = [de_instance(n) for n in range(40)]
    api = DevenvironApi(records, per_answer=7).install(mocked)

    listed = make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert ids(listed) == [r["id"] for r in records]
    assert [q.get("offset") for q in api.queries] == [None, "7", "14", "21", "28", "35"]
    assert {(q["de_type"], q["limit"]) for q in api.queries} == {("Notebook", "0")}


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_an_empty_project_lists_nothing(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi().install(mocked)
    old = DevenvironApi([]).install(mocked)

    assert make_client(fake_time, api).list_instances(PROJECT) == []
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
        make_client(fake_time).list_instances(PROJECT)

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
        make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

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

    listed = make_client(fake_time).list_instances(PROJECT)

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
        make_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.http_status, caught.value.error_code) == (status, code)
    assert caught.value.retryable is False
    assert "listing itself was not found" in str(caught.value)


def test_an_invalid_project_id_is_refused_before_any_request(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi().install(mocked)

    with pytest.raises(ValueError, match="project_id"):
        make_client(fake_time).list_instances("../" + PROJECT[3:])

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

    listed = make_client(fake_time).list_instances(PROJECT)

    # The newcomer sits before the offset already read: the next run lists it.
    assert ids(listed) == [r["id"] for r in records]
    assert sum(page.count(records[49]["id"]) for page in api.served) == 2
    assert offsets(api.queries, "NOTEBOOK") == [0, 50]


def test_an_instance_shown_under_both_features_is_listed_once(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    shared = notebook(7)
    NotebookApi({"NOTEBOOK": [notebook(1), shared], "DEFAULT": [shared]}).install(mocked)

    listed = make_client(fake_time).list_instances(PROJECT)

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

    listed = make_client(fake_time).list_instances(PROJECT)

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
        make_client(fake_time).list_instances(PROJECT)

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
        make_client(fake_time, api).list_instances(PROJECT)

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
        make_client(fake_time).list_instances(PROJECT)

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

    listed = make_client(fake_time).list_instances(PROJECT)

    assert len(listed) == 80
    assert [q["offset"] for q in api.queries[:3]] == ["0", "50", "50"]


def test_an_old_api_page_without_total_count_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(re.compile(re.escape(INSTANCES_URL) + r"\?"), json={"instances": []})

    with pytest.raises(ApiError) as caught:
        make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert caught.value.error_code == MALFORMED_RESPONSE
    assert "`total_count`" in str(caught.value)


@pytest.mark.parametrize("api", list(ApiGeneration))
def test_a_listing_longer_than_the_page_bound_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime, api: ApiGeneration
) -> None:
    notebooks = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(50 * MAX_LIST_PAGES + 1)]})
    notebooks.install(mocked)
    old = DevenvironApi([de_instance(n) for n in range(MAX_LIST_PAGES + 1)], per_answer=1)
    old.install(mocked)

    with pytest.raises(ApiError) as caught:
        make_client(fake_time, api).list_instances(PROJECT)

    assert (caught.value.error_code, caught.value.retryable) == (LISTING_TOO_LARGE, False)
    assert len(notebooks.queries) + len(old.queries) == MAX_LIST_PAGES


def test_the_page_bound_counts_both_features_together(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    billed = [notebook(n) for n in range(50 * (MAX_LIST_PAGES - 1))]
    free = [notebook(100_000 + n, feature="DEFAULT") for n in range(51)]  # two more pages
    api = NotebookApi({"NOTEBOOK": billed, "DEFAULT": free}).install(mocked)

    with pytest.raises(ApiError) as caught:
        make_client(fake_time).list_instances(PROJECT)

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
        make_client(fake_time).list_instances(PROJECT, deadline=fake_time.now + 15.0)

    # The second page arrives 5 s after the deadline: it is not used, and no third is asked for.
    assert caught.value.error_code == "ReadTimeout"
    assert "deadline" in str(caught.value)
    assert offsets(api.queries, "NOTEBOOK") == [0, 50]


def test_each_page_gets_only_the_time_left_before_the_deadline(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    api = NotebookApi({"NOTEBOOK": [notebook(n) for n in range(60)]}).install(mocked)

    def each_page_takes_three_seconds(n: int) -> None:
        fake_time.now += 3.0

    api.before = each_page_takes_three_seconds

    make_client(fake_time).list_instances(PROJECT, deadline=fake_time.now + 10.0)

    timeouts = [call.request.req_kwargs["timeout"] for call in mocked.calls]
    assert timeouts == [(5.0, 10.0), (5.0, 7.0), (4.0, 4.0)]


# -- what a listed instance says -----------------------------------------------------------


def test_a_listed_notebook_carries_its_fields(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = notebook(3, status="RUNNING", charging_mode="POST_PAID")
    NotebookApi({"NOTEBOOK": [body]}).install(mocked)

    [listed] = make_client(fake_time).list_instances(PROJECT)

    assert listed == ListedInstance(
        project_id=PROJECT,
        instance_id=body["id"],
        name="nb-3",
        status="RUNNING",
        created_ms=T0 + 3,
        updated_ms=T0 + 4,
        feature="NOTEBOOK",
        billing="postpaid",
    )


def test_a_listed_old_api_instance_carries_its_fields(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = de_instance(5, status="RUNNING")
    DevenvironApi([body]).install(mocked)

    [listed] = make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert (listed.instance_id, listed.name, listed.status) == (body["id"], "de-5", "RUNNING")
    assert (listed.created_ms, listed.updated_ms) == (T0 + 5, T0 + 6)
    assert (listed.feature, listed.billing) == (None, "postpaid")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"create_at": T0, "update_at": T0 + 9}, (T0, T0 + 9)),
        # The SDK model has the times only inside `lease`.
        ({"create_at": None, "update_at": None}, (T0 + 1, T0 + 2)),
        ({}, (T0 + 1, T0 + 2)),
        # Seconds, not milliseconds: unusable at the top level, so the lease decides.
        ({"create_at": T0 // 1000, "update_at": "soon"}, (T0 + 1, T0 + 2)),
        ({"create_at": float(T0), "update_at": T0 + 0.5}, (T0, T0 + 2)),
        ({"create_at": True, "update_at": str(T0)}, (T0 + 1, T0)),
    ],
)
def test_notebook_times_prefer_the_top_level_and_fall_back_to_the_lease(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    fields: dict[str, Any],
    expected: tuple[int, int],
) -> None:
    body = {"id": "nb-1", "lease": {"create_at": T0 + 1, "update_at": T0 + 2}, **fields}
    NotebookApi({"NOTEBOOK": [body]}).install(mocked)

    [listed] = make_client(fake_time).list_instances(PROJECT)

    assert (listed.created_ms, listed.updated_ms) == expected


def test_notebook_times_are_unknown_when_neither_place_has_them(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    NotebookApi({"NOTEBOOK": [{"id": "nb-1", "lease": "not an object"}]}).install(mocked)

    [listed] = make_client(fake_time).list_instances(PROJECT)

    assert (listed.created_ms, listed.updated_ms, listed.name, listed.status) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(T0), T0),
        (f" {T0} ", T0),
        (T0, T0),  # an integer where the docs say string
        (str(T0 // 1000), None),  # seconds
        (str(T0 * 1000), None),  # microseconds
        ("1.7e12", None),
        ("-1", None),
        ("", None),
        (None, None),
    ],
)
def test_old_api_times_are_strings_of_epoch_milliseconds(
    mocked: responses.RequestsMock, fake_time: FakeTime, value: Any, expected: int | None
) -> None:
    body = {"id": "de-1", "creation_timestamp": value, "latest_update_timestamp": value}
    DevenvironApi([body]).install(mocked)

    [listed] = make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert (listed.created_ms, listed.updated_ms) == (expected, expected)


def test_feature_comes_from_the_instance_else_from_the_query(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    unlabelled = {"id": "free-1"}
    NotebookApi({"NOTEBOOK": [notebook(1, feature=None)], "DEFAULT": [unlabelled]}).install(mocked)

    listed = make_client(fake_time).list_instances(PROJECT)

    assert [i.feature for i in listed] == ["NOTEBOOK", "DEFAULT"]


# -- billing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        # DevServer / HyperInstance spellings (SDK server_response.py, charging_info.py).
        ({"charging_mode": "PRE_PAID"}, "prepaid"),
        ({"charging_mode": "POST_PAID"}, "postpaid"),
        ({"charging_mode": "COMMON"}, None),
        ({"charging_info": {"charging_mode": "PRE_PAID", "period_type": "month"}}, "prepaid"),
        ({"charging_info": {"charging_mode": "POST_PAID"}}, "postpaid"),
        # Terraform / ECS spellings.
        ({"charging_mode": "prePaid"}, "prepaid"),
        ({"charging_mode": "postPaid"}, "postpaid"),
        ({"extend_params": {"charging_mode": "prePaid"}}, "prepaid"),
        ({"spec": {"extend_params": {"charging_mode": "prePaid"}}}, "prepaid"),
        ({"metadata": {"charging_mode": "1"}}, "prepaid"),
        ({"metadata": {"charging_mode": "0"}}, "postpaid"),
        ({"metadata": {"charging_mode": "2"}}, None),  # spot
        # Pool annotation (SDK pool_meta_annotations.py): "0" on demand, "1" yearly/monthly.
        ({"metadata": {"annotations": {"os.modelarts/billing.mode": "1"}}}, "prepaid"),
        ({"metadata": {"annotations": {"os.modelarts/billing.mode": "0"}}}, "postpaid"),
        # Other names and values.
        ({"billing_mode": 1}, "prepaid"),
        ({"billing_mode": 0}, "postpaid"),
        ({"billingMode": "pre-paid"}, "prepaid"),
        ({"pay_type": "yearly"}, "prepaid"),
        ({"payType": "Monthly"}, "prepaid"),
        ({"charge_mode": "Yearly/Monthly"}, "prepaid"),
        ({"chargingMode": "ON_DEMAND"}, "postpaid"),
        ({"billing_mode": "pay-per-use"}, "postpaid"),
        ({"billing_info": {"pay_type": "包年/包月"}}, "prepaid"),
        ({"billing_mode": "按需计费"}, "postpaid"),
        # Nothing says: unknown.
        # No billing field: a public-pool notebook, pay-per-use (the only documented mode).
        ({}, "postpaid"),
        ({"feature": "NOTEBOOK", "billing_items": ["ALL"]}, "postpaid"),
        ({"feature": "DEFAULT"}, "postpaid"),
        ({"pool": {}}, "postpaid"),
        # A dedicated pool is paid as the pool is, which the notebook does not show.
        ({"pool": {"id": "pool-1", "name": "dedicated"}}, None),
        ({"pool": "pool-1"}, None),
        ({"charging_mode": None}, None),
        ({"charging_mode": ""}, None),
        ({"charging_mode": True}, None),
        ({"charging_mode": {"mode": "PRE_PAID"}}, None),
        ({"charging_mode": "prepaid-ish"}, None),
        # Fail closed: any pre-paid sign wins; an unreadable one stops a post-paid verdict.
        ({"charging_mode": "POST_PAID", "charging_info": {"charging_mode": "PRE_PAID"}}, "prepaid"),
        ({"billing_mode": "0", "pay_type": "weird"}, None),
        ({"billing_mode": "0", "metadata": {"charging_mode": "0"}}, "postpaid"),
    ],
)
def test_billing_is_read_from_every_known_spelling_fail_closed(
    instance: dict[str, Any], expected: str | None
) -> None:
    assert parse_billing(instance) == expected


def test_listed_instances_carry_their_billing(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    DevenvironApi(
        [
            de_instance(1, spec={"extend_params": {"charging_mode": "prePaid"}}),
            de_instance(2, billing_mode="POST_PAID"),
            de_instance(3),
        ]
    ).install(mocked)

    listed = make_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert [i.billing for i in listed] == ["prepaid", "postpaid", "postpaid"]


# -- end to end against the local endpoint ---------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeModelArts]:
    with FakeModelArts(access_key=AK, secret_key=SK) as server:
        yield server


def signed_client(fake: FakeModelArts, api: ApiGeneration, secret: str = SK) -> ModelArtsClient:
    return ModelArtsClient(
        session=new_session(2, auth=SdkHmacSha256Auth(AK, secret)),
        endpoint=fake.url,
        api=api,
        retry=RetryPolicy(max_attempts=3),
        timeouts=Timeouts(connect=5.0, read=10.0),
        sleep=lambda _: None,
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


# -- one instance read as a listing reads it (the re-check before a selected deletion) ---------

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
    listed = make_client(fake_time).get_listed_instance(PROJECT, NB_ID)
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
    assert make_client(fake_time).get_listed_instance(PROJECT, NB_ID) is None


def test_an_answer_about_another_instance_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    other = "99999999-2222-4333-8444-555555555555"
    mocked.get(
        f"{ENDPOINT}/v1/{PROJECT}/notebooks/{NB_ID}", json={"id": other, "status": "STOPPED"}
    )
    with pytest.raises(ApiError) as caught:
        make_client(fake_time).get_listed_instance(PROJECT, NB_ID)
    assert caught.value.error_code == "InconsistentListing"
