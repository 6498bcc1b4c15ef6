"""The three-way audit (I/O): read Twenty2 (``GET /call/logs``), the ledger and Salesforce's Tasks, compare
(``worker.reconcile.audit``), publish the summary, and apply the fixes.

Cost: the listing's pages (one Twenty2 request each, through reconciliation's low-priority client), one
pipelined Redis read, and about eight SOQL queries per thousand calls (``salesforce_tasks``).

``publish`` is the one place the summary goes out: the ``audit.summary`` log event, Redis (the ops console
and the ``crm_sync_audit_*`` metrics read it) and, when finished calls are missing in Salesforce, one alert
(``worker.alerts``, rate-limited per kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from worker.reconcile import status
from worker.reconcile.audit import FOLLOWUP_REF, AuditReport, Finding, Kind, compare, task_ids_wanted
from worker.reconcile.decide import call_time
from worker.reconcile.listing import list_calls
from worker.reconcile.salesforce_tasks import dedupe, read_tasks
from worker.runtime import Runtime

log = structlog.get_logger(__name__)

#: Pages the audit reads at most (it needs the whole window, not one pass's worth).
AUDIT_MAX_PAGES = 1000
ALERT_KIND = "audit_missing"


@dataclass
class AuditCost:
    twenty2_requests: int
    salesforce_requests: int

    def as_dict(self) -> dict[str, int]:
        return {"twenty2_requests": self.twenty2_requests, "salesforce_requests": self.salesforce_requests}


def run_audit(
    runtime: Runtime,
    *,
    since: datetime,
    settle: timedelta = timedelta(0),
    now: datetime | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> tuple[AuditReport, AuditCost]:
    """Compare every call of the window across the three systems."""
    services = runtime.services
    client = services.twenty2_spare or services.twenty2
    listing = list_calls(client, since=since, max_pages=AUDIT_MAX_PAGES, on_page=on_page)
    now = now or datetime.now(UTC)
    window_records = [
        r for r in runtime.ledger.find(since=since.timestamp(), limit=10_000_000) if r.first_seen >= since.timestamp()
    ]
    in_window = [c for c in listing.calls if (call_time(c) or now) >= since]
    ids = list(dict.fromkeys([c.call_id for c in in_window] + [r.call_id for r in window_records]))
    records = {r.call_id: r for r in runtime.ledger.get_many(ids)}
    reading = read_tasks(
        services.salesforce,
        runtime.settings.salesforce_task_external_id_field,
        task_ids_wanted(c.call_id for c in in_window if c.is_final),
    )
    report = compare(
        listing.calls,
        records,
        reading.by_external_id,
        since=since,
        now=now,
        settle=settle,
        window_records=window_records,
    )
    return report, AuditCost(twenty2_requests=listing.pages, salesforce_requests=reading.requests)


def publish(runtime: Runtime, report: AuditReport, cost: AuditCost, *, alert: bool = True) -> dict[str, Any]:
    """Log, store and (when calls are missing in Salesforce) alert the summary. Returns it."""
    summary = {**report.summary(), **cost.as_dict()}
    status.save(runtime.redis, status.LAST_AUDIT_KEY, summary)
    log.info("audit.summary", **{k: v for k, v in summary.items() if k != "by_kind"}, **summary["by_kind"])
    if alert and report.missing_in_salesforce > 0:
        from worker.alerts import Alerter

        Alerter(runtime.settings, runtime.redis).notify(
            ALERT_KIND,
            f"audit: {report.missing_in_salesforce} finished calls missing in Salesforce since "
            f"{summary['since']} (crm-sync audit --since … --fix)",
            pending=False,
            **{k: n for k, n in summary["by_kind"].items() if n},
        )
    return summary


@dataclass
class FixReport:
    replayed: list[str]
    deduped: dict[str, list[str]]
    not_fixable: list[Finding]
    replay: dict[str, Any] | None


def fix(runtime: Runtime, findings: tuple[Finding, ...], *, on_done: Callable[[], None] | None = None) -> FixReport:
    """Apply the findings' fixes, as their commands would: duplicates first (``replay --dedupe``: extra
    copies deleted), then one bulk replay (``crm-sync replay ID…``) of every call missing somewhere."""
    deduped: dict[str, list[str]] = {}
    for call_id in dict.fromkeys(
        f.call_id for f in findings if f.kind in (Kind.TASK_DUPLICATED, Kind.FOLLOWUP_DUPLICATED)
    ):
        deduped[call_id] = dedupe_call(runtime, call_id)
    replay_ids = list(dict.fromkeys(f.call_id for f in findings if f.fix is not None and "--dedupe" not in f.fix))
    replay = None
    if replay_ids:
        from worker.sync.bulk import BulkSync

        bulk = BulkSync(runtime, on_done=(lambda _c, _o: on_done()) if on_done else None)
        replay = bulk.run(replay_ids, source="replay", force=True, hold=False).as_dict()
    return FixReport(
        replayed=replay_ids,
        deduped=deduped,
        not_fixable=[f for f in findings if f.fix is None],
        replay=replay,
    )


def dedupe_call(runtime: Runtime, call_id: str) -> list[str]:
    """``crm-sync replay --dedupe``: delete the call's extra Task copies, keeping the ones the ledger
    recorded (else the oldest)."""
    record = runtime.ledger.get(call_id)
    keep = [v for k, v in (record.salesforce_ids if record else {}).items() if k in ("callTask", FOLLOWUP_REF)]
    deleted = dedupe(
        runtime.services.salesforce, runtime.settings.salesforce_task_external_id_field, call_id, keep=keep
    )
    if deleted:
        runtime.ledger.note(call_id, "deduped", deleted=deleted)
        log.info("audit.deduped", call_id=call_id, deleted=len(deleted))
    return deleted
