"""One reconciliation pass (I/O): list Twenty2's calls, decide (``decide``), queue the ones whose webhook
never came, move the watermark, leave a summary.

Every request of the pass goes through the reconciliation client (``Services.twenty2_spare``: the room
webhook-driven fetches leave, ``worker.reconcile.priority``). A call is queued exactly as the intake queues
a webhook's call: ``Ledger.accept`` (source ``reconcile``) creates its record atomically, and only the one
that created it enqueues ``sync_call``; the sync itself runs under the per-call lock. So a webhook arriving
meanwhile, a second pass, or the CLI never make a second write. A pass queues at most ``batch`` calls
(``CRM_SYNC_RECONCILE_BATCH``): the rest are still unknown to the ledger and the next pass finds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from worker.ledger import State
from worker.reconcile import status
from worker.reconcile.decide import Decision, Verdict, call_time, counts, decide, next_watermark, window_start
from worker.reconcile.listing import list_calls
from worker.redis_clients import RetrySafeLock
from worker.runtime import Runtime

log = structlog.get_logger(__name__)

SOURCE = "reconcile"


@dataclass
class PassReport:
    at: datetime
    since: datetime
    pages: int
    listed: int
    skipped_entries: int
    verdicts: dict[str, int]
    found: list[Decision] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)
    dry_run: bool = False
    watermark: datetime | None = None
    #: Seconds from the end of the call queued now that ended longest ago, to this pass (how late it was found).
    longest_lag: float | None = None
    seconds: float = 0.0
    stopped: str = ""

    @property
    def left(self) -> int:
        """Calls found but not queued by this pass (beyond the batch): the next pass takes them."""
        return len(self.found) - len(self.queued) - len(self.raced)

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "at_ts": self.at.timestamp(),
            "since": self.since.isoformat(timespec="seconds"),
            "pages": self.pages,
            "listed": self.listed,
            "skipped_entries": self.skipped_entries,
            "verdicts": self.verdicts,
            "found": len(self.found),
            "queued": len(self.queued),
            "raced": len(self.raced),
            "left": self.left,
            "dry_run": self.dry_run,
            "watermark": self.watermark.isoformat(timespec="seconds") if self.watermark else None,
            "longest_lag_seconds": self.longest_lag,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
        }


def known_states(runtime: Runtime, call_ids: list[str]) -> dict[str, State]:
    """The ledger state of each of ``call_ids`` it has (pipelined reads)."""
    return {record.call_id: record.state for record in runtime.ledger.get_many(call_ids)}


def reconcile_pass(
    runtime: Runtime,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    batch: int | None = None,
    now: datetime | None = None,
    on_page: Callable[[int, int], None] | None = None,
    on_queued: Callable[[Decision], None] | None = None,
) -> PassReport:
    """One pass. ``since``: the window's start (default: the lookback before the watermark); ``dry_run``:
    list and decide, queue nothing, move nothing; ``batch``: calls queued at most (default the setting)."""
    settings = runtime.settings
    started = time.monotonic()
    now = now or datetime.now(UTC)
    watermark = status.read_watermark(runtime.redis)
    start = since or window_start(
        watermark, now=now, lookback=timedelta(hours=settings.crm_sync_reconcile_lookback_hours)
    )
    services = runtime.services
    client = services.twenty2_spare or services.twenty2
    listing = list_calls(client, since=start, max_pages=settings.crm_sync_reconcile_max_pages, on_page=on_page)
    ids = list(dict.fromkeys(call.call_id for call in listing.calls))
    decisions = decide(listing.calls, known_states(runtime, ids), since=start)
    found = [d for d in decisions if d.verdict is Verdict.SYNC]
    report = PassReport(
        at=now,
        since=start,
        pages=listing.pages,
        listed=len(ids),
        skipped_entries=listing.skipped,
        verdicts=counts(decisions),
        found=found,
        dry_run=dry_run,
        watermark=watermark,
        stopped=listing.stopped,
    )
    if not dry_run:
        limit = settings.crm_sync_reconcile_batch if batch is None else batch
        for decision in found[: max(limit, 0)]:
            _queue(runtime, decision, report, now)
            if on_queued is not None:
                on_queued(decision)
        report.watermark = next_watermark(decisions, watermark, now=now, queued=frozenset(report.queued))
        status.write_watermark(runtime.redis, report.watermark)
    report.seconds = time.monotonic() - started
    if not dry_run:
        status.save(runtime.redis, status.LAST_RUN_KEY, report.summary())
    log.info("reconcile.pass", **report.summary())
    return report


def _queue(runtime: Runtime, decision: Decision, report: PassReport, now: datetime) -> None:
    call = decision.call
    ended = call_time(call)
    before = runtime.ledger.accept(
        call.call_id,
        source=SOURCE,
        detail={"status": call.status, "ended_at": ended.isoformat() if ended else None},
    )
    if before is not None:
        report.raced.append(call.call_id)  # a webhook (or another pass) recorded it first: theirs to sync
        return
    runtime.enqueue(call.call_id)
    report.queued.append(call.call_id)
    if ended is not None:
        lag = max((now - ended).total_seconds(), 0.0)
        report.longest_lag = lag if report.longest_lag is None else max(report.longest_lag, lag)
    log.info(
        "reconcile.queued", call_id=call.call_id, status=call.status, ended_at=ended.isoformat() if ended else None
    )


def pass_lock_seconds(every_seconds: float) -> float:
    """How long a pass holds the one-pass-at-a-time lock: three intervals (at least 30 s). Short on purpose:
    a worker killed mid-pass must not stop reconciliation for long (the chaos run kills workers), and a pass
    that outlives it is harmless (a second pass queues nothing twice: the ledger's accept decides)."""
    return max(3 * every_seconds, 30.0)


def run_once(runtime: Runtime) -> PassReport | None:
    """The beat task's pass, one at a time across processes (a pass still running makes this one a no-op)."""
    seconds = pass_lock_seconds(runtime.settings.crm_sync_reconcile_every_seconds)
    lock = runtime.redis.lock(status.RUN_LOCK_KEY, timeout=seconds, blocking=False, lock_class=RetrySafeLock)
    if not lock.acquire():
        log.info("reconcile.pass_running_elsewhere")
        return None
    try:
        return reconcile_pass(runtime)
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: nothing to undo
            log.warning("reconcile.pass_lock_expired")
