"""Walking ``GET /call/logs`` pages (``worker.reconcile.listing``): every page, unless the pages are seen to
come newest first and one ended entirely before the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from worker.reconcile.listing import list_calls
from worker.twenty2.logs import CallLogPage
from worker.twenty2.models import CallInfo

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def page(*hours_ago: float) -> CallLogPage:
    calls = tuple(
        CallInfo(call_id=f"call_{int(h * 10):04d}", status="completed", ended_at=NOW - timedelta(hours=h))
        for h in hours_ago
    )
    return CallLogPage(calls=calls)


class Pages:
    def __init__(self, *pages: CallLogPage) -> None:
        self.pages = pages
        self.served = 0

    def iter_call_logs(self, *, max_pages: int = 1000) -> Iterator[CallLogPage]:
        for p in self.pages[:max_pages]:
            self.served += 1
            yield p


def test_newest_first_pages_stop_after_a_page_before_the_window() -> None:
    client = Pages(page(1, 2), page(3, 50), page(60, 70), page(80, 90))
    listing = list_calls(client, since=NOW - timedelta(hours=48), max_pages=10)  # type: ignore[arg-type]
    assert client.served == 3 and listing.stopped == "window" and len(listing.calls) == 6


def test_pages_in_another_order_are_all_read() -> None:
    client = Pages(page(80, 90), page(60, 70), page(1, 2))
    listing = list_calls(client, since=NOW - timedelta(hours=48), max_pages=10)  # type: ignore[arg-type]
    assert client.served == 3 and listing.stopped == "" and len(listing.calls) == 6


def test_a_first_page_entirely_old_does_not_stop_the_walk() -> None:
    client = Pages(page(60, 70), page(80, 90))
    listing = list_calls(client, since=NOW - timedelta(hours=48), max_pages=10)  # type: ignore[arg-type]
    assert client.served == 2 and len(listing.calls) == 4


def test_max_pages_is_reported() -> None:
    client = Pages(page(1), page(2), page(3))
    listing = list_calls(client, since=None, max_pages=2)  # type: ignore[arg-type]
    assert client.served == 2 and listing.stopped == "max_pages" and listing.pages == 2
