"""Listing the fleet: every workspace of a project, every page of each, concurrently; never partial.

One operation lists what discovery needs: the workspaces of the projects that need them
(ListWorkspace, every page), then each (project, workspace) with both notebook features: first
pages at once, then, since a first page gives the total, all the remaining pages at once, within
`concurrency` requests in flight. Each (project, workspace) succeeds or fails as a whole:
a listing whose pages do not add up fails with `InconsistentListing`, one longer than
`MAX_LIST_PAGES` pages with `ListingTooLarge`, a page that is not the documented shape with
`MalformedResponse`; a failed listing is used for nothing (fail closed).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from ..exceptions import ApiError
from ..vocabulary import INCONSISTENT_LISTING, WORKSPACE_GONE, ApiGeneration, is_project_id
from .answers import MALFORMED_RESPONSE, parse_error
from .instances import ListedInstance, listed_devenviron, listed_notebook
from .transport import Sender

LISTING_TOO_LARGE = "ListingTooLarge"
DEFAULT_WORKSPACE = "0"

# ListNotebooks/ListAllNotebooks accept limit 10, 20 or 50 (SDK ListNotebooksRequest);
# Terraform's data source pages with 50 and `offset += len(page)`: records, not pages.
NOTEBOOK_PAGE_SIZE = 50
# NOTEBOOK (the default) lists billed instances only; the free CodeLab ones need DEFAULT.
NOTEBOOK_FEATURES = ("NOTEBOOK", "DEFAULT")
# A safety bound on one workspace's listing (both features): 100 pages are 5000 notebooks.
MAX_LIST_PAGES = 100
# ListWorkspace: `offset` is the start page, `limit` its size, default 1000 (SDK).
WORKSPACE_PAGE_SIZE = 1000
MAX_WORKSPACE_PAGES = 10

Scope = Literal["all", "own"]
Convert = Callable[[Mapping[str, Any]], ListedInstance]
# (offset, total, items, "GET path?query", request ID) of one page.
_PageData = tuple[int, int, list[ListedInstance], str, "str | None"]


@dataclass(frozen=True)
class Collection:
    """One kind of listing: where it lives, what it is asked, how its answer is shaped."""

    path: str
    query: Mapping[str, str]  # sent with every page; `offset` is added where needed
    items_key: str  # the array of instances
    total_key: str  # the total the pages announce
    convert: Convert
    page_size: int | None  # None: the first answer holds everything it can (limit=0)


@dataclass
class _Progress:
    """One collection's pages as they arrive."""

    collection: Collection
    pages: dict[int, list[ListedInstance]] = field(default_factory=dict)  # offset -> instances
    totals: dict[int, int] = field(default_factory=dict)
    first: str = ""  # "GET path?query" of the first page, for messages
    request_id: str | None = None


@dataclass(frozen=True)
class WorkspaceListing:
    """One workspace's instances, or why they could not be listed."""

    project_id: str
    workspace_id: str
    instances: tuple[ListedInstance, ...] = ()
    error: ApiError | None = None


def collections(
    api: ApiGeneration, scope: Scope, project_id: str, workspace_id: str
) -> list[Collection]:
    """What listing one workspace of a project asks, per API generation and scope."""
    if not is_project_id(project_id):
        raise ValueError("project_id must be 32 lowercase hexadecimal characters")
    if api is ApiGeneration.NOTEBOOK:
        # ListNotebooks answers (read conservatively) the caller's own; ListAllNotebooks all.
        path = f"/v1/{project_id}/notebooks" + ("/all" if scope == "all" else "")
        return [
            Collection(
                path,
                {
                    "limit": str(NOTEBOOK_PAGE_SIZE),
                    "offset": "0",
                    "feature": feature,
                    "workspace_id": workspace_id,
                },
                "data",
                "total",
                functools.partial(listed_notebook, project_id, feature=feature),
                NOTEBOOK_PAGE_SIZE,
            )
            for feature in NOTEBOOK_FEATURES
        ]
    # limit=0 means "all"; should an answer still hold fewer than total_count, the offset pages
    # on from where it stopped. show_self defaults to true: the caller's own only.
    return [
        Collection(
            f"/v1/{project_id}/demanager/instances",
            {
                "de_type": "Notebook",
                "limit": "0",
                "workspace_id": workspace_id,
                "show_self": "false" if scope == "all" else "true",
            },
            "instances",
            "total_count",
            functools.partial(listed_devenviron, project_id),
            None,
        )
    ]


class FleetLister:
    """Lists workspaces and their instances, `concurrency` requests in flight at most."""

    def __init__(
        self,
        transport: Sender,
        api: ApiGeneration,
        *,
        scope: Scope,
        concurrency: int,
        deadline: float | None,
    ) -> None:
        self._transport = transport
        self._api = api
        self._scope = scope
        self._concurrency = max(1, concurrency)
        self._deadline = deadline
        # (project, workspace ID) -> the name ListWorkspace gave it; for people, never for rules.
        self._names: dict[tuple[str, str], str] = {}

    def workspaces(self, project_ids: Iterable[str]) -> dict[str, list[str] | ApiError]:
        """Every workspace of each project (the default one always among them), or the error."""
        projects = list(dict.fromkeys(project_ids))
        found: dict[str, list[str] | ApiError] = {}
        with self._pool(len(projects)) as pool:
            futures = {p: pool.submit(self._workspaces_of, p) for p in projects}
            for project, future in futures.items():
                found[project] = _outcome(future)
        return found

    def workspace_name(self, project_id: str, workspace_id: str) -> str | None:
        """The workspace's name, if `workspaces` listed it."""
        return self._names.get((project_id, workspace_id))

    def instances(self, pairs: Iterable[tuple[str, str]]) -> list[WorkspaceListing]:
        """Each (project, workspace) listed whole, in the order given, or with its error.

        A pair's first pages go out together; once all of them are in, their totals say how
        many pages the pair takes, and the rest go out together, unless that is more than
        MAX_LIST_PAGES (then none does).
        """
        wanted = list(dict.fromkeys(pairs))
        progress = {
            pair: [_Progress(c) for c in collections(self._api, self._scope, *pair)]
            for pair in wanted
        }
        asked = dict.fromkeys(wanted, 0)  # pages sent or queued, per pair
        first_pages_due = {pair: len(states) for pair, states in progress.items()}
        later: dict[tuple[str, str], list[tuple[_Progress, int]]] = {p: [] for p in wanted}
        failed: dict[tuple[str, str], ApiError] = {}
        running: dict[Future[_PageData], tuple[int, tuple[str, str], _Progress]] = {}
        sent = itertools.count()
        with self._pool(2 * len(wanted)) as pool:

            def fail(pair: tuple[str, str], error: ApiError) -> None:
                failed[pair] = error
                for future, (_, other, _) in list(running.items()):
                    if other == pair and future.cancel():
                        del running[future]  # never sent: nothing of it is needed now

            def fetch(pair: tuple[str, str], pages: Sequence[tuple[_Progress, int | None]]) -> None:
                if asked[pair] + len(pages) > MAX_LIST_PAGES:
                    state = pages[0][0]
                    fail(pair, _too_large(state.first, state.request_id))
                    return
                for state, offset in pages:
                    asked[pair] += 1
                    future = pool.submit(self._page, pair[0], state.collection, offset)
                    running[future] = (next(sent), pair, state)

            for pair, states in progress.items():
                fetch(pair, [(state, None) for state in states])
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                # In the order sent, so the first failure of a pair is the one reported.
                for future in sorted(done, key=lambda f: running[f][0]):
                    _, pair, state = running.pop(future)
                    if pair in failed:
                        continue  # its listing failed already: what arrives is of no use
                    first = not state.pages
                    try:
                        more = self._accept(state, future.result())
                    except ApiError as exc:
                        fail(pair, exc)
                        continue
                    except Exception as exc:  # noqa: BLE001  (one workspace's surprise stays its own)
                        fail(pair, _unexpected(exc))
                        continue
                    later[pair].extend((state, offset) for offset in more)
                    if first:
                        first_pages_due[pair] -= 1
                    if first_pages_due[pair] == 0 and later[pair]:
                        fetch(pair, later.pop(pair))
                        later[pair] = []
        return [
            WorkspaceListing(*pair, error=failed[pair])
            if pair in failed
            else self._assemble(pair, progress[pair])
            for pair in wanted
        ]

    def _pool(self, work: int) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            max_workers=max(1, min(self._concurrency, work)), thread_name_prefix="listing"
        )

    # -- workspaces -------------------------------------------------------------------------

    def _workspaces_of(self, project_id: str) -> list[str]:
        path = f"/v1/{project_id}/workspaces"
        ids: list[str] = []
        total: int | None = None
        for page in range(MAX_WORKSPACE_PAGES):
            params = {"offset": str(page), "limit": str(WORKSPACE_PAGE_SIZE)}
            what = f"GET {path}?offset={page}&limit={WORKSPACE_PAGE_SIZE}"
            answer = self._transport.send(
                "GET", path, project_id=project_id, params=params, deadline=self._deadline
            )
            items, page_total = _checked(answer, what, "workspaces", "total_count")
            count = (answer.reply.json_object() or {}).get("count")
            if not isinstance(count, int) or isinstance(count, bool) or count != len(items):
                raise _malformed(answer, what, "`count` is missing or not the number of entries")
            for item in items:
                workspace_id = item.get("id")
                if not isinstance(workspace_id, str) or not _plausible_workspace(workspace_id):
                    raise _malformed(answer, what, "a workspace has no usable `id`")
                ids.append(workspace_id)
                name = item.get("name")
                if isinstance(name, str) and name:
                    self._names[(project_id, workspace_id)] = name
            total = page_total if total is None else total
            if page_total != total or len(set(ids)) != len(ids) or len(ids) > total:
                raise _inconsistent(what, f"{len(ids)} workspaces seen, total now {page_total}")
            if len(ids) == total:
                # The default workspace exists in every project, listed or not.
                return ids if DEFAULT_WORKSPACE in ids else [DEFAULT_WORKSPACE, *ids]
            if not items:
                raise _inconsistent(what, f"an empty page after {len(ids)} of {total} workspaces")
        raise ApiError(
            f"GET {path}: more than {MAX_WORKSPACE_PAGES} pages of workspaces; not fetching more",
            error_code=LISTING_TOO_LARGE,
            error_msg=f"more than {MAX_WORKSPACE_PAGES} pages of workspaces",
            attempts=0,
        )

    # -- instances --------------------------------------------------------------------------

    def _page(self, project_id: str, collection: Collection, offset: int | None) -> _PageData:
        """(offset, total, items, "GET ...", request ID) of one page."""
        params = dict(collection.query)
        if offset is not None:
            params["offset"] = str(offset)
        what = f"GET {collection.path}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        try:
            answer = self._transport.send(
                "GET",
                collection.path,
                project_id=project_id,
                params=params,
                deadline=self._deadline,
            )
        except ApiError as exc:
            if exc.error_code == WORKSPACE_GONE:
                # Deleted (or being deleted) since it was named: its notebooks went with it.
                return offset or 0, 0, [], what, exc.request_id
            raise
        items, total = _checked(answer, what, collection.items_key, collection.total_key)
        if not all(isinstance(i.get("id"), str) and i["id"].strip() for i in items):
            raise _malformed(answer, what, "an instance has no `id`")
        # Read here, in the worker, while other requests wait on the network.
        instances = [collection.convert(item) for item in items]
        return offset or 0, total, instances, what, answer.reply.request_id

    def _accept(self, state: _Progress, page: _PageData) -> list[int]:
        """Record a page; the offsets still to fetch for its collection (after a first page)."""
        offset, total, items, what, request_id = page
        first = not state.pages
        state.pages[offset] = items
        state.totals[offset] = total
        if first:
            state.first, state.request_id = what, request_id
        size = state.collection.page_size
        if size is None:
            # The old API: everything at once, else on from where the answer stopped.
            seen = sum(len(p) for p in state.pages.values())
            if seen < total and items and total == state.totals[0]:
                return [seen]
            return []
        if not first:
            return []
        return [n * size for n in range(1, math.ceil(total / size))]

    def _assemble(self, pair: tuple[str, str], states: Sequence[_Progress]) -> WorkspaceListing:
        instances: dict[str, ListedInstance] = {}
        try:
            for state in states:
                for instance in _consistent(state, pair[1]):
                    # One instance listed under both features counts once.
                    instances.setdefault(instance.instance_id, instance)
        except ApiError as exc:
            return WorkspaceListing(*pair, error=exc)
        return WorkspaceListing(*pair, instances=tuple(instances.values()))


def _consistent(state: _Progress, workspace_id: str) -> list[ListedInstance]:
    """The collection's records in order, once the pages are shown to add up."""
    totals = set(state.totals.values())
    items = [item for offset in sorted(state.pages) for item in state.pages[offset]]
    total = state.totals.get(0, 0)
    size = state.collection.page_size
    problem = None
    if len(totals) != 1:
        problem = f"the total changed between pages ({sorted(totals)}): the fleet changed"
    elif len(items) != total:
        problem = f"{len(items)} records on the pages, but the total is {total}"
    elif size is not None and any(
        len(page) != size for offset, page in state.pages.items() if offset + size < total
    ):
        problem = "a page before the last one is not full"
    elif len({item.instance_id for item in items}) != len(items):
        problem = "a record is on two pages: the fleet changed while it was listed"
    else:
        stray = [i for i in items if i.workspace_id not in (None, workspace_id)]
        if stray:
            problem = (
                f"asked for workspace {workspace_id}, the answer holds instances of another: "
                "the workspace was not applied"
            )
    if problem is not None:
        raise _inconsistent(state.first, problem, state.request_id)
    return items


def _checked(
    answer: Any, what: str, items_key: str, total_key: str
) -> tuple[list[dict[str, Any]], int]:
    """(items, total) of a page, checked against the documented shape."""
    reply = answer.reply
    if answer.absent:
        # "No such instance" makes no sense for a collection: the endpoint or the API
        # generation is wrong. Never read it as an empty project.
        code, msg = parse_error(reply)
        raise ApiError(
            f"{what}: HTTP {reply.status}" + (f" {code}" if code else "") + ": the "
            "listing itself was not found (check the endpoint and the API generation)",
            http_status=reply.status,
            error_code=code,
            error_msg=msg,
            request_id=reply.request_id,
            attempts=answer.attempts,
            retryable=False,
        )
    body = reply.json_object()
    items = body.get(items_key) if body is not None else None
    total = body.get(total_key) if body is not None else None
    problem = None
    if body is None:
        problem = "the page is not a JSON object"
    elif not isinstance(items, list):
        problem = f"`{items_key}` is missing or not an array"
    elif not isinstance(total, int) or isinstance(total, bool) or total < 0:
        problem = f"`{total_key}` is missing or not a non-negative integer"
    elif not all(isinstance(item, dict) for item in items):
        problem = f"`{items_key}` holds something that is not an object"
    if problem is not None or not isinstance(items, list) or not isinstance(total, int):
        raise _malformed(answer, what, problem or "")
    return items, total


def _malformed(answer: Any, what: str, problem: str) -> ApiError:
    return ApiError(
        f"{what}: HTTP {answer.reply.status} but {problem}",
        http_status=answer.reply.status,
        error_code=MALFORMED_RESPONSE,
        error_msg=problem,
        request_id=answer.reply.request_id,
        attempts=answer.attempts,
        retryable=True,
    )


def _too_large(what: str, request_id: str | None) -> ApiError:
    # 100 pages are 5000 notebooks in one workspace, far beyond any quota: the server is not
    # paging the way we think it does.
    return ApiError(
        f"{what}: the listing would take more than {MAX_LIST_PAGES} pages; not fetching them",
        error_code=LISTING_TOO_LARGE,
        error_msg=f"more than {MAX_LIST_PAGES} pages",
        request_id=request_id,
        attempts=0,
    )


def _inconsistent(what: str, detail: str, request_id: str | None = None) -> ApiError:
    # Listing again is the remedy: the next run does.
    return ApiError(
        f"{what}: inconsistent listing: {detail}",
        error_code=INCONSISTENT_LISTING,
        error_msg=detail,
        request_id=request_id,
        attempts=1,
        retryable=True,
    )


def _plausible_workspace(workspace_id: str) -> bool:
    return 0 < len(workspace_id) <= 64 and all(c.isalnum() or c in "-_" for c in workspace_id)


def _outcome(future: Future[list[str]]) -> list[str] | ApiError:
    try:
        return future.result()
    except ApiError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001  (one project's surprise must not stop the others)
        return _unexpected(exc)


def _unexpected(exc: Exception) -> ApiError:
    # Only the type: an unexpected exception's text could hold a URL or header.
    return ApiError("unexpected error", error_code="UnexpectedError", error_msg=type(exc).__name__)
