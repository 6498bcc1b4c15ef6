"""Prometheus ``/metrics`` for the web process, computed from Redis at scrape time.

Every worker on every machine records its outcomes into the same Redis keys (the ledger's transition
scripts keep ``crm-sync:metrics:*``), so a scrape of any one web process sees the whole service, each sync
counted once, whatever the number of workers and machines, and nothing is lost when a worker restarts.
(prometheus-client's multiprocess mode would only add up the processes of one machine.)

- ``crm_sync_syncs_total{state,stage,code}``: outcomes recorded (synced, skipped, failed; ``queued`` = sent
  back for a retry or held);
- ``crm_sync_latency_seconds``: histogram of intake (last accept) → written to Salesforce;
- ``crm_sync_calls{state}``: calls in each ledger state now;
- ``crm_sync_queue_depth``, ``crm_sync_due_calls``, ``crm_sync_oldest_queued_seconds``;
- ``crm_sync_salesforce_api_used`` / ``_max`` / ``_reserve_ratio`` / ``crm_sync_salesforce_holding``;
- ``crm_sync_twenty2_requests_last_minute`` / ``crm_sync_twenty2_requests_limit``;
- ``crm_sync_processes_alive{role}``, ``crm_sync_retryable_failures_15m``;
- ``crm_sync_audit_findings{kind}``, ``crm_sync_audit_calls_missing_in_salesforce`` (alert on > 0),
  ``crm_sync_audit_last_run_timestamp_seconds``: the last three-way audit (``worker.reconcile.audit_run``);
- ``crm_sync_reconcile_found`` / ``_queued`` / ``_last_pass_timestamp_seconds``: the last reconciliation pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from worker.ledger import LATENCY_BUCKETS
from worker.ops import stats
from worker.reconcile import status as reconcile_status
from worker.runtime import Runtime


class LedgerCollector:
    """A custom collector: every value read from Redis when scraped."""

    def __init__(self, current: Callable[[], Runtime]) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        rt = self.current()
        ledger = rt.ledger
        syncs = CounterMetricFamily(
            "crm_sync_syncs",
            "Sync outcomes recorded, by ledger state, stage and error code.",
            labels=["state", "stage", "code"],
        )
        for raw, count in cast(dict[Any, Any], ledger.r.hgetall(ledger.metrics_key("syncs"))).items():
            state, stage, code = _s(raw).split("|", 2)
            syncs.add_metric([state, stage, code], int(count))
        yield syncs

        data = {_s(k): _s(v) for k, v in cast(dict[Any, Any], ledger.r.hgetall(ledger.metrics_key("latency"))).items()}
        cumulative, buckets = 0, []
        for number, bound in enumerate(LATENCY_BUCKETS, start=1):
            cumulative += int(data.get(f"bucket:{number}", 0))
            buckets.append((repr(bound), cumulative))
        cumulative += int(data.get("bucket:inf", 0))
        buckets.append(("+Inf", cumulative))
        latency = HistogramMetricFamily(
            "crm_sync_latency_seconds", "Seconds from intake (the call's last accept) to written in Salesforce."
        )
        latency.add_metric([], buckets, sum_value=float(data.get("sum", 0)))
        yield latency

        o = stats.overview(rt)
        calls = GaugeMetricFamily("crm_sync_calls", "Calls in each ledger state now.", labels=["state"])
        for state, count in o.counts.items():
            calls.add_metric([state], count)
        yield calls
        yield _gauge("crm_sync_queue_depth", "Sync tasks waiting in the broker queue.", o.queue_depth)
        yield _gauge("crm_sync_due_calls", "Calls waiting for a retry or hold time.", o.due)
        oldest = (o.now - o.oldest_queued[1]) if o.oldest_queued else 0.0
        yield _gauge("crm_sync_oldest_queued_seconds", "Age of the oldest queued call (0 when none).", oldest)
        if o.sf_max:
            yield _gauge(
                "crm_sync_salesforce_api_used", "Salesforce daily API requests used (last seen).", o.sf_used or 0
            )
            yield _gauge("crm_sync_salesforce_api_max", "Salesforce daily API allowance.", o.sf_max)
        yield _gauge("crm_sync_salesforce_reserve_ratio", "Share of the allowance kept in reserve.", o.reserve)
        yield _gauge("crm_sync_salesforce_holding", "1 while syncs hold at the reserve.", int(o.holding))
        yield _gauge("crm_sync_twenty2_requests_last_minute", "Twenty2 requests in the shared window.", o.twenty2_used)
        yield _gauge("crm_sync_twenty2_requests_limit", "Twenty2 requests allowed per minute.", o.twenty2_limit)
        yield _gauge("crm_sync_retryable_failures_15m", "Retryable failures in the last 15 minutes.", o.retryable_15m)
        alive = GaugeMetricFamily("crm_sync_processes_alive", "Processes with a fresh heartbeat.", labels=["role"])
        for role in ("worker", "beat"):
            alive.add_metric([role], len(o.alive(role)))
        yield alive
        yield from _reconcile_metrics(rt)
        yield _gauge("crm_sync_scrape_timestamp_seconds", "When these figures were read.", time.time())


def _reconcile_metrics(rt: Runtime) -> Iterator[Metric]:
    """The last audit's and the last reconciliation pass's figures (none before the first of each)."""
    audit = reconcile_status.last_audit(rt.redis)
    if audit is not None:
        findings = GaugeMetricFamily(
            "crm_sync_audit_findings", "Findings of the last three-way audit, by kind.", labels=["kind"]
        )
        for kind, count in dict(audit.get("by_kind") or {}).items():
            findings.add_metric([str(kind)], int(count))
        yield findings
        yield _gauge(
            "crm_sync_audit_calls_missing_in_salesforce",
            "Finished calls the last audit found missing in Salesforce (unknown to the ledger, Task deleted).",
            int(audit.get("missing_in_salesforce") or 0),
        )
        yield _gauge(
            "crm_sync_audit_last_run_timestamp_seconds", "When the last audit ran.", float(audit.get("at_ts") or 0)
        )
    last = reconcile_status.last_run(rt.redis)
    if last is not None:
        yield _gauge("crm_sync_reconcile_found", "Calls the last pass found unknown to the ledger.", int(last["found"]))
        yield _gauge("crm_sync_reconcile_queued", "Calls the last pass queued.", int(last["queued"]))
        yield _gauge(
            "crm_sync_reconcile_last_pass_timestamp_seconds", "When the last pass ran.", float(last.get("at_ts") or 0)
        )


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def metrics_router(current: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(current))

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
