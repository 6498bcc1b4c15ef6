"""The sync ledger: transitions, indexes, due set, retention, purge."""

from __future__ import annotations

import time

import pytest
import redis

from worker.errors import CallNotFound, SkippedError, Twenty2Unavailable
from worker.ledger import Ledger, State


@pytest.fixture
def ledger(redis_url: str) -> Ledger:
    return Ledger(redis.Redis.from_url(redis_url), retention_days=1)


def test_new_call_is_queued_once(ledger: Ledger) -> None:
    assert ledger.accept("call_a1", source="webhook") is None
    assert ledger.accept("call_a1", source="webhook") is State.QUEUED
    record = ledger.get("call_a1")
    assert record is not None and record.state is State.QUEUED and record.deliveries == 2
    assert ledger.counts()["queued"] == 1


def test_synced_call_is_not_requeued_by_a_redelivery(ledger: Ledger) -> None:
    ledger.accept("call_a2", source="webhook")
    ledger.start("call_a2")
    ledger.synced("call_a2", salesforce_ids={"callTask": "00T000000000001AAA"}, summary="ok")
    assert ledger.accept("call_a2", source="webhook") is State.SYNCED
    record = ledger.get("call_a2")
    assert record is not None and record.state is State.SYNCED and record.attempts == 1
    assert ledger.r.ttl("crm-sync:call:call_a2") > 0  # resolved: expires after the retention period


def test_failed_call_is_requeued_by_a_new_delivery(ledger: Ledger) -> None:
    ledger.accept("call_a3", source="webhook")
    ledger.start("call_a3")
    ledger.failed("call_a3", error=CallNotFound("no such call", stage="fetch", code="CALL_NOT_FOUND", http_status=404))
    failed = ledger.get("call_a3")
    assert failed is not None and failed.state is State.FAILED and failed.retryable is False
    assert failed.last_error is not None and failed.last_error["code"] == "CALL_NOT_FOUND"
    assert ledger.r.ttl("crm-sync:call:call_a3") == -1  # unresolved: never expires
    assert ledger.accept("call_a3", source="webhook") is State.FAILED
    requeued = ledger.get("call_a3")
    assert requeued is not None and requeued.state is State.QUEUED and requeued.failures == 0


def test_retry_later_goes_to_the_due_set_and_is_claimed_once(ledger: Ledger) -> None:
    ledger.accept("call_a4", source="webhook")
    ledger.start("call_a4")
    due_at = time.time() - 1
    ledger.retry_later("call_a4", error=Twenty2Unavailable("503", stage="fetch", code="HTTP_503"), due_at=due_at)
    record = ledger.get("call_a4")
    assert record is not None and record.state is State.QUEUED and record.failures == 1 and record.retryable
    assert ledger.claim_due() == ["call_a4"]
    assert ledger.claim_due() == []


def test_list_filters_by_state_time_and_reason(ledger: Ledger) -> None:
    for call_id, error in (
        ("call_b1", CallNotFound("gone", stage="fetch", code="CALL_NOT_FOUND")),
        ("call_b2", SkippedError("unknown number", stage="lookup", code="UNKNOWN_NUMBER")),
    ):
        ledger.accept(call_id, source="webhook")
        ledger.start(call_id)
        (ledger.failed if call_id == "call_b1" else ledger.skipped)(call_id, error=error)
    assert [r.call_id for r in ledger.find(states=[State.FAILED])] == ["call_b1"]
    assert [r.call_id for r in ledger.find(reason="unknown_number")] == ["call_b2"]
    assert ledger.find(states=[State.FAILED], since=time.time() + 60) == []


def test_history_keeps_every_transition(ledger: Ledger) -> None:
    ledger.accept("call_c1", source="webhook", detail={"event_id": "evt_1"})
    ledger.start("call_c1")
    ledger.synced("call_c1", salesforce_ids={}, summary="nothing written")
    events = [item.get("event") for item in ledger.history("call_c1")]
    assert events == ["accepted", "started", "synced"]


def test_purge_never_touches_unresolved_records(ledger: Ledger) -> None:
    ledger.accept("call_d1", source="webhook")
    ledger.accept("call_d2", source="webhook")
    ledger.start("call_d2")
    ledger.failed("call_d2", error=CallNotFound("gone", stage="fetch"))
    assert ledger.purge(before=time.time() + 1) == 1
    assert ledger.get("call_d1") is not None and ledger.get("call_d2") is None


def test_stale_lists_queued_calls_without_a_due_time(ledger: Ledger) -> None:
    ledger.accept("call_e1", source="webhook")
    assert ledger.stale(time.time() + 1) == ["call_e1"]
    assert ledger.stale(time.time() - 60) == []
