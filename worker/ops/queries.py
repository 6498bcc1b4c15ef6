"""The calls table: filter ledger records (state, error code, stage, source, time range), search them (call id,
Salesforce id, last four digits of the number), sort by time and page.

The state sets give ids by time without reading records; records are read (pipelined, in chunks) only when a
filter or search needs their fields.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

from worker.ledger import Ledger, Record, State

CHUNK = 500
#: At most this many ids are looked at per query (the table pages; bulk selections say when they hit it).
SCAN_CAP = 200_000
PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class CallFilter:
    states: tuple[State, ...] = ()
    code: str = ""
    stage: str = ""
    source: str = ""
    since: float | None = None
    until: float | None = None
    q: str = ""
    newest_first: bool = True
    page: int = 1
    per_page: int = 50

    @property
    def needs_records(self) -> bool:
        return bool(self.code or self.stage or self.source or self.q)

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (for links: paging, sorting, "replay all matching")."""
        params: dict[str, Any] = {
            "state": ",".join(s.value for s in self.states),
            "code": self.code,
            "stage": self.stage,
            "source": self.source,
            "since": "" if self.since is None else repr(self.since),
            "until": "" if self.until is None else repr(self.until),
            "q": self.q,
            "order": "new" if self.newest_first else "old",
            "per_page": str(self.per_page),
        }
        return {k: v for k, v in params.items() if v}

    def with_page(self, page: int) -> CallFilter:
        return replace(self, page=page)


@dataclass
class CallPage:
    records: list[Record]
    total: int
    filter: CallFilter
    capped: bool = False
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.filter.per_page))


def _ids(ledger: Ledger, f: CallFilter) -> Iterator[tuple[float, str]]:
    """(updated_at, id) of the filter's states within its time range, merged in the asked order."""
    high = "+inf" if f.until is None else f.until
    low = "-inf" if f.since is None else f.since
    streams = []
    for state in f.states or tuple(State):
        key = ledger.state_key(state)
        if f.newest_first:
            raw = cast(list[Any], ledger.r.zrevrangebyscore(key, high, low, withscores=True))
            streams.append([(-score, _s(member)) for member, score in raw])
        else:
            raw = cast(list[Any], ledger.r.zrangebyscore(key, low, high, withscores=True))
            streams.append([(score, _s(member)) for member, score in raw])
    for score, member in heapq.merge(*streams):
        yield (-score if f.newest_first else score), member


def matches(record: Record, f: CallFilter) -> bool:
    error = record.last_error or {}
    if f.code and f.code.lower() != str(error.get("code") or "").lower():
        return False
    if f.stage and f.stage != str(error.get("stage") or ""):
        return False
    if f.source and f.source != record.source:
        return False
    if f.q:
        q = f.q.strip()
        in_ids = any(
            q.lower() == v.lower() or (len(q) >= 15 and v.startswith(q)) for v in record.salesforce_ids.values()
        )
        digits = q.isdigit() and len(q) == 4 and record.phone.endswith(q)
        if not (q.lower() in record.call_id.lower() or in_ids or digits):
            return False
    return True


def find_calls(ledger: Ledger, f: CallFilter) -> CallPage:
    """One page of the records matching ``f``, and how many match in all."""
    start = (max(f.page, 1) - 1) * f.per_page
    end = start + f.per_page
    if not f.needs_records:
        ids = [call_id for _, call_id in _ids(ledger, f)]
        capped = len(ids) > SCAN_CAP
        return CallPage(ledger.get_many(ids[start:end]), min(len(ids), SCAN_CAP), f, capped)
    page: list[Record] = []
    total, capped, chunk = 0, False, []
    for seen, (_, call_id) in enumerate(_ids(ledger, f)):
        if seen >= SCAN_CAP:
            capped = True
            break
        chunk.append(call_id)
        if len(chunk) == CHUNK:
            total = _take(ledger, chunk, f, page, total, start, end)
            chunk = []
    if chunk:
        total = _take(ledger, chunk, f, page, total, start, end)
    return CallPage(page, total, f, capped)


def matching_ids(ledger: Ledger, f: CallFilter) -> list[str]:
    """Every id matching ``f`` (no paging), for "replay all that match"."""
    every = replace(f, page=1, per_page=SCAN_CAP)
    return [r.call_id for r in find_calls(ledger, every).records]


def _take(ledger: Ledger, chunk: list[str], f: CallFilter, page: list[Record], total: int, start: int, end: int) -> int:
    for record in ledger.get_many(chunk):
        if matches(record, f):
            if start <= total < end:
                page.append(record)
            total += 1
    return total


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
