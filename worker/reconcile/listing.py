"""Walk ``GET /call/logs``: the calls Twenty2 lists, page after page, through the client's own pagination.

The docs name no parameter (``shared/reference/twenty2-api.md`` §3.2): ``Twenty2Client.iter_call_logs``
sends the first request bare and follows whatever pagination the response itself carries (page numbers,
a cursor, a next URL), or none. Nothing here assumes an order; one rule only saves requests: once pages are
seen to come newest first (each page's newest call no newer than the previous page's oldest) and a whole
page ended before the window, the pages after it are older still and are not read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from worker.reconcile.decide import call_time
from worker.twenty2.models import CallInfo

if TYPE_CHECKING:
    from worker.twenty2.client import Twenty2Client


@dataclass
class Listing:
    """The calls listed (in listing order), the pages read (each one Twenty2 request), the list entries
    that were not valid calls, and whether the walk stopped early (window passed, or ``max_pages``)."""

    calls: list[CallInfo] = field(default_factory=list)
    pages: int = 0
    skipped: int = 0
    stopped: str = ""


def _bounds(calls: tuple[CallInfo, ...]) -> tuple[datetime | None, datetime | None]:
    times = [t for t in (call_time(c) for c in calls) if t is not None]
    return (min(times), max(times)) if times else (None, None)


def page_is_past_window(
    newest: datetime | None, previous_oldest: datetime | None, *, since: datetime, newest_first: bool
) -> bool:
    """Whether the pages after this one can only be older than the window (pure)."""
    return newest_first and previous_oldest is not None and newest is not None and newest < since


def list_calls(
    client: Twenty2Client,
    *,
    since: datetime | None,
    max_pages: int,
    on_page: Callable[[int, int], None] | None = None,
) -> Listing:
    """Every call ``GET /call/logs`` lists (at most ``max_pages`` pages). ``on_page(pages, calls)`` after each
    page (progress bars)."""
    listing = Listing()
    previous_oldest: datetime | None = None
    newest_first = True
    for page in client.iter_call_logs(max_pages=max_pages):
        listing.pages += 1
        listing.skipped += page.skipped
        listing.calls.extend(page.calls)
        if on_page is not None:
            on_page(listing.pages, len(listing.calls))
        oldest, newest = _bounds(page.calls)
        if previous_oldest is not None and newest is not None and newest > previous_oldest:
            newest_first = False
        if since is not None and page_is_past_window(newest, previous_oldest, since=since, newest_first=newest_first):
            listing.stopped = "window"
            break
        previous_oldest = oldest if oldest is not None else previous_oldest
    else:
        if listing.pages >= max_pages:
            listing.stopped = "max_pages"
    return listing
