"""Instances as the API shows them: value types and parsers for times and billing. Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

Billing = Literal["prepaid", "postpaid"]

# Epoch milliseconds outside [1973-03-03, 2286-11-20] are not milliseconds: most likely seconds
# (or microseconds). Reading seconds as milliseconds would date an instance to 1970 and make it
# look ancient to an age policy, so such values count as unknown instead.
_MIN_EPOCH_MS = 100_000_000_000
_MAX_EPOCH_MS = 10_000_000_000_000


Tags = tuple[tuple[str, str], ...]
Pool = tuple[str, "str | None"]


@dataclass(frozen=True)
class ListedInstance:
    """One instance as a listing (or a re-read) showed it; None where a field is absent."""

    project_id: str
    instance_id: str
    name: str | None
    status: str | None
    created_ms: int | None  # epoch milliseconds, None when absent or implausible
    updated_ms: int | None
    feature: str | None  # notebook API only: NOTEBOOK (billed) or DEFAULT (free CodeLab)
    billing: Billing | None  # None: nothing in the object says how it is paid
    workspace_id: str | None = None
    owner_id: str | None = None
    owner_name: str | None = None
    # A dedicated pool's (id, name); None on the public pool (and when unreadable, which says).
    pool: Pool | None = None
    pool_unreadable: bool = False
    # (key, value) pairs, () when there are none; None when they are there but malformed.
    tags: Tags | None = ()


def listed_notebook(project_id: str, item: Mapping[str, Any], feature: str) -> ListedInstance:
    """A notebook-API instance (`NotebookResp`), listed under `feature`."""
    # The SDK model, the API reference and Terraform have the instance's times in `lease`; a
    # read of one instance may carry top-level times too, with other values. Listing and re-read
    # must compare the same thing: `lease` first, the top level only where it has none.
    # `image` has times of its own: never.
    lease = item.get("lease")
    lease = lease if isinstance(lease, dict) else {}
    created = epoch_ms(lease.get("create_at"))
    updated = epoch_ms(lease.get("update_at"))
    listed_feature = item.get("feature")
    user = item.get("user")
    user = user if isinstance(user, dict) else {}
    return ListedInstance(
        project_id=project_id,
        instance_id=item["id"],
        name=_text(item.get("name")),
        status=_text(item.get("status")),
        created_ms=created if created is not None else epoch_ms(item.get("create_at")),
        updated_ms=updated if updated is not None else epoch_ms(item.get("update_at")),
        # The server filtered by the feature asked for, so that is what the instance has.
        feature=listed_feature if isinstance(listed_feature, str) else feature,
        billing=parse_billing(item),
        workspace_id=_text(item.get("workspace_id")),
        owner_id=_text(user.get("id")) or _text(item.get("user_id")),
        owner_name=_text(user.get("name")),
        pool=_pool(item.get("pool")),
        pool_unreadable=_pool_unreadable(item.get("pool")),
        tags=_tags(item.get("tags")),
    )


def listed_devenviron(project_id: str, item: Mapping[str, Any]) -> ListedInstance:
    """An instance of the old devenviron API (which shows no tags).

    Its `user {id, name}` and `pool {id, name, type, owner}` (OTC historical_apis/
    devenviron_old_version/obtaining_development_environment_instances.rst, tables 10 and 19)
    are read into the fields the notebook API's fill, so rules on owners and pools mean the same.
    """
    workspace = item.get("workspace")
    user = item.get("user")
    user = user if isinstance(user, dict) else {}
    pool = item.get("pool")
    return ListedInstance(
        project_id=project_id,
        instance_id=item["id"],
        name=_text(item.get("name")),
        status=_text(item.get("status")),
        created_ms=epoch_ms(item.get("creation_timestamp")),
        updated_ms=epoch_ms(item.get("latest_update_timestamp")),
        feature=None,
        billing=parse_billing(item),
        workspace_id=_text(workspace.get("id")) if isinstance(workspace, dict) else None,
        owner_id=_text(user.get("id")),
        owner_name=_text(user.get("name")),
        pool=_devenviron_pool(pool),
        pool_unreadable=_pool_unreadable(pool) and not _public_devenviron_pool(pool),
    )


def describe(instance: ListedInstance) -> dict[str, Any]:
    """What the rules read of an instance, as a result shows it for a person to check."""
    owner = None
    if instance.owner_id is not None or instance.owner_name is not None:
        owner = {"id": instance.owner_id, "name": instance.owner_name}
    return {
        "listed_status": instance.status,
        "workspace_id": instance.workspace_id,
        "owner": owner,
        "created": _iso(instance.created_ms),
        "updated": _iso(instance.updated_ms),
        "tags": None
        if instance.tags is None
        else [{"key": k, "value": v} for k, v in instance.tags],
        "pool": None
        if instance.pool is None
        else {"id": instance.pool[0], "name": instance.pool[1]},
    }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def from_iso(text: object) -> datetime | None:
    """A time as results carry it (ISO 8601, `Z` for UTC; a time with no zone read as UTC), or
    None when it is not one. Python 3.10's fromisoformat does not read the `Z` itself."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _pool(value: Any) -> Pool | None:
    """A dedicated pool's (id, name); None for the public pool (no pool object)."""
    if isinstance(value, dict) and _text(value.get("id")) is not None:
        return (value["id"], _text(value.get("name")))
    return None


# The old API's pool `type`: "USER_DEFINED indicates a dedicated resource pool" (OTC, table 10).
_DEDICATED_POOL_TYPE = "USER_DEFINED"


def _devenviron_pool(value: Any) -> Pool | None:
    """A dedicated pool's (id, name), or None: no pool, or one whose type says it is not ours."""
    return None if _public_devenviron_pool(value) else _pool(value)


def _public_devenviron_pool(value: Any) -> bool:
    """A pool object whose (readable) type is not the dedicated one: the public pool."""
    kind = value.get("type") if isinstance(value, dict) else None
    return isinstance(kind, str) and bool(kind) and kind != _DEDICATED_POOL_TYPE


def _pool_unreadable(value: Any) -> bool:
    return value not in (None, {}) and _pool(value) is None


def _tags(value: Any) -> Tags | None:
    """(key, value) pairs; no tags at all is (); anything malformed is None (unreadable)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    pairs = []
    for tag in value:
        key = tag.get("key") if isinstance(tag, dict) else None
        text = tag.get("value") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not isinstance(text, (str, type(None))):
            return None
        pairs.append((key, text or ""))
    return tuple(pairs)


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds from an int, an integral float or a string of digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[0-9]{1,16}", value):
            return None
        value = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    elif not isinstance(value, int):
        return None
    return value if _MIN_EPOCH_MS <= value <= _MAX_EPOCH_MS else None


# Where an instance's billing mode may be written. The notebook API documents none: NotebookResp
# (SDKv3 huaweicloudsdkmodelarts/v1/model/notebook_resp.py) has only `feature` (DEFAULT = free
# CodeLab, NOTEBOOK = billed) and `billing_items` (STORAGE/COMPUTE/ALL: what is billed, not how),
# and the old devenviron instance (OTC historical_apis/devenviron_old_version/
# obtaining_development_environment_instances.rst) only `flavor_details.promo_type` (Free or
# NoDiscount). Huawei's billing pages say notebook compute on public pools is pay-per-use and
# that on a dedicated pool is paid with the pool (which may be yearly/monthly). The spellings
# below are the ones ModelArts uses on its other resources, so that a notebook growing one is
# read right:
# - `charging_mode` on DevServer (server_response.py): COMMON | POST_PAID | PRE_PAID;
# - `charging_info.charging_mode` (charging_info.py, DevServer/HyperInstance): the same values;
# - `os.modelarts/billing.mode` in pool `metadata.annotations` (pool_meta_annotations.py;
#   Terraform resource_huaweicloud_modelarts_resource_pool.go): "0" on demand, "1" yearly/monthly;
# - ECS-style `metadata.charging_mode` "0"/"1"/"2" (spot), `extend_params.charging_mode`
#   prePaid/postPaid (the old API's `spec.extend_params` is a free map);
# - `billing_mode`, `pay_type`, `charge_mode` and camelCase forms: names other Huawei Cloud APIs
#   use.
_BILLING_KEYS = (
    "charging_mode",
    "chargingMode",
    "billing_mode",
    "billingMode",
    "charge_mode",
    "chargeMode",
    "pay_type",
    "payType",
    "os.modelarts/billing.mode",
)
_BILLING_CONTAINERS = (
    ("charging_info",),
    ("chargingInfo",),
    ("billing_info",),
    ("extend_params",),
    ("spec", "extend_params"),
    ("metadata",),
    ("metadata", "annotations"),
    ("annotations",),
)
_PREPAID_WORDS = frozenset(
    {
        "prepaid",
        "1",
        "yearly",
        "monthly",
        "yearlymonthly",
        "period",
        "periodic",
        "包年包月",
        "包周期",
    }
)
_POSTPAID_WORDS = frozenset({"postpaid", "0", "ondemand", "payperuse", "按需", "按需计费"})


def parse_billing(instance: Mapping[str, Any]) -> Billing | None:
    """How an instance is paid, read fail-closed: any pre-paid sign wins; unsure is None.

    With no billing field at all a notebook is pay-per-use: the only mode the API documents for
    one. A notebook on a dedicated pool is no exception: the pool is billed whether the notebook
    exists or not, and deleting the notebook has no billing constraint (DeleteNotebook).
    """
    verdicts = [_billing_word(value) for value in _billing_values(instance)]
    if "prepaid" in verdicts:
        return "prepaid"
    # A field we know but a value we do not ("COMMON", spot "2", ...) leaves the mode unknown,
    # even when another field looks post-paid.
    if "unknown" in verdicts:
        return None
    return "postpaid"


_WHERE_BILLING_MAY_BE = frozenset(_BILLING_KEYS) | {route[0] for route in _BILLING_CONTAINERS}


def _billing_values(instance: Mapping[str, Any]) -> list[Any]:
    """Every value found under a known billing key, at the top level or in a known container."""
    if _WHERE_BILLING_MAY_BE.isdisjoint(instance):
        return []  # the usual notebook: nothing that could hold a billing mode
    containers: list[Mapping[str, Any]] = [instance]
    for route in _BILLING_CONTAINERS:
        current: Any = instance
        for step in route:
            current = current.get(step) if isinstance(current, Mapping) else None
        if isinstance(current, Mapping):
            containers.append(current)
    # A known key holding null still counts: it is a mode we cannot read, not the absence of one.
    return [c[key] for c in containers for key in _BILLING_KEYS if key in c]


def _billing_word(value: Any) -> Literal["prepaid", "postpaid", "unknown"]:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "unknown"
    # PRE_PAID, prePaid, pre-paid, "Yearly/Monthly", " 1 " all normalise to one word.
    word = re.sub(r"[\s_\-/]", "", str(value)).lower()
    if word in _PREPAID_WORDS:
        return "prepaid"
    if word in _POSTPAID_WORDS:
        return "postpaid"
    return "unknown"
