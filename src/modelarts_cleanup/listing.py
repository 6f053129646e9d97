"""Paging through a listing: every page, checked for consistency, within a bound; never partial.

A listing whose pages do not add up raises `InconsistentListing`; one longer than
`MAX_LIST_PAGES` pages, `ListingTooLarge`; a page that is not the documented shape,
`MalformedResponse`. A listing that raises is used for nothing (fail closed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .answers import MALFORMED_RESPONSE, parse_error
from .exceptions import ApiError
from .instances import ListedInstance, listed_devenviron, listed_notebook
from .transport import Transport
from .vocabulary import INCONSISTENT_LISTING, ApiGeneration, is_project_id

LISTING_TOO_LARGE = "ListingTooLarge"

# ListNotebooks accepts limit 10, 20 or 50 (SDK ListNotebooksRequest); Terraform's data source
# pages with 50 and `offset += len(page)`: the offset counts records, not pages.
NOTEBOOK_PAGE_SIZE = 50
# NOTEBOOK (the default) lists billed instances only; the free CodeLab ones need DEFAULT.
NOTEBOOK_FEATURES = ("NOTEBOOK", "DEFAULT")
# A safety bound on one listing (all features together): 100 pages are 5000 notebooks, far
# beyond any quota, so more means the server is not paging the way we think it does.
MAX_LIST_PAGES = 100

Convert = Callable[[Mapping[str, Any]], ListedInstance]


@dataclass(frozen=True)
class Collection:
    """Where one kind of listing lives and how its answer is shaped."""

    path: str
    query: Mapping[str, str]  # sent with every page; `offset` is added once it is needed
    items_key: str  # the array of instances
    total_key: str  # the total the pages announce
    convert: Convert


class Listing:
    """What one listing gathered so far: instances in order, ids seen, pages fetched."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.instances: list[ListedInstance] = []
        self.pages = 0
        self._ids: set[str] = set()

    def add(self, instance: ListedInstance) -> None:
        """Keep an instance unless it was seen already."""
        # Offset paging over a changing collection repeats records (a newer instance pushes
        # older ones to the next page), and one instance could show under two features.
        if instance.instance_id not in self._ids:
            self._ids.add(instance.instance_id)
            self.instances.append(instance)

    def collect(
        self, transport: Transport, collection: Collection, *, deadline: float | None
    ) -> None:
        """Fetch pages by record offset until the records seen reach the total announced."""
        seen = 0
        while True:
            params = dict(collection.query)
            if seen:
                params["offset"] = str(seen)
            page = self._page(transport, collection, params, deadline)
            seen += len(page.items)
            for item in page.items:
                self.add(collection.convert(item))
            if _done(page, seen):
                return

    def _page(
        self,
        transport: Transport,
        collection: Collection,
        params: Mapping[str, str],
        deadline: float | None,
    ) -> _Page:
        """One page, checked against the documented shape."""
        path = collection.path
        what = f"GET {path}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        if self.pages >= MAX_LIST_PAGES:
            raise ApiError(
                f"{what}: the listing did not end within {MAX_LIST_PAGES} pages; not fetching more",
                error_code=LISTING_TOO_LARGE,
                error_msg=f"more than {MAX_LIST_PAGES} pages",
                attempts=0,
                retryable=False,
            )
        self.pages += 1
        answer = transport.send(
            "GET", path, project_id=self.project_id, params=params, deadline=deadline
        )
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
        items_key, total_key = collection.items_key, collection.total_key
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
        elif not all(isinstance(i.get("id"), str) and i["id"].strip() for i in items):
            problem = "an instance has no `id`"
        if problem is not None or not isinstance(items, list) or not isinstance(total, int):
            raise ApiError(
                f"{what}: HTTP {reply.status} but {problem}",
                http_status=reply.status,
                error_code=MALFORMED_RESPONSE,
                error_msg=problem,
                request_id=reply.request_id,
                attempts=answer.attempts,
                retryable=True,
            )
        return _Page(what, items, total, reply.request_id)


@dataclass(frozen=True)
class _Page:
    """One checked page of a listing."""

    what: str  # "GET path?query", for messages
    items: list[Mapping[str, Any]]
    total: int
    request_id: str | None


def _done(page: _Page, seen: int) -> bool:
    """True once `seen` records reach the page's total; raise when the pages cannot be right."""
    if seen == page.total:
        return True
    if seen < page.total and page.items:
        return False
    # Deletions between pages shrink the total and shift records (one may be skipped, which the
    # next run repairs); more records than the total, or a page that stops short of it, is not
    # that: the listing cannot be trusted, and listing again is the remedy.
    detail = (
        f"{seen} records seen but the total is now {page.total}"
        if seen > page.total
        else f"an empty page after {seen} records, before the total of {page.total}"
    )
    raise ApiError(
        f"{page.what}: inconsistent listing: {detail}",
        error_code=INCONSISTENT_LISTING,
        error_msg=detail,
        request_id=page.request_id,
        attempts=1,
        retryable=True,
    )


def list_project(
    transport: Transport, api: ApiGeneration, project_id: str, *, deadline: float | None
) -> list[ListedInstance]:
    """Every instance of the project in that API generation, all pages, deduplicated."""
    if not is_project_id(project_id):
        raise ValueError("project_id must be 32 lowercase hexadecimal characters")
    listing = Listing(project_id)
    for collection in _collections(api, project_id):
        listing.collect(transport, collection, deadline=deadline)
    return listing.instances


def _collections(api: ApiGeneration, project_id: str) -> list[Collection]:
    if api is ApiGeneration.NOTEBOOK:
        return [
            Collection(
                f"/v1/{project_id}/notebooks",
                # Terraform's data source sends offset=0 too; the old API gets an offset only
                # once it needs one, so its first request is the documented one.
                {"limit": str(NOTEBOOK_PAGE_SIZE), "offset": "0", "feature": feature},
                "data",
                "total",
                functools.partial(listed_notebook, project_id, feature=feature),
            )
            for feature in NOTEBOOK_FEATURES
        ]
    # limit=0 means "all"; should an answer still hold fewer than total_count, the offset pages
    # on from where it stopped.
    return [
        Collection(
            f"/v1/{project_id}/demanager/instances",
            {"de_type": "Notebook", "limit": "0"},
            "instances",
            "total_count",
            functools.partial(listed_devenviron, project_id),
        )
    ]
