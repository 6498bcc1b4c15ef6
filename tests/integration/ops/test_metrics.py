"""``/metrics``: every figure read from Redis at scrape time, so any web process of any machine reports the
whole service once. Each metric is checked against what the ledger and the shared state hold."""

from __future__ import annotations

import time

import redis
import requests
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.ops_console import Console

from worker import heartbeat
from worker.errors import SalesforceUnavailable
from worker.intake.app import create_app
from worker.ledger import LATENCY_BUCKETS, Ledger, State
from worker.ops.stats import twenty2_limiter
from worker.runtime import Runtime
from worker.settings import Settings
from worker.sync.core import record_error


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_outcome_counters_and_state_gauges_equal_the_ledger(console: Console) -> None:
    m = scrape(console.url)
    assert m[("crm_sync_syncs_total", (("code", ""), ("stage", ""), ("state", "synced")))] == 1
    key = (
        "crm_sync_syncs_total",
        (("code", "FIELD_CUSTOM_VALIDATION_EXCEPTION"), ("stage", "write"), ("state", "failed")),
    )
    assert m[key] == 1
    for state, count in console.runtime.ledger.counts().items():
        assert m[("crm_sync_calls", (("state", state),))] == count


def test_latency_histogram_counts_each_sync_in_its_bucket(redis_url: str) -> None:
    ledger = Ledger(redis.Redis.from_url(redis_url))
    for call_id, waited in (("call_latency0001", 45.0), ("call_latency0002", 0.2)):
        ledger.accept(call_id, source="webhook")
        ledger.r.hset(f"crm-sync:call:{call_id}", "queued_at", repr(time.time() - waited))
        ledger.start(call_id)
        ledger.synced(call_id, salesforce_ids={"callTask": "00T000000000001AAA"}, summary="")
    app = create_app(Runtime(Settings(_env_file=None, redis_url=redis_url)))
    text = TestClient(app).get("/metrics").text
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("crm_sync_latency_seconds_bucket", "1.0")] == 1
    assert samples[("crm_sync_latency_seconds_bucket", "30.0")] == 1
    assert samples[("crm_sync_latency_seconds_bucket", "60.0")] == 2
    assert samples[("crm_sync_latency_seconds_bucket", "+Inf")] == 2
    assert samples[("crm_sync_latency_seconds_count", None)] == 2
    assert 45.0 < samples[("crm_sync_latency_seconds_sum", None)] < 46.5
    assert len(LATENCY_BUCKETS) + 1 == sum(1 for name, _ in samples if name == "crm_sync_latency_seconds_bucket")


def test_gauges_of_queue_allowance_twenty2_retries_and_processes(console: Console) -> None:
    rt = console.runtime
    rt.enqueue(console.failed)  # one task waiting in the broker's list
    record_error(rt.ledger, rt.settings, console.failed, SalesforceUnavailable("down", code="SERVER_UNAVAILABLE"))
    heartbeat.beat_once(rt.redis, "worker", "celery@machine-a")
    heartbeat.beat_once(rt.redis, "beat", "beat@machine-b")
    m = scrape(console.url)
    assert m[("crm_sync_queue_depth", ())] == 1
    usage = rt.budget.last()
    assert usage is not None
    assert m[("crm_sync_salesforce_api_used", ())] == usage.used
    assert m[("crm_sync_salesforce_api_max", ())] == usage.maximum
    assert m[("crm_sync_salesforce_reserve_ratio", ())] == rt.settings.crm_sync_api_reserve
    assert m[("crm_sync_salesforce_holding", ())] == 0
    used = twenty2_limiter(rt).used()
    assert used >= 2  # the two syncs' detail fetches, counted in the shared window
    assert m[("crm_sync_twenty2_requests_last_minute", ())] == used
    assert m[("crm_sync_twenty2_requests_limit", ())] == 60
    assert m[("crm_sync_retryable_failures_15m", ())] == 1
    assert m[("crm_sync_syncs_total", (("code", "SERVER_UNAVAILABLE"), ("stage", "write"), ("state", "queued")))] == 1
    assert m[("crm_sync_due_calls", ())] == 1
    assert m[("crm_sync_processes_alive", (("role", "worker"),))] == 1
    assert m[("crm_sync_processes_alive", (("role", "beat"),))] == 1
    assert m[("crm_sync_oldest_queued_seconds", ())] >= 0


def test_two_web_processes_report_the_same_totals(console: Console) -> None:
    """Outcomes recorded by another machine's worker (its own connections) count once, in every scrape."""
    other = Ledger(redis.Redis.from_url(console.runtime.settings.redis_url))
    other.accept("call_othermachine1", source="webhook")
    other.start("call_othermachine1")
    other.synced("call_othermachine1", salesforce_ids={}, summary="")
    second = TestClient(create_app(Runtime(console.runtime.settings)))
    first = scrape(console.url)
    text = second.get("/metrics").text
    again = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    key = ("crm_sync_syncs_total", (("code", ""), ("stage", ""), ("state", "synced")))
    assert first[key] == again[key] == 2
    assert first[("crm_sync_latency_seconds_count", ())] == again[("crm_sync_latency_seconds_count", ())] == 2


def test_holding_at_the_reserve_and_the_oldest_queued_call(redis_url: str) -> None:
    rt = Runtime(Settings(_env_file=None, redis_url=redis_url, crm_sync_api_reserve=0.10))
    rt.budget.observe((95_000, 100_000), time.time())
    rt.ledger.accept("call_waitingcall1", source="webhook")
    queued_at = rt.ledger.r.zscore(rt.ledger.state_key(State.QUEUED), "call_waitingcall1")
    text = TestClient(create_app(rt)).get("/metrics").text
    m = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert m[("crm_sync_salesforce_holding", ())] == 1
    assert m[("crm_sync_salesforce_api_used", ())] == 95_000 and m[("crm_sync_salesforce_api_max", ())] == 100_000
    assert queued_at is not None
    assert 0 <= m[("crm_sync_oldest_queued_seconds", ())] <= time.time() - float(queued_at) + 1
    assert m[("crm_sync_calls", (("state", "queued"),))] == 1
    assert abs(m[("crm_sync_scrape_timestamp_seconds", ())] - time.time()) < 5
