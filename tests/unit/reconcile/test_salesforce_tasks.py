"""The audit's Task reads are cut into URL-sized SOQL ``IN`` lists (``worker.reconcile.salesforce_tasks``)."""

from __future__ import annotations

import pytest

from worker.reconcile.salesforce_tasks import batches


def test_a_thousand_calls_take_a_few_queries() -> None:
    ids = [f"{n:024x}" for n in range(1000)] + [f"{n:024x}-callback" for n in range(1000)]
    lists = list(batches(ids))
    assert sum(len(b) for b in lists) == 2000 and len(lists) <= 8
    assert all(sum(len(i) + 3 for i in b) <= 9000 for b in lists)


def test_duplicates_are_read_once() -> None:
    assert list(batches(["call_a", "call_a", "call_b"])) == [["call_a", "call_b"]]


def test_anything_but_a_call_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not a call id"):
        list(batches(["call_a' OR Id != '"]))
