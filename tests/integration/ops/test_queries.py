"""The calls table's query against a real Redis ledger: each filter, the search, paging and both orders."""

from __future__ import annotations

import time

import pytest
import redis

from worker.errors import PermanentError, SalesforceUnavailable, Twenty2Unavailable
from worker.ledger import Ledger, State
from worker.ops.queries import CallFilter, find_calls, matching_ids


@pytest.fixture
def ledger(redis_url: str) -> Ledger:
    ledger = Ledger(redis.Redis.from_url(redis_url))
    for n in range(12):
        call_id = f"call_query{n:06d}"
        ledger.accept(call_id, source="webhook" if n % 2 else "backfill")
        ledger.start(call_id)
        phone = f"+9198765{n:05d}"
        if n < 6:
            ledger.synced(call_id, salesforce_ids={"callTask": f"00T5g00000000{n:02d}AAA"}, summary="", phone=phone)
        elif n < 9:
            ledger.failed(call_id, error=PermanentError("bad value", code="INVALID_FIELD"), phone=phone)
        else:
            error = Twenty2Unavailable("down", stage="fetch", code="HTTP_503") if n == 9 else SalesforceUnavailable("x")
            ledger.failed(call_id, error=error, phone=phone)
        time.sleep(0.002)  # distinct update times
    return ledger


def ids(ledger: Ledger, **f: object) -> list[str]:
    return [r.call_id for r in find_calls(ledger, CallFilter(**f)).records]  # type: ignore[arg-type]


def test_each_filter(ledger: Ledger) -> None:
    assert len(ids(ledger, states=(State.FAILED,))) == 6
    assert ids(ledger, code="INVALID_FIELD") == ["call_query000008", "call_query000007", "call_query000006"]
    assert ids(ledger, stage="fetch") == ["call_query000009"]
    assert ids(ledger, source="backfill", states=(State.FAILED,)) == [
        "call_query000010",
        "call_query000008",
        "call_query000006",
    ]
    middle = ledger.get("call_query000005")
    assert middle is not None
    assert ids(ledger, until=middle.updated_at)[0] == "call_query000005"
    assert ids(ledger, since=middle.updated_at)[-1] == "call_query000005"


def test_search_by_call_id_salesforce_id_and_last_four_digits(ledger: Ledger) -> None:
    assert ids(ledger, q="call_query000003") == ["call_query000003"]
    assert ids(ledger, q="00T5g0000000004AAA") == ["call_query000004"]
    assert ids(ledger, q="0011") == ["call_query000011"]
    assert ids(ledger, q="9999") == []
    record = ledger.get("call_query000011")
    assert record is not None and record.phone == "••••0011"


def test_paging_and_order(ledger: Ledger) -> None:
    first = find_calls(ledger, CallFilter(per_page=5))
    assert first.total == 12 and first.pages == 3 and len(first.records) == 5
    third = find_calls(ledger, CallFilter(per_page=5, page=3))
    assert [r.call_id for r in third.records] == ["call_query000001", "call_query000000"]
    oldest = ids(ledger, newest_first=False, per_page=25)
    assert oldest == sorted(oldest) and len(oldest) == 12
    filtered = find_calls(ledger, CallFilter(states=(State.FAILED,), code="INVALID_FIELD", per_page=2, page=2))
    assert filtered.total == 3 and [r.call_id for r in filtered.records] == ["call_query000006"]
    assert matching_ids(ledger, CallFilter(states=(State.FAILED,), stage="write")) == [
        "call_query000011",
        "call_query000010",
        "call_query000008",
        "call_query000007",
        "call_query000006",
    ]
