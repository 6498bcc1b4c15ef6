"""``GET /call/logs`` of the Twenty2 stand-in: the documented plain body, and two switchable paginations.

Twenty2 documents the endpoint as "a paginated list of past calls with optional filters" but names no
parameter and shows no pagination field (``shared/reference/twenty2-api.md`` §3.2). The default mode serves
what the docs show: ``{"success": true, "calls": [...]}`` with every call, newest first. The two other
modes (``/_sandbox/config`` ``logs_pagination``) are the common shapes a real deployment might turn out to
use, so a client can be proven to follow them:

- ``page``: ``?page=N&limit=M`` (1-based; ``limit`` defaults to ``logs_page_size``), answering a
  ``pagination`` object ``{page, limit, total, total_pages, has_more}``. Offset-based, as such APIs are: a
  call that finishes while a client pages shifts the later pages by one.
- ``cursor``: ``?cursor=…`` (opaque), answering ``next_cursor`` (null on the last page). The cursor names
  the last call served, so calls added meanwhile never shift the pages.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Literal

PaginationMode = Literal["none", "page", "cursor"]
PAGINATION_MODES: tuple[PaginationMode, ...] = ("none", "page", "cursor")


class BadLogsQuery(ValueError):
    """A page/limit/cursor the stand-in cannot read (answered 422 in the documented format B)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _encode_cursor(call_id: str) -> str:
    return base64.urlsafe_b64encode(call_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadLogsQuery("cursor", "Invalid cursor") from None


def _positive(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BadLogsQuery(name, f"{name} must be a positive integer")
    return int(raw)


def render_logs_page(
    entries: Sequence[dict[str, Any]], *, mode: PaginationMode, page_size: int, params: Mapping[str, str]
) -> dict[str, Any]:
    """The ``/call/logs`` body for ``entries`` (already rendered, newest first) in ``mode``.

    Raises ``BadLogsQuery`` for an unreadable page, limit or cursor."""
    if mode == "none":
        return {"success": True, "calls": list(entries)}
    if mode == "page":
        page = _positive(params, "page", 1)
        limit = min(_positive(params, "limit", page_size), 100)
        start = (page - 1) * limit
        chunk = list(entries[start : start + limit])
        total = len(entries)
        total_pages = max(1, -(-total // limit))
        return {
            "success": True,
            "calls": chunk,
            "pagination": {
                "page": page,
                "limit": limit,
                "total": total,
                "total_pages": total_pages,
                "has_more": page < total_pages,
            },
        }
    cursor = params.get("cursor")
    start = 0
    if cursor:
        after = _decode_cursor(cursor)
        ids = [e["call_id"] for e in entries]
        if after not in ids:
            raise BadLogsQuery("cursor", "Invalid cursor")
        start = ids.index(after) + 1
    chunk = list(entries[start : start + page_size])
    more = start + page_size < len(entries)
    return {
        "success": True,
        "calls": chunk,
        "next_cursor": _encode_cursor(chunk[-1]["call_id"]) if chunk and more else None,
    }
