"""What a listed instance says: its fields, times as epoch milliseconds, feature, billing."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import responses

from modelarts_cleanup.cloud.instances import (
    ListedInstance,
    describe,
    from_iso,
    listed_devenviron,
    listed_notebook,
    parse_billing,
)
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
    PROJECT,
    T0,
    DevenvironApi,
    NotebookApi,
    de_instance,
    mocked_client,
    notebook,
)
from tests.support import FakeTime

# -- fields and times ----------------------------------------------------------------------


def test_a_listed_notebook_carries_its_fields(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = notebook(3, status="RUNNING", charging_mode="POST_PAID")
    NotebookApi({"NOTEBOOK": [body]}).install(mocked)

    [listed] = mocked_client(fake_time).list_instances(PROJECT)

    assert listed == ListedInstance(
        project_id=PROJECT,
        instance_id=body["id"],
        name="nb-3",
        status="RUNNING",
        created_ms=T0 + 3,
        updated_ms=T0 + 4,
        feature="NOTEBOOK",
        billing="postpaid",
        workspace_id="0",
    )


def test_a_listed_notebook_carries_owner_workspace_pool_and_tags(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = notebook(
        4,
        workspace_id="a" * 32,
        user={"id": "b" * 32, "name": "alice", "domain": {"id": "d", "name": "acct"}},
        user_id="b" * 32,
        pool={"id": "pool-1a2b", "name": "v100"},
        tags=[{"key": "team", "value": "nlp"}, {"key": "keep"}],
    )
    NotebookApi({"NOTEBOOK": [body]}).install(mocked)

    [listed] = mocked_client(fake_time).list_instances(PROJECT, workspace_id="a" * 32)

    assert (listed.workspace_id, listed.owner_id, listed.owner_name) == (
        "a" * 32,
        "b" * 32,
        "alice",
    )
    assert (listed.pool, listed.pool_unreadable) == (("pool-1a2b", "v100"), False)
    assert listed.tags == (("team", "nlp"), ("keep", ""))


@pytest.mark.parametrize(
    ("fields", "owner", "pool", "tags"),
    [
        # Only `user_id` (no `user` object): the ID is the owner, the name unknown.
        ({"user_id": "c" * 32}, ("c" * 32, None), (None, False), ()),
        # No tags field at all, or null: no tags. A pool of {}: the public pool.
        ({"tags": None, "pool": {}}, (None, None), (None, False), ()),
        # Malformed: unreadable, never "none".
        ({"tags": "team=nlp"}, (None, None), (None, False), None),
        ({"tags": [{"key": 1, "value": "x"}]}, (None, None), (None, False), None),
        ({"tags": [{"key": "k", "value": ["x"]}]}, (None, None), (None, False), None),
        ({"pool": "pool-1"}, (None, None), (None, True), ()),
        ({"pool": {"name": "no id"}}, (None, None), (None, True), ()),
        ({"user": "alice"}, (None, None), (None, False), ()),
    ],
)
def test_owner_pool_and_tags_are_read_fail_closed(
    fields: dict[str, Any],
    owner: tuple[str | None, str | None],
    pool: tuple[Any, bool],
    tags: Any,
) -> None:
    listed = listed_notebook(PROJECT, {"id": "nb-1", **fields}, "NOTEBOOK")
    assert (listed.owner_id, listed.owner_name) == owner
    assert (listed.pool, listed.pool_unreadable) == pool
    assert listed.tags == tags


def test_the_old_api_shows_its_workspace_and_no_owner_pool_or_tags() -> None:
    listed = listed_devenviron(PROJECT, {"id": "DE-1", "workspace": {"id": "a" * 32}})
    assert (listed.workspace_id, listed.owner_id, listed.pool, listed.tags) == (
        "a" * 32,
        None,
        None,
        (),
    )


def test_what_the_rules_read_is_described_for_a_person() -> None:
    listed = listed_notebook(
        PROJECT,
        notebook(
            1,
            status="STOPPED",
            user={"id": "b" * 32, "name": "alice"},
            pool={"id": "pool-1a2b", "name": "v100"},
            tags=[{"key": "team", "value": "nlp"}],
            lease={"create_at": 1_700_000_000_000, "update_at": 1_700_086_400_000},
        ),
        "NOTEBOOK",
    )
    assert describe(listed) == {
        "listed_status": "STOPPED",
        "workspace_id": "0",
        "owner": {"id": "b" * 32, "name": "alice"},
        "created": "2023-11-14T22:13:20Z",
        "updated": "2023-11-15T22:13:20Z",
        "tags": [{"key": "team", "value": "nlp"}],
        "pool": {"id": "pool-1a2b", "name": "v100"},
    }
    bare = listed_notebook(PROJECT, {"id": "nb-2", "tags": "broken"}, "NOTEBOOK")
    assert describe(bare) == dict.fromkeys(
        ("listed_status", "workspace_id", "owner", "created", "updated", "tags", "pool")
    )


def test_a_listed_old_api_instance_carries_its_fields(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = de_instance(5, status="RUNNING")
    DevenvironApi([body]).install(mocked)

    [listed] = mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert (listed.instance_id, listed.name, listed.status) == (body["id"], "de-5", "RUNNING")
    assert (listed.created_ms, listed.updated_ms) == (T0 + 5, T0 + 6)
    assert (listed.feature, listed.billing) == (None, "postpaid")


@pytest.mark.parametrize(
    ("lease", "expected"),
    [
        # The SDK model and the API reference have the times inside `lease`: read first, so a
        # re-read carrying other top-level values agrees with the listing.
        ({"create_at": T0 + 1, "update_at": T0 + 2}, (T0 + 1, T0 + 2)),
        (None, (T0, T0 + 9)),
        ({}, (T0, T0 + 9)),
        # Seconds, not milliseconds: unusable in the lease, so the top level decides.
        ({"create_at": T0 // 1000, "update_at": "soon"}, (T0, T0 + 9)),
        ({"create_at": float(T0 + 1), "update_at": T0 + 0.5}, (T0 + 1, T0 + 9)),
        ({"create_at": True, "update_at": str(T0 + 2)}, (T0, T0 + 2)),
    ],
)
def test_notebook_times_prefer_the_lease_and_fall_back_to_the_top_level(
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    lease: dict[str, Any] | None,
    expected: tuple[int, int],
) -> None:
    body = {"id": "nb-1", "create_at": T0, "update_at": T0 + 9, "lease": lease}
    NotebookApi({"NOTEBOOK": [body]}).install(mocked)

    [listed] = mocked_client(fake_time).list_instances(PROJECT)

    assert (listed.created_ms, listed.updated_ms) == expected


def test_notebook_times_are_unknown_when_neither_place_has_them(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    NotebookApi({"NOTEBOOK": [{"id": "nb-1", "lease": "not an object"}]}).install(mocked)

    [listed] = mocked_client(fake_time).list_instances(PROJECT)

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

    [listed] = mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert (listed.created_ms, listed.updated_ms) == (expected, expected)


def test_feature_comes_from_the_instance_else_from_the_query(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    unlabelled = {"id": "free-1"}
    NotebookApi({"NOTEBOOK": [notebook(1, feature=None)], "DEFAULT": [unlabelled]}).install(mocked)

    listed = mocked_client(fake_time).list_instances(PROJECT)

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
        # A dedicated pool is billed whether the notebook exists or not, and DeleteNotebook has
        # no billing constraint: the notebook itself is no pre-paid resource.
        ({"pool": {"id": "pool-1", "name": "dedicated"}}, "postpaid"),
        ({"pool": "pool-1"}, "postpaid"),
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

    listed = mocked_client(fake_time, ApiGeneration.DEVENVIRON).list_instances(PROJECT)

    assert [i.billing for i in listed] == ["prepaid", "postpaid", "postpaid"]


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("2026-12-05T10:00:00Z", datetime(2026, 12, 5, 10, tzinfo=timezone.utc)),
        ("2026-12-05T18:00:00+08:00", datetime(2026, 12, 5, 10, tzinfo=timezone.utc)),
        ("2026-12-05T10:00:00", datetime(2026, 12, 5, 10, tzinfo=timezone.utc)),  # no zone: UTC
        ("last tuesday", None),
        (None, None),
        (1764928800, None),
    ],
)
def test_a_time_as_results_carry_it_is_read_back(text: object, read: datetime | None) -> None:
    assert from_iso(text) == read
