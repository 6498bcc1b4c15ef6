"""Reading one page of ``GET /call/logs`` (pure): the calls it lists and how to ask for the next page.

Twenty2 calls the endpoint "a paginated list of past calls with optional filters" yet documents no
parameter and shows no pagination field: the example body is ``{"success": true, "calls": [...]}``
(``shared/reference/twenty2-api.md`` §3.2). So the first request carries no parameter, and a page is
followed only when the response itself says how, in one of the shapes such APIs use:

- a cursor: ``next_cursor`` / ``nextCursor`` (sent back as ``cursor``) or ``next_page_token`` (as
  ``page_token``);
- a next link: ``next`` / ``next_url`` / ``next_page_url`` (an absolute URL or a path);
- page numbers: ``page`` / ``current_page`` with ``has_more`` / ``has_next`` / ``hasMore`` true or
  ``total_pages`` / ``last_page`` beyond it (the ``limit`` / ``per_page`` / ``page_size`` the response
  echoes is sent again under the same name).

Each may sit at the top of the body or inside ``pagination`` / ``meta`` / ``page_info``. A top-level JSON
list is read as the calls of a single page. Entries that do not validate as a call are counted in
``skipped`` (and logged without their numbers), never fatal to the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from worker.errors import Stage, Twenty2BadResponse
from worker.twenty2.models import CallInfo

log = structlog.get_logger(__name__)

#: Where pagination fields may sit, besides the top level of the body.
PAGINATION_CONTAINERS = ("pagination", "meta", "page_info")

#: Cursor field in a response → the query parameter that carries it back.
CURSOR_FIELDS: Mapping[str, str] = {"next_cursor": "cursor", "nextCursor": "cursor", "next_page_token": "page_token"}

#: Fields holding the next page's URL (absolute or a path).
NEXT_LINK_FIELDS = ("next", "next_url", "next_page_url")

PAGE_FIELDS = ("page", "current_page")
MORE_FIELDS = ("has_more", "has_next", "hasMore")
LAST_PAGE_FIELDS = ("total_pages", "last_page")
SIZE_FIELDS = ("limit", "per_page", "page_size")
TOTAL_FIELDS = ("total", "total_count", "count")


@dataclass(frozen=True)
class NextPage:
    """How to ask for the next page: a URL (``url``, same origin as the API, checked by the client) or the
    documented path with ``params``."""

    params: dict[str, str] = field(default_factory=dict)
    url: str | None = None


@dataclass(frozen=True)
class CallLogPage:
    """One page of the call list, in the order Twenty2 served it."""

    calls: tuple[CallInfo, ...]
    skipped: int = 0
    next: NextPage | None = None
    total: int | None = None


def _fields(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The body and its pagination containers, top level first."""
    found: list[Mapping[str, Any]] = [body]
    found += [body[name] for name in PAGINATION_CONTAINERS if isinstance(body.get(name), Mapping)]
    return found


def _first(places: list[Mapping[str, Any]], names: tuple[str, ...]) -> Any:
    for place in places:
        for name in names:
            if place.get(name) not in (None, ""):
                return place[name]
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _next_page(places: list[Mapping[str, Any]], sent: Mapping[str, str]) -> NextPage | None:
    for place in places:
        for name, param in CURSOR_FIELDS.items():
            cursor = place.get(name)
            if isinstance(cursor, str) and cursor:
                return NextPage(params={**{k: v for k, v in sent.items() if k != "page"}, param: cursor})
    link = _first(places, NEXT_LINK_FIELDS)
    if isinstance(link, str) and (link.startswith(("https://", "http://", "/"))):
        return NextPage(url=link)
    page = _as_int(_first(places, PAGE_FIELDS))
    if page is None:
        return None
    more = _first(places, MORE_FIELDS)
    last = _as_int(_first(places, LAST_PAGE_FIELDS))
    if more is not True and not (last is not None and page < last):
        return None
    params = dict(sent)
    for place in places:
        for name in SIZE_FIELDS:
            size = _as_int(place.get(name))
            if size is not None:
                params.setdefault(name, str(size))
    params["page"] = str(page + 1)
    return NextPage(params=params)


def read_page(body: Any, *, sent: Mapping[str, str], status: int = 200) -> CallLogPage:
    """The calls listed in ``body`` (the decoded JSON of one ``/call/logs`` answer to the query ``sent``) and
    the next page, if the body names one. Raises ``Twenty2BadResponse`` for ``success: false`` or a body
    with no list of calls."""
    raw: Any
    places: list[Mapping[str, Any]]
    if isinstance(body, list):
        raw, places = body, []
    elif isinstance(body, Mapping):
        if body.get("success") is False:
            raise Twenty2BadResponse(
                f"HTTP {status} with success=false listing calls",
                stage=Stage.FETCH,
                code=str(body.get("code") or body.get("error") or "SUCCESS_FALSE")[:60],
                http_status=status,
            )
        raw = body.get("calls")
        if not isinstance(raw, list):
            raise Twenty2BadResponse(
                "call list body has no `calls` array",
                stage=Stage.FETCH,
                code="BAD_SHAPE",
                http_status=status,
            )
        places = _fields(body)
    else:
        raise Twenty2BadResponse(
            f"call list body is a JSON {type(body).__name__}",
            stage=Stage.FETCH,
            code="BAD_SHAPE",
            http_status=status,
        )
    calls: list[CallInfo] = []
    skipped = 0
    for index, entry in enumerate(raw):
        try:
            calls.append(CallInfo.model_validate(entry))
        except ValidationError as exc:
            skipped += 1
            log.warning(
                "twenty2.logs.entry_skipped",
                index=index,
                fields=sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}),
            )
    return CallLogPage(
        calls=tuple(calls),
        skipped=skipped,
        next=_next_page(places, sent) if places else None,
        total=_as_int(_first(places, TOTAL_FIELDS)) if places else None,
    )
