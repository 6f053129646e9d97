"""Two ways to delete a batch: our function, and the seed's (the official SDK, one at a time)."""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from benchmarks.fake_process import ACCESS_KEY, PROJECT_ID, SECRET_KEY, FakeProcess, Served
from modelarts_cleanup.cloud.signer import SdkHmacSha256Auth
from modelarts_cleanup.entry import run_function


@dataclass(frozen=True)
class Run:
    """One timed batch, as the client and the endpoint saw it."""

    targets: int
    wall: float  # seconds, the whole invocation (setup included)
    cpu: float  # the client process's CPU seconds, every thread
    deleted: int
    failed: int
    most_attempts: int  # the most DELETE requests one target needed
    served: Served
    confirmed: int = 0  # deletions seen gone afterwards (MODELARTS_CLEANUP_CONFIRM_SECONDS)

    def check_clean(self, who: str) -> None:
        """Refuse a run whose numbers would mean nothing: every target deleted, every answer 200."""
        clean = (
            self.deleted == self.targets
            and self.failed == 0
            and self.served.statuses == {200: self.targets}
            and self.served.remaining == 0
        )
        if not clean:
            raise RuntimeError(
                f"{who}: {self.deleted}/{self.targets} deleted, {self.failed} failed, endpoint "
                f"answered {self.served.statuses}, {self.served.remaining} instances left"
            )


def function_environment(
    url: str,
    *,
    concurrency: int,
    max_attempts: int = 5,
    protect_tags: str = "[]",
    confirm_seconds: float = 0,
) -> dict[str, str]:
    """The settings a deployed function would have, pointed at the local endpoint.

    Protect tags off by default: named targets straight to DELETE, as the figures have always
    measured; `protect_tags=""` is the default guard (a read before each DELETE). Deletions are
    not confirmed unless asked: the SDK contender sends only the DELETEs, and the comparison is
    of the same requests. `confirmation` measures what confirming costs.
    """
    return {
        "MODELARTS_CLEANUP_PROTECT_TAGS": protect_tags,
        "MODELARTS_CLEANUP_CONFIRM_SECONDS": f"{confirm_seconds:g}",
        "MODELARTS_CLEANUP_ENDPOINT": url,
        "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
        "HUAWEICLOUD_SDK_AK": ACCESS_KEY,
        "HUAWEICLOUD_SDK_SK": SECRET_KEY,
        "MODELARTS_CLEANUP_MAX_DELETIONS": "5000",
        "MODELARTS_CLEANUP_CONCURRENCY": str(concurrency),
        "MODELARTS_CLEANUP_MAX_ATTEMPTS": str(max_attempts),
    }


def event_for(ids: Sequence[str]) -> dict[str, object]:
    """The canonical payload naming these instances."""
    return {"targets": [{"project_id": PROJECT_ID, "instance_id": i} for i in ids]}


def run_ours(
    fake: FakeProcess,
    url: str,
    ids: Sequence[str],
    *,
    concurrency: int,
    max_attempts: int = 5,
    protect_tags: str = "[]",
    confirm_seconds: float = 0,
) -> Run:
    """Our function, invoked as FunctionGraph would; logs go where stdout would, formatted."""
    environ = function_environment(
        url,
        concurrency=concurrency,
        max_attempts=max_attempts,
        protect_tags=protect_tags,
        confirm_seconds=confirm_seconds,
    )
    event = event_for(ids)
    with open(os.devnull, "w", encoding="utf-8") as log_stream:
        fake.served()
        cpu, started = time.process_time(), time.perf_counter()
        report = run_function(event, None, environ=environ, log_stream=log_stream)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = report["counts"]
    return Run(
        targets=len(ids),
        wall=wall,
        cpu=cpu,
        deleted=counts["deleted"],
        failed=counts["failed"] + counts["not_attempted"],
        most_attempts=max((r["attempts"] for r in report["results"]), default=0),
        served=fake.served(),
        confirmed=report["deletions_confirmed"],
    )


def run_sdk(fake: FakeProcess, url: str, ids: Sequence[str]) -> Run:
    """The seed's way: build the official client, then DeleteNotebook for each ID in turn."""
    # Imported here: the SDK costs seconds to import and is a bench-only dependency.
    from huaweicloudsdkcore.auth.credentials import (  # type: ignore[import-untyped]
        BasicCredentials,
    )
    from huaweicloudsdkmodelarts.v1 import (  # type: ignore[import-untyped]
        DeleteNotebookRequest,
        ModelArtsClient,
    )

    deleted = failed = 0
    fake.served()
    cpu, started = time.process_time(), time.perf_counter()
    client = (
        ModelArtsClient.new_builder()
        .with_credentials(BasicCredentials(ACCESS_KEY, SECRET_KEY, PROJECT_ID))
        .with_endpoints([url])
        .build()
    )
    for instance_id in ids:
        if _sdk_delete(client, DeleteNotebookRequest(id=instance_id)):
            deleted += 1
        else:
            failed += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.get_http_client().close()
    return Run(
        targets=len(ids),
        wall=wall,
        cpu=cpu,
        deleted=deleted,
        failed=failed,
        most_attempts=1,
        served=fake.served(),
    )


def _sdk_delete(client: Any, request: Any) -> bool:
    """One SDK call; the SDK raises for any error status."""
    from huaweicloudsdkcore.exceptions.exceptions import (  # type: ignore[import-untyped]
        SdkException,
    )

    try:
        return bool(client.delete_notebook(request).status_code == 200)
    except SdkException:
        return False


def run_floor(fake: FakeProcess, url: str, ids: Sequence[str], *, concurrency: int) -> Run:
    """No client at all: requests signed in advance, replayed over raw keep-alive sockets.

    What the endpoint and loopback allow at this concurrency; the gap between this and the limit
    belongs to the test rig, not to any client.
    """
    auth = SdkHmacSha256Auth(ACCESS_KEY, SECRET_KEY)
    signed = []
    for instance_id in ids:
        request = requests.Request(
            "DELETE",
            f"{url}/v1/{PROJECT_ID}/notebooks/{instance_id}",
            headers={"X-Project-Id": PROJECT_ID},
        ).prepare()
        auth(request)
        signed.append((urlsplit(request.url).path, dict(request.headers)))
    sockets = _RawSockets(url)

    def send(item: tuple[str, dict[str, str]]) -> int:
        return sockets.send("DELETE", item)

    fake.served()
    cpu, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        statuses = list(pool.map(send, signed))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    sockets.close()
    deleted = statuses.count(200)
    return Run(
        targets=len(ids),
        wall=wall,
        cpu=cpu,
        deleted=deleted,
        failed=len(ids) - deleted,
        most_attempts=1,
        served=fake.served(),
    )


def run_fleet_floor(url: str, lists: Sequence[tuple[str, str, int]], *, concurrency: int) -> float:
    """A fleet's listing with no client at all; returns its wall seconds.

    The same requests `plan` sends (the workspaces' page, then every page of every list),
    signed in advance and sent over raw keep-alive sockets in the order a listing can send them:
    the workspaces; every list's first page; each list's other pages once its first is in. No
    answer is parsed. What the endpoint and loopback allow: the gap between this and the limit
    belongs to the test rig.
    """
    auth = SdkHmacSha256Auth(ACCESS_KEY, SECRET_KEY)

    def signed(path: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        request = requests.Request(
            "GET", f"{url}{path}", params=query, headers={"X-Project-Id": PROJECT_ID}
        ).prepare()
        auth(request)
        split = urlsplit(str(request.url))
        return f"{split.path}?{split.query}", dict(request.headers)

    def page(workspace: str, feature: str, offset: int) -> tuple[str, dict[str, str]]:
        # The query as the function sends it, key for key in the same order.
        query = {"limit": "50", "offset": str(offset), "feature": feature}
        return signed(f"/v1/{PROJECT_ID}/notebooks/all", {**query, "workspace_id": workspace})

    workspaces = signed(f"/v1/{PROJECT_ID}/workspaces", {"offset": "0", "limit": "1000"})
    lists_pages = [
        (page(w, f, 0), [page(w, f, offset) for offset in range(50, count, 50)])
        for w, f, count in lists
    ]
    sockets = _RawSockets(url)

    def send(item: tuple[str, dict[str, str]]) -> None:
        status = sockets.send("GET", item)
        if status != 200:
            raise RuntimeError(f"fleet floor: {item[0]} answered {status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pool.submit(send, workspaces).result()
        firsts: dict[Future[None], list[tuple[str, dict[str, str]]]] = {
            pool.submit(send, first): rest for first, rest in lists_pages
        }
        rest: list[Future[None]] = []
        for done in as_completed(firsts):
            done.result()
            rest.extend(pool.submit(send, item) for item in firsts[done])
        for future in rest:
            future.result()
    wall = time.perf_counter() - started
    sockets.close()
    return wall


class _RawSockets:
    """One raw keep-alive connection per thread, to send requests signed in advance."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "", parts.port
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []

    def send(self, method: str, item: tuple[str, dict[str, str]]) -> int:
        """Send one (target, headers) request; its status, the body read and dropped."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port)
            self._local.connection = connection
            self._opened.append(connection)
        connection.request(method, item[0], headers=item[1])
        response = connection.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        for connection in self._opened:
            connection.close()
