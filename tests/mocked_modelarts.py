"""ModelArts mocked with `responses` for the client's unit tests: the client, URLs and bodies.

`mocked_client` wires a real `ModelArtsClient` to a fake clock and to the `mocked` fixture's
`responses`; `NotebookApi` and `DevenvironApi` answer list requests the way the service does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

from modelarts_cleanup.cloud.admission import Admission
from modelarts_cleanup.cloud.client import ModelArtsClient
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.transport import RetryPolicy, Timeouts, Transport
from modelarts_cleanup.exceptions import ApiError
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.support import FakeTime

ENDPOINT = "https://modelarts.example.invalid"
PROJECT = "0123456789abcdef0123456789abcdef"
INSTANCE = "3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b"
DE_INSTANCE = "DE-" + INSTANCE
NOTEBOOK_URL = f"{ENDPOINT}/v1/{PROJECT}/notebooks/{INSTANCE}"
DEVENVIRON_URL = f"{ENDPOINT}/v1/{PROJECT}/demanager/instances/{DE_INSTANCE}"
NOTEBOOKS_URL = f"{ENDPOINT}/v1/{PROJECT}/notebooks"
# What a selector lists by default: every user's notebooks (ListAllNotebooks).
ALL_NOTEBOOKS_URL = f"{NOTEBOOKS_URL}/all"
INSTANCES_URL = f"{ENDPOINT}/v1/{PROJECT}/demanager/instances"
SECRET = "s3cr3t-token-never-shown"
# 2023-11-14T22:13:20Z in epoch milliseconds: a plausible creation time.
T0 = 1_700_000_000_000

Instance = dict[str, Any]
# What a `responses` callback returns: status, headers, body.
CallbackReply = tuple[int, dict[str, str], str]


class TokenAuth(requests.auth.AuthBase):
    """Stands in for the signer: adds a secret header that must never leak into errors."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = SECRET
        return r


def mocked_client(
    fake_time: FakeTime,
    api: ApiGeneration = ApiGeneration.NOTEBOOK,
    *,
    retry: RetryPolicy | None = None,
    jitter: Callable[[], float] = lambda: 0.5,
    wall_clock: Callable[[], float] = lambda: 0.0,
    endpoint: str = ENDPOINT,
    admission: Admission | None = None,
) -> ModelArtsClient:
    """A client whose sleeps move `fake_time` and whose jitter and wall clock are fixed."""
    return ModelArtsClient(
        Transport(
            session=new_session(4, auth=TokenAuth()),
            endpoint=endpoint,
            retry=retry or RetryPolicy(),
            timeouts=Timeouts(connect=5.0, read=30.0),
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            jitter=jitter,
            wall_clock=wall_clock,
            admission=admission,
        ),
        api=api,
    )


def error_body(code: str, msg: str = "some message") -> str:
    return json.dumps({"error_code": code, "error_msg": msg})


def error_reply(status: int, code: str, msg: str = "some message") -> CallbackReply:
    return status, {}, error_body(code, msg)


def assert_no_secret(err: ApiError) -> None:
    texts = [str(err), err.error_msg or "", err.error_code or "", repr(err)]
    assert all(SECRET not in t for t in texts)


# -- listing -------------------------------------------------------------------------------


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
        "lease": {"create_at": T0 + n, "update_at": T0 + n + 1, "enable": True},
        "billing_items": ["ALL"],
        "workspace_id": "0",
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


class NotebookApi:
    """Answers ListNotebooks like the service: per feature, `limit` records from `offset`.

    `replies` answers the n-th request (1-based) with something else; `before` runs before each
    request is answered (to change the collection or the clock between pages).
    """

    def __init__(self, by_feature: Mapping[str, list[Instance]] | None = None) -> None:
        self.by_feature = {k: list(v) for k, v in (by_feature or {}).items()}
        self.replies: dict[int, CallbackReply] = {}
        # Answers for one page, (feature, offset), used up in order: a page failing n times.
        self.page_replies: dict[tuple[str, int], list[CallbackReply]] = {}
        self.before: Callable[[int], None] = lambda n: None
        self.queries: list[dict[str, str]] = []
        self.project_headers: list[str | None] = []
        self.served: list[list[str]] = []  # the ids each normal page held

    def __call__(self, request: requests.PreparedRequest) -> CallbackReply:
        self.queries.append(sent_query(request.url or ""))
        self.project_headers.append(request.headers.get("X-Project-Id"))
        n = len(self.queries)
        self.before(n)
        if n in self.replies:
            return self.replies[n]
        query = self.queries[-1]
        limit, offset = int(query["limit"]), int(query["offset"])
        queued = self.page_replies.get((query["feature"], offset))
        if queued:
            return queued.pop(0)
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

    def install(self, mocked: responses.RequestsMock, url: str = ALL_NOTEBOOKS_URL) -> NotebookApi:
        mocked.add_callback(responses.GET, re.compile(re.escape(url) + r"\?"), self)
        return self


class DevenvironApi:
    """Answers the old list API; `per_answer` caps an answer below `limit=0`'s "everything"."""

    def __init__(self, records: list[Instance], per_answer: int | None = None) -> None:
        self.records = list(records)
        self.per_answer = per_answer
        self.replies: dict[int, CallbackReply] = {}
        self.total: int | None = None  # announce this instead of the true count
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: requests.PreparedRequest) -> CallbackReply:
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
